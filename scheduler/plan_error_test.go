package scheduler

import (
	"context"
	"errors"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
)

// TestPlanErrorReasons: a plan error's task error is its reason without
// its marker, and only a wait is taken for one.
func TestPlanErrorReasons(t *testing.T) {
	if r, ok := planWaitReason(placement.Waitf("later")); !ok || r != "later" {
		t.Errorf("planWaitReason(wait) = %q, %v", r, ok)
	}
	if _, ok := planWaitReason(placement.Errorf("never")); ok {
		t.Errorf("planWaitReason took a final plan error for a wait")
	}
	if r := planFailReason(placement.Errorf("never")); r != "never" {
		t.Errorf("planFailReason(plan error) = %q, want the reason alone", r)
	}
	if r := planFailReason(errors.New("cannot plan task: not a PlanError")); r != "cannot plan task: not a PlanError" {
		t.Errorf("planFailReason(other error) = %q, want it whole", r)
	}
}

// TestUnplannableTaskFailsWithTheReasonAlone: a task that cannot be planned
// fails, its recorded error the plan error's reason without the marker
// (what `ctl` shows operators).
func TestUnplannableTaskFailsWithTheReasonAlone(t *testing.T) {
	s, a := schedulerAtNow()
	f := a.f
	if res, err := a.Apply(context.Background(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 3})); err != nil || fsm.ResultError(res) != nil {
		t.Fatalf("submit: %v %v", err, fsm.ResultError(res))
	}
	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	spec, planErr := PlanSpec(task, build(30, srv(sid(1), 10, v(4, 7<<20))), DefaultThresholds())
	if !errors.Is(planErr, placement.ErrPlan) {
		t.Fatalf("PlanSpec = %v, %v; want ErrPlan", spec, planErr)
	}
	s.assignOne(context.Background(), task, "w1", spec, planErr)
	f.Read(func(st *fsm.State) {
		got, _ := st.Task(1)
		if want := "volume 3 not found in the master's topology"; got.State != fsmpb.TaskState_TASK_STATE_FAILED || got.LastError != want {
			t.Fatalf("task after a plan refusal: %s %q; want failed %q", fsm.StateName(got.State), got.LastError, want)
		}
	})
}
