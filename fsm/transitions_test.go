package fsm

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestLegalTable checks every (from, to) pair of the six states, plus the
// unspecified state, against the diagram in docs/architecture.md §4.2.
func TestLegalTable(t *testing.T) {
	want := map[[2]fsmpb.TaskState]bool{
		{pending, assigned}:   true,
		{assigned, running}:   true,
		{running, completed}:  true,
		{assigned, failed}:    true,
		{running, failed}:     true,
		{assigned, pending}:   true,
		{running, pending}:    true,
		{pending, cancelled}:  true,
		{assigned, cancelled}: true,
		{running, cancelled}:  true,
	}
	states := append([]fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_UNSPECIFIED}, allStates...)
	n := 0
	for _, from := range states {
		for _, to := range states {
			t.Run(StateName(from)+"->"+StateName(to), func(t *testing.T) {
				if got := Legal(from, to); got != want[[2]fsmpb.TaskState{from, to}] {
					t.Fatalf("Legal(%s, %s) = %v", StateName(from), StateName(to), got)
				}
			})
			if Legal(from, to) {
				n++
			}
		}
	}
	if n != len(want) {
		t.Fatalf("%d legal pairs, want %d", n, len(want))
	}
	for _, st := range allStates {
		if Legal(st, st) {
			t.Errorf("self-transition %s is legal", StateName(st))
		}
		if Terminal(st) {
			for _, to := range states {
				if Legal(st, to) {
					t.Errorf("terminal %s can move to %s", StateName(st), StateName(to))
				}
			}
		}
	}
}

func TestTerminalActiveClassification(t *testing.T) {
	for _, st := range allStates {
		term := st == completed || st == failed || st == cancelled
		if Terminal(st) != term || Active(st) == term {
			t.Errorf("%s: Terminal=%v Active=%v", StateName(st), Terminal(st), Active(st))
		}
	}
	if Terminal(fsmpb.TaskState_TASK_STATE_UNSPECIFIED) || Active(fsmpb.TaskState_TASK_STATE_UNSPECIFIED) {
		t.Errorf("unspecified state classified")
	}
}

// TestLifecycle drives one task submit → assign → start → progress → complete
// and checks every field the commands are supposed to set.
func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	sub := submitWith(&fsmpb.SubmitTask{
		Type: ecType, VolumeId: 7, Collection: "pics", Source: "s1", Target: "s2", Priority: 3,
		Params: []*fsmpb.Param{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}},
	})
	tk := h.ok(sub)
	if tk.Id != 1 || tk.State != pending || tk.Attempt != 1 || tk.Fence != 0 || tk.Origin != "manual" ||
		tk.CreatedAt != h.now || tk.UpdatedAt != h.now || tk.Collection != "pics" || tk.Priority != 3 {
		t.Fatalf("submitted %v", tk)
	}
	if len(tk.Params) != 2 || tk.Params[0].Key != "a" || tk.Params[1].Key != "z" {
		t.Fatalf("params not sorted: %v", tk.Params)
	}
	if at, ok := h.s.ActiveTask(7); !ok || at.Id != 1 {
		t.Fatalf("volume 7 not reserved")
	}

	tk = h.ok(assignCmd(1, "w1"))
	if tk.State != assigned || tk.Fence != h.idx || tk.WorkerId != "w1" || tk.AssignedAt != h.now {
		t.Fatalf("assigned %v (index %d)", tk, h.idx)
	}
	fence := tk.Fence

	tk = h.ok(startCmd(1, fence))
	if tk.State != running || tk.StartedAt != h.now || tk.Fence != fence {
		t.Fatalf("started %v", tk)
	}
	tk = h.ok(progressCmd(1, fence, 42.5, "encode"))
	if tk.State != running || tk.Progress != 42.5 || tk.Step != "encode" || tk.UpdatedAt != h.now {
		t.Fatalf("progress %v", tk)
	}
	tk = h.ok(progressCmd(1, fence, 90, "spread"))
	if tk.Progress != 90 || tk.Step != "spread" {
		t.Fatalf("progress %v", tk)
	}

	ch := &fsmpb.CapacityChange{OldSize: 100, NewSize: 40, TaskId: 999, VolumeId: 999, Shards: []*fsmpb.ShardPlacement{
		{ShardId: 3, Server: "c"}, {ShardId: 0, Server: "a"}, {ShardId: 1, Server: "b"},
	}}
	tk = h.ok(completeCmd(1, fence, ch))
	if tk.State != completed || tk.Progress != 100 || tk.FinishedAt != h.now || tk.Fence != fence {
		t.Fatalf("completed %v", tk)
	}
	if _, ok := h.s.ActiveTask(7); ok {
		t.Fatalf("volume 7 still reserved after completion")
	}
	changes := h.s.CapacityChanges()
	if len(changes) != 1 {
		t.Fatalf("changes: %v", changes)
	}
	got := changes[0]
	if got.TaskId != 1 || got.VolumeId != 7 || got.Type != ecType || got.Collection != "pics" || got.CompletedAt != h.now ||
		got.OldSize != 100 || got.NewSize != 40 || got.Shards[0].ShardId != 0 || got.Shards[2].ShardId != 3 {
		t.Fatalf("capacity change %v", got)
	}
	if ch.TaskId != 999 || ch.Shards[0].ShardId != 3 {
		t.Fatalf("the command's change was modified in place: %v", ch)
	}
	if !h.s.HasUnreportedChange(7) {
		t.Fatalf("no unreported change for volume 7")
	}
}

