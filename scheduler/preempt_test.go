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
// volume); once version 4 is agreed, the next round preempts.
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
	got := tasks()
	if len(got) != 2 || got[0].State != fsmpb.TaskState_TASK_STATE_CANCELLED ||
		got[1].Type != fsmpb.TaskType_TASK_TYPE_REPLICATE || got[1].State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("after version 4 is agreed: tasks %v; want the balance cancelled and a pending replicate", got)
	}
}
