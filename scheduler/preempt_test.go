package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestRepairPreemptsOnlyWhenItCanBeSubmitted: a due repair of a volume
// with a pending routine task cancels that task and takes its place, but
// only once the repair can be written: while an admin of an older build
// (command version 3) is a member, the routine task is left alone (a
// cancel then would be for nothing, every round, on every degraded
// volume); so it is while the pending-only cancel (version 6) is not
// agreed; once it is, the next round preempts.
func TestRepairPreemptsOnlyWhenItCanBeSubmitted(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now, agreed: fsm.OwnerVersion}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	s.cfg.Thresholds.RepairAfter = 0
	ctx := context.Background()
	const mib = 1 << 20
	// Volume 8 (001) has one copy left; a first-attempt balance of it waits.
	topo := build(100, srv(sid(1), 20, vrp(8, 10*mib, 1)), srv(sid(2), 20), srv(sid(3), 20))
	a.applyAll(t, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 8}))
	tasks := func() (out []*fsmpb.Task) {
		f.Read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{}) })
		return out
	}
	s.detect(ctx, topo)
	if got := tasks(); len(got) != 1 || got[0].State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("before version 4 is agreed: tasks %v; want the balance still pending and no repair", got)
	}
	a.agreed = fsm.RepairVersion
	s.detect(ctx, topo)
	if got := tasks(); len(got) != 1 || got[0].State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("at version 4: tasks %v; want the balance still pending (its cancel needs version 6)", got)
	}
	a.agreed = fsm.CurrentVersion
	s.detect(ctx, topo)
	got := tasks()
	if len(got) != 2 || got[0].State != fsmpb.TaskState_TASK_STATE_CANCELLED ||
		got[1].Type != fsmpb.TaskType_TASK_TYPE_REPLICATE || got[1].State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("after version 6 is agreed: tasks %v; want the balance cancelled and a pending replicate", got)
	}
}

// TestLeaderCancelsSpareAssignedTasks: the detection pass reads a task as
// pending and then cancels it (a routine task a repair takes the place of,
// a repair whose volume is whole again); when the assignment pass hands
// the task to a worker in between, the cancel must leave that attempt
// alone: cancelled under its worker, the task would free its volume for
// another task while the worker still runs on it.
func TestLeaderCancelsSpareAssignedTasks(t *testing.T) {
	const mib = 1 << 20
	// assignFirst commits an assignment of the cancel's task just before
	// the cancel itself.
	assignFirst := func(cmd *fsmpb.Command) *fsmpb.Command {
		if c := cmd.GetCancelTask(); c != nil {
			return fsm.AssignCmd(c.TaskId, "w1", nil, nil)
		}
		return nil
	}
	t.Run("preempted routine task", func(t *testing.T) {
		f := fsm.New()
		a := &fsmApplier{f: f, at: now, agreed: fsm.CurrentVersion}
		s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
		s.cfg.Thresholds.RepairAfter = 0
		topo := build(100, srv(sid(1), 20, vrp(8, 10*mib, 1)), srv(sid(2), 20), srv(sid(3), 20))
		a.applyAll(t, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 8}))
		a.interpose = assignFirst
		s.detect(context.Background(), topo)
		var got []*fsmpb.Task
		f.Read(func(st *fsm.State) { got = st.Tasks(fsm.TaskFilter{}) })
		if len(got) != 1 || got[0].State != fsmpb.TaskState_TASK_STATE_ASSIGNED || got[0].WorkerId != "w1" {
			t.Fatalf("tasks %v; want only the balance, assigned to w1 (the repair waits for it)", got)
		}
	})
	t.Run("repair whose volume is whole again", func(t *testing.T) {
		f := fsm.New()
		a := &fsmApplier{f: f, at: now, agreed: fsm.CurrentVersion}
		s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
		// Volume 8 (001) has both copies again; its replicate is pending.
		topo := build(100, srv(sid(1), 20, vrp(8, 10*mib, 1)), srv(sid(2), 20, vrp(8, 10*mib, 1)), srv(sid(3), 20))
		a.applyAll(t, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 8, Origin: "repair"}))
		var ids []uint64
		f.Read(func(st *fsm.State) {
			ids = WholeAgain(st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING}}), topo)
		})
		if len(ids) != 1 {
			t.Fatalf("WholeAgain = %v; want the pending replicate (the test's premise)", ids)
		}
		a.interpose = assignFirst
		s.cancelWholeAgain(context.Background(), topo)
		var got *fsmpb.Task
		f.Read(func(st *fsm.State) { got, _ = st.Task(ids[0]) })
		if got.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || got.WorkerId != "w1" {
			t.Fatalf("task %v; want the replicate still assigned to w1", got)
		}
	})
}
