package fsm

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// fuzzState is a small state with a task in every state, a requeued task whose
// old fence is known, a recorded capacity change, a worker and an admin. It
// returns the state and the next free raft index.
//
//	task 1 vol 1 pending      task 4 vol 4 completed (change recorded)
//	task 2 vol 2 assigned     task 5 vol 5 failed
//	task 3 vol 3 running      task 6 vol 6 cancelled
//	task 7 vol 7 running, attempt 2 (old fence 21, current fence 23)
func fuzzState(t testing.TB) (*State, uint64) {
	t.Helper()
	h := newHarness(t)
	h.ok(registerCmd(&fsmpb.Worker{Id: "w1", Capabilities: []fsmpb.TaskType{vacuum, ecType, balance}}))
	h.ok(adminCmd("a1", "10.0.0.1:7000"))
	h.taskIn(pending, 1)
	h.taskIn(assigned, 2)
	h.taskIn(running, 3)
	tk := h.taskIn(running, 4)
	h.ok(completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{OldSize: 10, NewSize: 4}))
	h.taskIn(failed, 5)
	h.taskIn(cancelled, 6)
	tk = h.taskIn(running, 7)
	h.ok(requeueCmd(tk.Id, tk.Fence, "lost", true))
	tk = h.ok(assignCmd(tk.Id, "w1"))
	h.ok(startCmd(tk.Id, tk.Fence))
	return h.s, h.idx + 1
}

func fuzzSeeds(t testing.TB) []*fsmpb.Command {
	s, _ := fuzzState(t)
	fence := func(id uint64) uint64 { tk, _ := s.Task(id); return tk.Fence }
	cmds := []*fsmpb.Command{
		submitCmd(vacuum, 1), submitCmd(ecType, 1), submitCmd(vacuum, 8), submitCmd(0, 8), submitCmd(vacuum, 0),
		submitWith(&fsmpb.SubmitTask{Type: balance, VolumeId: 4, Origin: "detector"}),
		submitWith(&fsmpb.SubmitTask{Type: balance, VolumeId: 4, Params: []*fsmpb.Param{{Key: "k"}, {Key: "k"}}}),
		assignCmd(1, "w1"), assignCmd(2, "w1"), assignCmd(1, ""), assignCmd(99, "w1"),
		startCmd(2, fence(2)), startCmd(2, 0), startCmd(3, fence(3)), startCmd(7, 21),
		progressCmd(3, fence(3), 50, "half"), progressCmd(3, fence(3), math.NaN(), ""), progressCmd(7, 21, 50, ""),
		completeCmd(3, fence(3), &fsmpb.CapacityChange{Shards: []*fsmpb.ShardPlacement{{ShardId: 2}, {ShardId: 1}}}),
		completeCmd(4, fence(4), &fsmpb.CapacityChange{}), completeCmd(7, 21, nil), completeCmd(7, fence(7), nil),
		failCmd(2, fence(2), "x"), failCmd(5, fence(5), "again"), failCmd(7, 21, "old"),
		requeueCmd(3, 0, "lease", false), requeueCmd(7, 21, "", true), requeueCmd(1, 0, "", false), requeueCmd(4, 0, "", false),
		cancelCmd(1, ""), cancelCmd(4, ""), cancelCmd(6, ""), cancelCmd(0, ""),
		retireCmd(4), retireCmd(4, 4, 1, 99),
		registerCmd(&fsmpb.Worker{Id: "w2", Capabilities: []fsmpb.TaskType{balance, vacuum}}), registerCmd(nil),
		deregisterCmd("w1"), deregisterCmd("nobody"),
		adminCmd("a2", "x:1"), adminCmd("", ""),
		{},
	}
	for _, c := range cmds {
		c.Version, c.Now = CommandVersion, 2_000_000
	}
	wrong := cancelCmd(1, "")
	wrong.Version = CurrentVersion + 1
	cmds = append(cmds, wrong)
	for _, c := range []*fsmpb.Command{
		SetPolicyCmd(&fsmpb.Policy{Paused: true, PauseReason: "r", Types: []*fsmpb.TaskTypePolicy{{Type: balance, Disabled: true}, {Type: vacuum}}}, 0, "op"),
		SetPolicyCmd(&fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: 9, Disabled: true}, {Type: vacuum}, {Type: vacuum}}}, 0, "op"),
		SetPolicyCmd(&fsmpb.Policy{}, 3, ""), PauseCmd(true, "x", "op"), PauseCmd(false, "", "op"),
	} {
		c.Version, c.Now = PolicyVersion, 2_000_000
		cmds = append(cmds, c)
	}
	return cmds
}

// FuzzApply decodes arbitrary bytes as a command and applies it to a state
// holding tasks in every state. It must never panic, and all the checks of
// checker.step, with the whole-snapshot check at every step (invariants,
// refusal changes nothing, no in-place mutation, legal moves only,
// terminal tasks frozen, fence safety) must hold; the result must also
// survive a snapshot round trip. Run with: go test -fuzz=FuzzApply ./fsm/
func FuzzApply(f *testing.F) {
	for _, c := range fuzzSeeds(f) {
		f.Add(rawBytes(f, c))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte("\x08\x01\x10\x02\x8a\x01\x00")) // version 1, empty complete_task

	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, err := Decode(b)
		if err != nil {
			return
		}
		s, index := fuzzState(t)
		c := newChecker(t, s, 1)
		res := c.step(s, index, cmd)

		// The same command applied to an identical state gives the identical
		// result and state (no hidden input).
		s2, _ := fuzzState(t)
		again, _ := Decode(b)
		if r2 := s2.Apply(index, again); !proto.Equal(res, r2) {
			t.Fatalf("same command, same state, different results: %v vs %v", res, r2)
		}
		snap, err := FromSnapshot(s.Snapshot())
		if err != nil {
			t.Fatalf("snapshot of a valid state refused: %v", err)
		}
		// Whatever policy Apply leaves, a restore of it is accepted.
		if raw := s.Snapshot(); checkPolicy(raw.Policy, raw.PolicyHistory) != nil {
			t.Fatalf("the policy Apply left fails the restore check: %v", checkPolicy(raw.Policy, raw.PolicyHistory))
		}
		if s2.Hash() != s.Hash() || snap.Hash() != s.Hash() {
			t.Fatalf("non-deterministic apply or snapshot round trip")
		}
		// A follow-up command still works on the result.
		follow := submitCmd(balance, 1000)
		follow.Version = CommandVersion
		if r := s.Apply(index+1, follow); r.ErrorCode != codeNone && r.ErrorCode != codeBusy {
			t.Fatalf("follow-up submit: %v", r)
		}
		checkInvariants(t, s)
	})
}
