package worker_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestBalanceAdoptStoppedBeforeUnfreeze: a retry adopts the earlier
// attempt's identical copy, deletes the source and stops before unfreezing
// the copy (the unfreeze never lands: a crash between the two steps). The
// volume is then a single frozen copy. The next retry must not report the
// move done with it frozen: it is planned again and its executor, finding
// the source gone and the copy frozen by the attempt, makes it writable,
// deleting nothing.
func TestBalanceAdoptStoppedBeforeUnfreeze(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	vid, task, first := e.abandonedMove(t)

	dst, _ := e.c.ServerByAddress(first.Target)
	src, _ := e.c.ServerByAddress(first.Source)
	stopped := false
	e.c.InjectFault(sim.Fault{Method: "VolumeMarkWritable", Server: dst.ID(), VolumeID: vid, FailNext: 1,
		Err: status.Error(codes.Unavailable, "worker crashed"), OnFire: func() { stopped = true }})
	task = retryMove(task, first)
	second := e.plan(t, task)
	if _, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, second, nil); err == nil || !stopped {
		t.Fatalf("the adopting attempt: err %v, stopped before the unfreeze %v", err, stopped)
	}
	if _, ok := src.Volume(vid); ok {
		t.Fatal("the source still holds the volume: the attempt did not get past its delete")
	}
	if v, ok := dst.Volume(vid); !ok || !v.ReadOnly {
		t.Fatalf("the copy after the stopped attempt: present %v %+v; want it frozen", ok, v)
	}
	// The stopped attempt's rollback finds the source gone and changes nothing.
	if err := worker.NewBalanceExecutor(e.vc).Rollback(ctx, second); err != nil {
		t.Fatalf("rollback: %v", err)
	}

	task = &fsmpb.Task{Id: 2, Type: task.Type, VolumeId: vid, Source: task.Source, Target: task.Target, Attempt: 3, Fence: 30,
		EarlierServers: scheduler.SpecServers(second), EarlierMoves: movesOf(first)}
	third, err := scheduler.PlanSpec(task, e.topo(t), scheduler.DefaultThresholds())
	if err != nil {
		t.Fatalf("the third attempt is not planned (%v): the frozen copy would stay frozen", err)
	}
	change, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, third, nil)
	if err != nil {
		t.Fatalf("the third attempt: %v", err)
	}
	if change.Source != first.Source || change.Target != first.Target {
		t.Errorf("change %v", change)
	}
	if v, ok := dst.Volume(vid); !ok || v.ReadOnly || v.FileCount != 20 {
		t.Fatalf("the copy after the third attempt: present %v %+v; want it writable with 20 files", ok, v)
	}
	if _, ok := src.Volume(vid); ok {
		t.Fatal("the source holds the volume again")
	}
	if err := e.c.WriteReplica(vid, first.Target, 1<<10, 1); err != nil {
		t.Fatalf("a write to the moved volume: %v", err)
	}
}
