package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func TestSubmitInvalid(t *testing.T) {
	h := newHarness(t)
	h.refuse(codeInvalid, submitCmd(fsmpb.TaskType_TASK_TYPE_UNSPECIFIED, 1))
	h.refuse(codeInvalid, submitCmd(fsmpb.TaskType(42), 1))
	h.refuse(codeInvalid, submitCmd(vacuum, 0))
	h.refuse(codeInvalid, submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Params: []*fsmpb.Param{
		{Key: "b", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: "3"},
	}}))
	h.refuse(codeInvalid, submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Params: []*fsmpb.Param{{Key: ""}, {Key: ""}}}))
	if h.s.nextTaskID != 1 || len(h.s.tasks) != 0 {
		t.Fatalf("refused submits created tasks")
	}
	// Distinct keys are fine.
	h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Params: []*fsmpb.Param{{Key: "b"}, {Key: "a"}}}))
}

func TestSubmitExistingAndBusy(t *testing.T) {
	h := newHarness(t)
	first := h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Collection: "c1"}))

	for _, st := range []fsmpb.TaskState{pending, assigned, running} {
		switch st {
		case assigned:
			h.ok(assignCmd(first.Id, "w1"))
		case running:
			h.ok(startCmd(first.Id, h.task(first.Id).Fence))
		}
		// Same type + volume while active: the existing task, no new id.
		before := contentKey(t, h.s)
		res := h.apply(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Collection: "other", Origin: "detector"}))
		if res.ErrorCode != codeNone || !res.Existing || res.Task == nil || res.Task.Id != first.Id || res.Task.State != st {
			t.Fatalf("%s: duplicate submit gave %v", StateName(st), res)
		}
		if contentKey(t, h.s) != before || h.s.nextTaskID != 2 {
			t.Fatalf("%s: duplicate submit changed the state", StateName(st))
		}
		// Different type on the busy volume.
		h.refuse(codeBusy, submitCmd(ecType, 1))
		h.refuse(codeBusy, submitCmd(balance, 1))
	}
	// Another volume is independent.
	if o := h.ok(submitCmd(ecType, 2)); o.Id != 2 {
		t.Fatalf("second task id %d", o.Id)
	}

	// Once the first finishes, a new task (of any type) can be created.
	h.ok(completeCmd(first.Id, h.task(first.Id).Fence, nil))
	n := h.ok(submitCmd(vacuum, 1))
	if n.Id != 3 || h.apply(submitCmd(vacuum, 1)).Task.Id != 3 {
		t.Fatalf("new task after completion: %v", n)
	}
	h.ok(cancelCmd(n.Id, ""))
	if n := h.ok(submitCmd(ecType, 1)); n.Id != 4 {
		t.Fatalf("new task after cancel: %v", n)
	}
}

func TestSubmitAfterFailure(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(failed, 1)
	if n := h.ok(submitCmd(vacuum, 1)); n.Id == tk.Id || n.Attempt != 1 {
		t.Fatalf("resubmitted %v", n)
	}
}

// TestUnreportedChangeBlocksDetector: a completed-but-unreported capacity
// change keeps detectors off the volume until it is retired; manual
// submissions are allowed.
func TestUnreportedChangeBlocksDetector(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(running, 1)
	h.ok(completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{OldSize: 10, NewSize: 5}))
	other := h.taskIn(running, 2)
	h.ok(completeCmd(other.Id, other.Fence, &fsmpb.CapacityChange{OldSize: 10, NewSize: 5}))

	for _, origin := range []string{"detector", "vacuum_detector"} {
		h.refuse(codeBusy, submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Origin: origin}))
	}
	// A volume without a change is fine for detectors.
	h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 3, Origin: "detector"}))

	// Retire: unknown ids (and repeats) are ignored.
	h.ok(retireCmd(999, 0, other.Id, other.Id))
	if h.s.HasUnreportedChange(2) || !h.s.HasUnreportedChange(1) || len(h.s.CapacityChanges()) != 1 {
		t.Fatalf("retire: %v", h.s.CapacityChanges())
	}
	before := contentKey(t, h.s)
	h.ok(retireCmd(12345))
	if contentKey(t, h.s) != before {
		t.Fatalf("retiring an unknown id changed the state")
	}
	h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 2, Origin: "detector"}))

	// Manual (explicit or empty origin) is allowed despite the change.
	m := h.ok(submitWith(&fsmpb.SubmitTask{Type: ecType, VolumeId: 1, Origin: "manual"}))
	h.ok(cancelCmd(m.Id, ""))
	if m := h.ok(submitCmd(ecType, 1)); m.Origin != "manual" {
		t.Fatalf("empty origin stored as %q", m.Origin)
	} else {
		h.ok(cancelCmd(m.Id, ""))
	}

	h.ok(retireCmd(tk.Id))
	if h.s.HasUnreportedChange(1) {
		t.Fatalf("change not retired")
	}
	if d := h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Origin: "detector"})); d.Origin != "detector" {
		t.Fatalf("origin %q", d.Origin)
	}
}

