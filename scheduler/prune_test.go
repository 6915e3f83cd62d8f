package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func finished(id uint64, st fsmpb.TaskState, ago time.Duration) *fsmpb.Task {
	return &fsmpb.Task{Id: id, State: st, FinishedAt: now.Add(-ago).UnixNano()}
}

func TestPruneCandidates(t *testing.T) {
	const (
		done      = fsmpb.TaskState_TASK_STATE_COMPLETED
		failed    = fsmpb.TaskState_TASK_STATE_FAILED
		cancelled = fsmpb.TaskState_TASK_STATE_CANCELLED
	)
	week, cooldown := 7*24*time.Hour, 30*time.Minute
	tasks := []*fsmpb.Task{
		finished(1, done, 8*24*time.Hour),      // too old
		finished(2, failed, 8*24*time.Hour),    // too old
		finished(3, cancelled, 6*24*time.Hour), // young enough
		finished(4, done, 9*24*time.Hour),      // too old, but kept (unreported change)
		finished(5, failed, 10*time.Minute),    // recent failure
		finished(6, done, time.Minute),         // recent
		finished(7, done, time.Minute),         // recent, finished at the same time as 6
		finished(8, cancelled, 20*time.Minute), // a cancel in its cooldown
	}
	keep := func(id uint64) bool { return id == 4 }
	for _, tc := range []struct {
		name string
		r    Retention
		want []uint64
	}{
		{"age only", Retention{MaxAge: week}, []uint64{1, 2}},
		{"count keeps the most recently finished", Retention{MaxAge: week, MaxCount: 4}, []uint64{1, 2, 3}},
		// 7 and 6 finished together: the higher id counts as more recent.
		{"count ties broken by id", Retention{MaxAge: week, MaxCount: 1}, []uint64{1, 2, 3, 6}},
		// Tasks 5 (failed 10 min ago) and 8 (cancelled 20 min ago) are beyond
		// both limits but in their cooldown.
		{"a failure in its cooldown stays", Retention{MaxAge: 5 * time.Minute, MaxCount: 1}, []uint64{1, 2, 3, 6}},
	} {
		got := PruneCandidates(tasks, keep, now, tc.r, cooldown)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: pruned %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := PruneCandidates(tasks, nil, now, Retention{MaxAge: week}, cooldown); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Errorf("without keep: pruned %v, want [1 2 4]", got)
	}
	// The input order does not matter and is not changed.
	rev := slices.Clone(tasks)
	slices.Reverse(rev)
	before := slices.Clone(rev)
	if got := PruneCandidates(rev, keep, now, Retention{MaxAge: week, MaxCount: 4}, cooldown); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("reversed input: pruned %v", got)
	}
	if !slices.Equal(rev, before) {
		t.Error("PruneCandidates reordered its input")
	}
}

func TestRetentionValidate(t *testing.T) {
	for _, tc := range []struct {
		r  Retention
		ok bool
	}{
		{DefaultRetention(), true},
		{Retention{MaxAge: time.Hour}, true},
		{Retention{MaxAge: 59 * time.Minute}, false},
		{Retention{MaxAge: time.Hour, MaxCount: -1}, false},
		{Retention{MaxAge: time.Hour, ForgetWorkersAfter: time.Hour}, true},
		{Retention{MaxAge: time.Hour, ForgetWorkersAfter: 59 * time.Minute}, false},
	} {
		if err := tc.r.Validate(30 * time.Minute); (err == nil) != tc.ok {
			t.Errorf("%+v: error %v, want ok=%v", tc.r, err, tc.ok)
		}
	}
	if err := (Retention{MaxAge: 2 * time.Hour}).Validate(3 * time.Hour); err == nil {
		t.Error("a retention shorter than the failure cooldown was accepted")
	}
}

// TestPruneProposes: the leader forgets old finished tasks through the log,
// in commands of at most fsm.MaxPrune ids, and keeps live tasks and those
// with an unreported capacity change.
func TestPruneProposes(t *testing.T) {
	f := fsm.New()
	old := now.Add(-8 * 24 * time.Hour)
	var cmds []*fsmpb.Command
	n := fsm.MaxPrune + 5
	for i := range n {
		cmds = append(cmds, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(i + 1)}))
	}
	for i := range n - 2 {
		cmds = append(cmds, fsm.CancelCmd(uint64(i+1), 0, "", "test"))
	}
	// Task n-1 completes with a change the master has not reported; task n stays pending.
	last := uint64(n - 1)
	cmds = append(cmds,
		fsm.AssignCmd(last, "w1", nil, nil))
	applyAll(t, f, old, cmds...)
	a := &fsmApplier{f: f, index: uint64(len(cmds)), at: old}
	fence := uint64(len(cmds))
	a.applyAll(t,
		fsm.StartCmd(last, fence, ""),
		fsm.CompleteCmd(last, fence, "", &fsmpb.CapacityChange{TaskId: last, VolumeId: uint32(last)}),
	)

	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	before := a.index
	s.prune(context.Background(), now)
	if got := a.index - before; got != 2 {
		t.Errorf("prune took %d commands, want 2 (at most %d ids each)", got, fsm.MaxPrune)
	}
	f.Read(func(st *fsm.State) {
		left := st.Tasks(fsm.TaskFilter{})
		if len(left) != 2 || left[0].Id != last || left[1].Id != uint64(n) {
			var ids []uint64
			for _, tk := range left {
				ids = append(ids, tk.Id)
			}
			t.Fatalf("left %v, want the completed task with a change (%d) and the pending one (%d)", ids, last, n)
		}
		if st.CountByState(fsmpb.TaskState_TASK_STATE_CANCELLED) != 0 {
			t.Errorf("%d cancelled tasks left in the state index", st.CountByState(fsmpb.TaskState_TASK_STATE_CANCELLED))
		}
	})
	// Nothing more to do: no further proposals.
	before = a.index
	s.prune(context.Background(), now)
	if a.index != before {
		t.Errorf("a second prune proposed %d commands", a.index-before)
	}
}

// TestPruneKeepsMovesInCooldown: a completed move inside the cooldown stays
// (detection reads it to leave its volume where it went), beyond the count
// limit too; a completed vacuum or an older move goes.
func TestPruneKeepsMovesInCooldown(t *testing.T) {
	cooldown := 30 * time.Minute
	move := func(id uint64, ago time.Duration) *fsmpb.Task {
		x := finished(id, fsmpb.TaskState_TASK_STATE_COMPLETED, ago)
		x.Type = fsmpb.TaskType_TASK_TYPE_BALANCE
		return x
	}
	vacuum := finished(3, fsmpb.TaskState_TASK_STATE_COMPLETED, 10*time.Minute)
	vacuum.Type = fsmpb.TaskType_TASK_TYPE_VACUUM
	tasks := []*fsmpb.Task{move(1, 5*time.Minute), move(2, 40*time.Minute), vacuum, move(4, time.Minute)}
	got := PruneCandidates(tasks, nil, now, Retention{MaxAge: 20 * time.Minute, MaxCount: 1}, cooldown)
	if !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("pruned %v, want [2 3]: the moves inside the cooldown stay", got)
	}
}
