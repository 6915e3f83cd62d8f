package worker_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestBalanceRetryFreezesEarlierCopyBeforeComparing: the retry of a move
// compares the earlier attempt's copy on the target (a replica the master
// lists, writable) with the source and, the copy being behind, deletes it.
// A write offered to that copy between the comparison and the delete must
// be refused: acknowledged, it would be deleted with the copy.
func TestBalanceRetryFreezesEarlierCopyBeforeComparing(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	vid, task, first := e.abandonedMove(t)
	// The source took a write after a partial rollback: the copy is behind.
	if err := e.vc.VolumeMarkWritable(ctx, first.Source, vid); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WriteReplica(vid, first.Source, 1<<20, 3); err != nil {
		t.Fatal(err)
	}
	// A client writes to the copy just as the retry deletes it (the delete
	// is first refused as "being copied", and retried).
	dst, _ := e.c.ServerByAddress(first.Target)
	var writeErr error
	fired := false
	e.c.InjectFault(sim.Fault{Method: "VolumeDelete", Server: dst.ID(), VolumeID: vid, FailNext: 1,
		Err:    status.Errorf(codes.Unknown, "volume %d is being copied", vid),
		OnFire: func() { fired, writeErr = true, e.c.WriteReplica(vid, first.Target, 1<<10, 1) }})

	task = retryMove(task, first)
	retry := e.plan(t, task)
	change, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, retry, nil)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !fired {
		t.Fatal("the retry never deleted the earlier copy")
	}
	if writeErr == nil {
		t.Fatalf("a write to the earlier copy was acknowledged between the comparison and its delete, then deleted with it (change %v)", change)
	}
	if v, ok := dst.Volume(vid); !ok || v.ReadOnly || v.FileCount != 23 {
		t.Fatalf("target after the move: present %v %+v; want writable with 23 files", ok, v)
	}
}

// TestBalanceRetryAfterCompletedMoveKeepsReplicas: a move submitted with
// neither source nor target (rp 001: two replicas) copies to a third server
// and deletes its source, and its completion is lost. The retry must find
// the move done, never plan the other original replica as a source and
// delete it beside the "adopted" copy: the volume keeps two replicas.
func TestBalanceRetryAfterCompletedMoveKeepsReplicas(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 8 << 20, FileCount: 20, ReplicaPlacement: 1, Servers: []int{0, 1}})
	task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: vid, Attempt: 1, Fence: 10}
	first := e.plan(t, task)
	if _, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	// The completion is lost; the lease expires; the task is requeued.
	task = &fsmpb.Task{Id: 2, Type: task.Type, VolumeId: vid, Attempt: 2, Fence: 20, EarlierServers: scheduler.SpecServers(first), EarlierMoves: movesOf(first)}
	retry, err := scheduler.PlanSpec(task, e.topo(t), scheduler.DefaultThresholds())
	var done *scheduler.AlreadyDone
	if !errors.As(err, &done) {
		if err == nil {
			_, err = worker.NewBalanceExecutor(e.vc).Execute(ctx, retry, nil)
			t.Errorf("the retry was planned %s -> %s (%v); want the move found done", retry.Source, retry.Target, err)
		} else {
			t.Errorf("retry plan: %v; want AlreadyDone", err)
		}
	} else if done.Change.Source != first.Source || done.Change.Target != first.Target {
		t.Errorf("done change %v; want the first attempt's move %s -> %s", done.Change, first.Source, first.Target)
	}
	if n := len(e.topo(t).Volumes[vid].Replicas); n != 2 {
		t.Fatalf("volume %d has %d replicas after the retry, want 2", vid, n)
	}
}