// TestDuplicateCompleteDoesNotReRecordChange is the regression test for the
// bug fixed in mutable(): a worker that retries CompleteTask with its
// (current) fence used to complete the task a second time, counting its
// capacity change twice in changesByVolume, so that after the retire the
// volume stayed "unreported" forever and detectors could never touch it.
func TestDuplicateCompleteDoesNotReRecordChange(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(running, 3)
	done := h.ok(completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{NewSize: 1}))
	h.refuse(codeIllegal, completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{NewSize: 1}))
	if h.task(tk.Id) != done {
		t.Fatalf("completed task rewritten")
	}
	h.ok(retireCmd(tk.Id))
	h.refuse(codeIllegal, completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{NewSize: 1}))
	if h.s.HasUnreportedChange(3) {
		t.Fatalf("retired change came back")
	}
	h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 3, Origin: "detector"}))
}

func TestUnknownVersion(t *testing.T) {
	for _, v := range []uint32{0, CurrentVersion + 1, 1 << 31} {
		h := newHarness(t)
		h.ok(submitCmd(vacuum, 1))
		before := contentKey(t, h.s)
		for i, body := range []*fsmpb.Command{submitCmd(ecType, 2), assignCmd(1, "w1"), cancelCmd(1, ""), adminCmd("a", "b"), {}} {
			body.Version, body.Now = v, 99
			res := h.s.Apply(uint64(10+i), body)
			if res.ErrorCode != codeVersion || res.Task != nil || res.Index != uint64(10+i) {
				t.Fatalf("version %d: %v", v, res)
			}
			if h.s.AppliedIndex() != uint64(10+i) {
				t.Fatalf("applied index not advanced")
			}
		}
		if contentKey(t, h.s) != before {
			t.Fatalf("version %d command changed the state", v)
		}
		checkInvariants(t, h.s)
	}
}

func TestEncodeDecode(t *testing.T) {
	cmd := assignCmd(3, "w1")
	cmd.Version = 77
	b, err := Encode(12345, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Version != CommandVersion || cmd.Now != 12345 {
		t.Fatalf("Encode did not stamp: %v", cmd)
	}
	got, err := Decode(b)
	if err != nil || got.Version != CommandVersion || got.Now != 12345 || got.GetAssignTask().GetWorkerId() != "w1" {
		t.Fatalf("Decode: %v %v", got, err)
	}
	b2, _ := Encode(12345, got)
	if string(b) != string(b2) {
		t.Fatalf("encoding not canonical")
	}
	if _, err := Decode([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatalf("Decode accepted garbage")
	}
	if c, err := Decode(nil); err != nil || c.Version != 0 || c.Body != nil {
		t.Fatalf("Decode(nil) = %v, %v", c, err)
	}
}

// TestAppliedIndexMonotonic: a replayed (lower) index does not move the
// applied index back.
func TestAppliedIndexMonotonic(t *testing.T) {
	s := NewState()
	c := submitCmd(vacuum, 1)
	c.Version = CommandVersion
	s.Apply(10, c)
	c2 := adminCmd("a", "b")
	c2.Version = CommandVersion
	if r := s.Apply(5, c2); r.Index != 5 || s.AppliedIndex() != 10 {
		t.Fatalf("applied index %d", s.AppliedIndex())
	}
}

// TestApplyDoesNotAliasCommand applies hand-made commands directly (no
// Encode/Decode) and checks that Apply neither modifies the command nor keeps
// the command's CapacityChange or Worker: changing them afterwards must not
// change the state. (Submit's Param values are still shared with the
// command; see the package test report. Raft-decoded commands are private to
// ApplyBatch, so that cannot bite through the FSM.)
func TestApplyDoesNotAliasCommand(t *testing.T) {
	s := NewState()
	apply := func(i uint64, c *fsmpb.Command) *fsmpb.ApplyResult {
		c.Version = CommandVersion
		r := s.Apply(i, c)
		if r.ErrorCode != codeNone {
			t.Fatalf("index %d: %v", i, r)
		}
		return r
	}
	sub := submitWith(&fsmpb.SubmitTask{Type: ecType, VolumeId: 1, Params: []*fsmpb.Param{{Key: "b"}, {Key: "a"}}})
	apply(1, sub)
	if p := sub.GetSubmitTask().Params; p[0].Key != "b" {
		t.Fatalf("submit reordered the command's params")
	}
	apply(2, assignCmd(1, "w1"))
	apply(3, startCmd(1, 2))
	ch := &fsmpb.CapacityChange{TaskId: 77, OldSize: 9, Shards: []*fsmpb.ShardPlacement{{ShardId: 5}, {ShardId: 1}}}
	apply(4, completeCmd(1, 2, ch))
	if ch.TaskId != 77 || ch.Shards[0].ShardId != 5 || ch.CompletedAt != 0 {
		t.Fatalf("complete modified the command's change: %v", ch)
	}
	w := &fsmpb.Worker{Id: "w1", Capabilities: []fsmpb.TaskType{balance, vacuum}}
	apply(5, registerCmd(w))
	if w.Capabilities[0] != balance || w.RegisteredAt != 0 {
		t.Fatalf("register modified the command's worker: %v", w)
	}
	before := contentKey(t, s)
	ch.OldSize, ch.Shards[0].Server = 1, "elsewhere"
	w.Address, w.Capabilities[0] = "evil", ecType
	if contentKey(t, s) != before {
		t.Fatalf("state shares values with applied commands")
	}
	checkInvariants(t, s)
}