func TestRequeue(t *testing.T) {
	for _, from := range []fsmpb.TaskState{assigned, running} {
		for _, useFence := range []bool{false, true} {
			for _, retry := range []bool{false, true} {
				name := StateName(from)
				if useFence {
					name += "/fence"
				} else {
					name += "/fence0"
				}
				if retry {
					name += "/retry"
				}
				t.Run(name, func(t *testing.T) {
					h := newHarness(t)
					tk := h.taskIn(from, 1)
					if from == running {
						tk = h.ok(progressCmd(tk.Id, tk.Fence, 50, "half"))
					}
					f := uint64(0)
					if useFence {
						f = tk.Fence
					}
					cmd := requeueCmd(tk.Id, f, "lease lost", retry)
					cmd.GetRequeueTask().NotBefore = 123456
					got := h.ok(cmd)
					wantRetry := uint32(0)
					if retry {
						wantRetry = 1
					}
					if got.State != pending || got.Attempt != 2 || got.Fence != 0 || got.WorkerId != "" ||
						got.RetryCount != wantRetry || got.LastError != "lease lost" || got.NotBefore != 123456 ||
						got.Progress != 0 || got.Step != "" || got.UpdatedAt != h.now {
						t.Fatalf("requeued %v", got)
					}
					if at, ok := h.s.ActiveTask(1); !ok || at.Id != tk.Id {
						t.Fatalf("requeued task lost its volume reservation")
					}
					// A second attempt gets a fresh fence: the new index.
					again := h.ok(assignCmd(tk.Id, "w2"))
					if again.Fence != h.idx || again.Fence == tk.Fence || again.Attempt != 2 {
						t.Fatalf("reassigned %v", again)
					}
					// And a second requeue keeps counting.
					third := h.ok(requeueCmd(tk.Id, 0, "again", true))
					if third.Attempt != 3 || third.RetryCount != wantRetry+1 {
						t.Fatalf("second requeue %v", third)
					}
				})
			}
		}
	}
}

func TestCancel(t *testing.T) {
	for _, from := range []fsmpb.TaskState{pending, assigned, running} {
		t.Run(StateName(from), func(t *testing.T) {
			h := newHarness(t)
			tk := h.taskIn(from, 5)
			got := h.ok(cancelCmd(tk.Id, "not needed"))
			if got.State != cancelled || got.LastError != "not needed" || got.FinishedAt != h.now || got.Attempt != tk.Attempt {
				t.Fatalf("cancelled %v", got)
			}
			if _, ok := h.s.ActiveTask(5); ok {
				t.Fatalf("volume still reserved")
			}
			// The volume is free for a new task of any type.
			if n := h.ok(submitCmd(balance, 5)); n.Id == tk.Id {
				t.Fatalf("new task reused id %d", n.Id)
			}
		})
	}
}

func TestFail(t *testing.T) {
	for _, from := range []fsmpb.TaskState{assigned, running} {
		t.Run(StateName(from), func(t *testing.T) {
			h := newHarness(t)
			tk := h.taskIn(from, 5)
			got := h.ok(failCmd(tk.Id, tk.Fence, "disk full"))
			if got.State != failed || got.LastError != "disk full" || got.FinishedAt != h.now {
				t.Fatalf("failed %v", got)
			}
			if _, ok := h.s.ActiveTask(5); ok {
				t.Fatalf("volume still reserved")
			}
		})
	}
}

// TestIllegalMoves drives a task to a state and sends a command that must be
// refused with the given code, leaving the state unchanged.
func TestIllegalMoves(t *testing.T) {
	type mk func(tk *fsmpb.Task) *fsmpb.Command
	cases := []struct {
		name string
		from fsmpb.TaskState
		cmd  mk
		code fsmpb.ErrorCode
	}{
		{"complete pending", pending, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id, 0, nil) }, codeIllegal},
		{"fail pending", pending, func(tk *fsmpb.Task) *fsmpb.Command { return failCmd(tk.Id, 0, "x") }, codeIllegal},
		{"start pending", pending, func(tk *fsmpb.Task) *fsmpb.Command { return startCmd(tk.Id, 0) }, codeIllegal},
		{"progress pending", pending, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, 0, 5, "") }, codeIllegal},
		{"requeue pending", pending, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, 0, "", false) }, codeIllegal},
		{"requeue pending with fence", pending, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, 7, "", true) }, codeIllegal},
		{"assign assigned", assigned, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id, "w2") }, codeIllegal},
		{"complete assigned", assigned, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id, tk.Fence, nil) }, codeIllegal},
		{"progress assigned", assigned, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, 5, "") }, codeIllegal},
		{"assign running", running, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id, "w2") }, codeIllegal},
		{"start running", running, func(tk *fsmpb.Task) *fsmpb.Command { return startCmd(tk.Id, tk.Fence) }, codeIllegal},
		{"start completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return startCmd(tk.Id, tk.Fence) }, codeIllegal},
		{"assign completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id, "w1") }, codeIllegal},
		{"progress completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, 5, "") }, codeIllegal},
		{"complete completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id, tk.Fence, nil) }, codeIllegal},
		{"complete completed with change", completed, func(tk *fsmpb.Task) *fsmpb.Command {
			return completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{NewSize: 1})
		}, codeIllegal},
		{"fail completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return failCmd(tk.Id, tk.Fence, "late") }, codeIllegal},
		{"cancel completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return cancelCmd(tk.Id, "") }, codeIllegal},
		{"requeue completed", completed, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, 0, "", false) }, codeIllegal},
		{"requeue completed with fence", completed, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, tk.Fence, "", false) }, codeIllegal},
		{"fail failed", failed, func(tk *fsmpb.Task) *fsmpb.Command { return failCmd(tk.Id, tk.Fence, "again") }, codeIllegal},
		{"complete failed", failed, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id, tk.Fence, nil) }, codeIllegal},
		{"cancel failed", failed, func(tk *fsmpb.Task) *fsmpb.Command { return cancelCmd(tk.Id, "") }, codeIllegal},
		{"requeue failed", failed, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, 0, "", true) }, codeIllegal},
		{"cancel cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return cancelCmd(tk.Id, "") }, codeIllegal},
		{"start cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return startCmd(tk.Id, tk.Fence) }, codeIllegal},
		{"complete cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id, tk.Fence, nil) }, codeIllegal},
		{"progress cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, 1, "") }, codeIllegal},
		{"assign cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id, "w1") }, codeIllegal},
		{"requeue cancelled", cancelled, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id, 0, "", false) }, codeIllegal},

		{"assign without worker", pending, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id, "") }, codeInvalid},
		{"progress below 0", running, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, -0.5, "") }, codeInvalid},
		{"progress above 100", running, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, 100.01, "") }, codeInvalid},
		{"progress NaN", running, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, math.NaN(), "") }, codeInvalid},
		{"progress +Inf", running, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id, tk.Fence, math.Inf(1), "") }, codeInvalid},

		{"assign unknown", pending, func(tk *fsmpb.Task) *fsmpb.Command { return assignCmd(tk.Id+100, "w1") }, codeNotFnd},
		{"start unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return startCmd(tk.Id+100, tk.Fence) }, codeNotFnd},
		{"progress unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return progressCmd(tk.Id+100, tk.Fence, 1, "") }, codeNotFnd},
		{"complete unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return completeCmd(tk.Id+100, tk.Fence, nil) }, codeNotFnd},
		{"fail unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return failCmd(tk.Id+100, tk.Fence, "") }, codeNotFnd},
		{"requeue unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return requeueCmd(tk.Id+100, 0, "", false) }, codeNotFnd},
		{"cancel unknown", running, func(tk *fsmpb.Task) *fsmpb.Command { return cancelCmd(tk.Id+100, "") }, codeNotFnd},
		{"cancel id 0", running, func(tk *fsmpb.Task) *fsmpb.Command { return cancelCmd(0, "") }, codeNotFnd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.taskIn(running, 9) // an unrelated task on another volume
			tk := h.taskIn(tc.from, 1)
			if tk.State != tc.from {
				t.Fatalf("setup reached %s", StateName(tk.State))
			}
			res := h.refuse(tc.code, tc.cmd(tk))
			if !errors.Is(ResultError(res), &Error{Code: tc.code}) {
				t.Fatalf("errors.Is does not match %v", tc.code)
			}
			if got := h.task(tk.Id); got != tk {
				t.Fatalf("stored task replaced by a refused command")
			}
		})
	}
}

// TestOtherRefusals covers the non-task commands' refusals.
func TestOtherRefusals(t *testing.T) {
	h := newHarness(t)
	h.taskIn(running, 1)
	h.ok(registerCmd(&fsmpb.Worker{Id: "w1"}))
	h.ok(adminCmd("a1", "x:1"))

	h.refuse(codeInvalid, registerCmd(nil))
	h.refuse(codeInvalid, registerCmd(&fsmpb.Worker{}))
	h.refuse(codeInvalid, registerCmd(&fsmpb.Worker{Id: "w2", Capabilities: []fsmpb.TaskType{vacuum, 0}}))
	h.refuse(codeInvalid, registerCmd(&fsmpb.Worker{Id: "w2", Capabilities: []fsmpb.TaskType{42}}))
	h.refuse(codeNotFnd, deregisterCmd("w2"))
	h.refuse(codeNotFnd, deregisterCmd(""))
	h.refuse(codeInvalid, adminCmd("", "x:1"))
	h.refuse(codeInvalid, adminCmd("a2", ""))
	h.refuse(codeInvalid, &fsmpb.Command{})
}

func TestWorkersAndAdmins(t *testing.T) {
	h := newHarness(t)
	w := &fsmpb.Worker{Id: "w1", Capabilities: []fsmpb.TaskType{balance, vacuum, ecType}, MaxConcurrent: 2, Address: "a:1", RegisteredAt: 5}
	h.ok(registerCmd(w))
	ws := h.s.Workers()
	if len(ws) != 1 || ws[0].RegisteredAt != h.now || ws[0].Capabilities[0] != vacuum || ws[0].Capabilities[2] != balance {
		t.Fatalf("workers %v", ws)
	}
	if w.Capabilities[0] != balance || w.RegisteredAt != 5 {
		t.Fatalf("register modified the command's worker: %v", w)
	}
	// Re-registering replaces identity and capabilities.
	h.ok(registerCmd(&fsmpb.Worker{Id: "w1", Capabilities: []fsmpb.TaskType{vacuum}}))
	if ws := h.s.Workers(); len(ws) != 1 || len(ws[0].Capabilities) != 1 {
		t.Fatalf("workers after re-register %v", ws)
	}
	h.ok(registerCmd(&fsmpb.Worker{Id: "w0"}))
	if ws := h.s.Workers(); len(ws) != 2 || ws[0].Id != "w0" {
		t.Fatalf("workers not ordered: %v", ws)
	}
	h.ok(deregisterCmd("w1"))
	if ws := h.s.Workers(); len(ws) != 1 || ws[0].Id != "w0" {
		t.Fatalf("workers after deregister %v", ws)
	}

	h.ok(adminCmd("a1", "10.0.0.1:7000"))
	h.ok(adminCmd("a1", "10.0.0.2:7000"))
	if a, ok := h.s.AdminAddr("a1"); !ok || a != "10.0.0.2:7000" {
		t.Fatalf("admin a1 = %q %v", a, ok)
	}
	if _, ok := h.s.AdminAddr("a2"); ok {
		t.Fatalf("unknown admin found")
	}
}

func TestErrorsIsAndResultError(t *testing.T) {
	if ResultError(nil) != nil || ResultError(&fsmpb.ApplyResult{Index: 3}) != nil {
		t.Fatalf("success gave an error")
	}
	err := ResultError(&fsmpb.ApplyResult{ErrorCode: codeStale, Error: "task 1: fence 2 is stale"})
	if !errors.Is(err, ErrStaleFence) || errors.Is(err, ErrIllegalTransition) || err.Error() != "task 1: fence 2 is stale" {
		t.Fatalf("ResultError: %v", err)
	}
	for code, sentinel := range map[fsmpb.ErrorCode]error{
		codeInvalid: ErrInvalid, codeNotFnd: ErrNotFound, codeIllegal: ErrIllegalTransition,
		codeStale: ErrStaleFence, codeBusy: ErrVolumeBusy, codeVersion: ErrUnknownVersion,
	} {
		if !errors.Is(errorf(code, "x"), sentinel) {
			t.Errorf("%v does not match its sentinel", code)
		}
	}
	// A sentinel with a message is not a sentinel.
	if errors.Is(errorf(codeStale, "x"), errorf(codeStale, "y")) {
		t.Errorf("two messages matched")
	}
}

func TestNames(t *testing.T) {
	for _, typ := range TaskTypes {
		got, err := ParseTaskType(TypeName(typ))
		if err != nil || got != typ {
			t.Errorf("ParseTaskType(%q) = %v, %v", TypeName(typ), got, err)
		}
	}
	if got, err := ParseTaskType(" EC "); err != nil || got != ecType {
		t.Errorf("ParseTaskType(EC) = %v, %v", got, err)
	}
	if _, err := ParseTaskType("defrag"); err == nil {
		t.Errorf("ParseTaskType accepted defrag")
	}
	for _, st := range allStates {
		got, err := ParseTaskState(StateName(st))
		if err != nil || got != st {
			t.Errorf("ParseTaskState(%q) = %v, %v", StateName(st), got, err)
		}
	}
	if _, err := ParseTaskState("done"); err == nil {
		t.Errorf("ParseTaskState accepted done")
	}
	if TypeName(99) != "unknown(99)" || StateName(99) != "unknown(99)" || ValidType(0) || ValidType(99) {
		t.Errorf("unknown names")
	}
}

// TestAttemptServersHistory: the servers an assignment names are the
// attempt's; a requeue moves them to the history that the next attempt's
// spec sweeps, sorted and deduplicated whatever order the commands used.
func TestAttemptServersHistory(t *testing.T) {
	h := newHarness(t)
	tk := h.ok(submitCmd(fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, 7))
	assign := func(servers ...string) *fsmpb.Task {
		cmd := assignCmd(tk.Id, "w1")
		cmd.GetAssignTask().Servers = servers
		return h.ok(cmd)
	}
	got := assign("b:1", "a:1", "b:1", "")
	if !slices.Equal(got.AttemptServers, []string{"a:1", "b:1"}) || len(got.EarlierServers) != 0 {
		t.Fatalf("first attempt: attempt %v earlier %v", got.AttemptServers, got.EarlierServers)
	}
	got = h.ok(requeueCmd(tk.Id, got.Fence, "worker lost", true))
	if len(got.AttemptServers) != 0 || !slices.Equal(got.EarlierServers, []string{"a:1", "b:1"}) {
		t.Fatalf("requeued: attempt %v earlier %v", got.AttemptServers, got.EarlierServers)
	}
	got = assign("c:1", "a:1")
	if !slices.Equal(got.AttemptServers, []string{"a:1", "c:1"}) || !slices.Equal(got.EarlierServers, []string{"a:1", "b:1"}) {
		t.Fatalf("second attempt: attempt %v earlier %v", got.AttemptServers, got.EarlierServers)
	}
	got = h.ok(requeueCmd(tk.Id, 0, "again", true))
	if !slices.Equal(got.EarlierServers, []string{"a:1", "b:1", "c:1"}) {
		t.Fatalf("second requeue: earlier %v", got.EarlierServers)
	}
}

// TestAttemptHistoryIsVersion2: the attempt history (servers, moves, a
// retry's carried history) is applied only from version-2 commands. A
// version-1 AssignTask, RequeueTask or SubmitTask carrying the fields
// leaves them as they were, as a build that predates them does, so that
// both builds reach the same state; EncodeAgreed with agreed version 1
// writes version 1 without them.
func TestAttemptHistoryIsVersion2(t *testing.T) {
	mv := &fsmpb.Move{Source: "a:1", Target: "b:1"}
	apply := func(h *harness, version uint32, cmd *fsmpb.Command) *fsmpb.Task {
		t.Helper()
		h.idx++
		cmd.Version, cmd.Now = version, h.now
		res := h.s.Apply(h.idx, cmd)
		if res.ErrorCode != codeNone {
			t.Fatalf("%T: %v %s", cmd.Body, res.ErrorCode, res.Error)
		}
		return res.Task
	}
	for _, version := range []uint32{CommandVersion, HistoryVersion} {
		h := newHarness(t)
		sub := submitCmd(fsmpb.TaskType_TASK_TYPE_BALANCE, 7)
		sub.GetSubmitTask().EarlierServers = []string{"z:1", "c:1", "z:1"}
		sub.GetSubmitTask().EarlierMoves = []*fsmpb.Move{{Source: "c:1", Target: "z:1"}}
		tk := apply(h, version, sub)
		as := assignCmd(tk.Id, "w1")
		as.GetAssignTask().Servers, as.GetAssignTask().Move = []string{"b:1", "a:1"}, mv
		got := apply(h, version, as)
		got = apply(h, version, requeueCmd(tk.Id, got.Fence, "lost", true))
		if version == CommandVersion {
			if len(got.EarlierServers)+len(got.AttemptServers)+len(got.EarlierMoves) != 0 || got.AttemptMove != nil {
				t.Errorf("version 1 recorded history: %v", got)
			}
			continue
		}
		if !slices.Equal(got.EarlierServers, []string{"a:1", "b:1", "c:1", "z:1"}) || len(got.AttemptServers) != 0 || got.AttemptMove != nil ||
			len(got.EarlierMoves) != 2 || got.EarlierMoves[0].Source != "c:1" || got.EarlierMoves[1].Target != "b:1" {
			t.Errorf("version 2 history: %v", got)
		}
	}

	// The leader's encoding follows the agreed version.
	for _, agreed := range []uint32{CommandVersion, HistoryVersion, TestCommandVersion} {
		as := assignCmd(3, "w1")
		as.GetAssignTask().Servers, as.GetAssignTask().Move = []string{"a:1"}, mv
		b, err := EncodeAgreed(5, agreed, as)
		if err != nil {
			t.Fatal(err)
		}
		dec, _ := Decode(b)
		want := min(agreed, HistoryVersion)
		if dec.Version != want || (want == CommandVersion) != (dec.GetAssignTask().GetMove() == nil && len(dec.GetAssignTask().GetServers()) == 0) {
			t.Errorf("agreed %d: wrote %v", agreed, dec)
		}
	}

	// Moves are bounded, the newest kept; a submission carrying more is refused.
	h := newHarness(t)
	tk := h.ok(submitCmd(fsmpb.TaskType_TASK_TYPE_BALANCE, 8))
	var got *fsmpb.Task
	for i := range MaxEarlierMoves + 3 {
		as := assignCmd(tk.Id, "w1")
		as.GetAssignTask().Move = &fsmpb.Move{Source: "s:1", Target: fmt.Sprintf("t%d:1", i)}
		got = h.ok(as)
		got = h.ok(requeueCmd(tk.Id, got.Fence, "lost", true))
	}
	if n := len(got.EarlierMoves); n != MaxEarlierMoves || got.EarlierMoves[n-1].Target != fmt.Sprintf("t%d:1", MaxEarlierMoves+2) {
		t.Errorf("earlier moves %d, newest %v", n, got.EarlierMoves[n-1])
	}
	sub := submitCmd(fsmpb.TaskType_TASK_TYPE_BALANCE, 9)
	sub.GetSubmitTask().EarlierMoves = make([]*fsmpb.Move, MaxEarlierMoves+1)
	if res := h.apply(sub); res.ErrorCode != codeInvalid {
		t.Errorf("an oversized history: %v", res)
	}
}
