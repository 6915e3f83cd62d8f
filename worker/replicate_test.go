package worker_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// lostCopy adds a 001 volume on servers 0 and 1, writes to it, and loses
// server 1 for good; it returns the volume and replicate task 5's first
// attempt, planned from the topology without server 1.
func lostCopy(t *testing.T, e *simEnv) (uint32, *fsmpb.Task, *pb.TaskSpec) {
	t.Helper()
	vid := e.volume(t, sim.VolumeSpec{Size: 4 << 20, FileCount: 20, ReplicaPlacement: 1, Servers: []int{0, 1}})
	if err := e.c.Write(vid, 1<<20, 5); err != nil {
		t.Fatal(err)
	}
	e.c.Server(1).Lose()
	waitUnlisted(t, e, 1)
	task := &fsmpb.Task{Id: 5, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: vid, Attempt: 1, Fence: 10}
	return vid, task, e.plan(t, task)
}

// waitUnlisted waits until the master no longer lists server i.
func waitUnlisted(t *testing.T, e *simEnv, i int) {
	t.Helper()
	testutil.EventuallyTrue(t, 30*time.Second, fmt.Sprintf("the master to drop server %d", i), func() bool {
		_, ok := e.topo(t).FindServer(e.addr(i))
		return !ok
	})
}

func holders(e *simEnv, vid uint32) []int {
	var out []int
	for i, s := range e.c.Servers() {
		if _, ok := s.Volume(vid); ok {
			out = append(out, i)
		}
	}
	return out
}

// TestReplicateExecutor: the copy lands on the planned target, holds what
// the source holds, is writable, and the durability check is clean again.
func TestReplicateExecutor(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid, _, spec := lostCopy(t, e)
	if v := e.c.Durability(); len(v) != 1 {
		t.Fatalf("durability after the loss: %v; want volume %d's redundancy lost", v, vid)
	}
	change, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst, ok := e.c.ServerByAddress(spec.Target)
	if !ok || dst.Index() < 2 || change.Target != spec.Target || change.Type != fsmpb.TaskType_TASK_TYPE_REPLICATE {
		t.Fatalf("copy to %s (server %v), change %v", spec.Target, dst, change)
	}
	src, _ := e.c.Server(0).Volume(vid)
	got, ok := dst.Volume(vid)
	if !ok || got.ReadOnly || got.FileCount != src.FileCount || got.Size != src.Size {
		t.Fatalf("copy on server %d: present %v %+v; want writable like the source %+v", dst.Index(), ok, got, src)
	}
	if v := e.c.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the repair: %v", v)
	}
}

// TestReplicateRollbackDeletesOnlyItsCopy: a tail that fails deletes the
// copy the attempt made; the source is untouched and the failure
// retryable.
func TestReplicateRollbackDeletesOnlyItsCopy(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid, _, spec := lostCopy(t, e)
	dst, _ := e.c.ServerByAddress(spec.Target)
	e.c.InjectFault(sim.Fault{Method: "VolumeTailReceiver", Server: dst.ID(), VolumeID: vid, FailNext: 1,
		Err: status.Error(codes.Unavailable, "injected")})
	_, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, spec, nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable || !f.RolledBack || f.Step != worker.StepReplicateTail {
		t.Fatalf("failed tail: %v (%+v); want a retryable, rolled back failure in the tail", err, f)
	}
	if h := holders(e, vid); !slices.Equal(h, []int{0}) {
		t.Fatalf("volume %d on servers %v after the rollback; want the source only", vid, h)
	}
	if v, _ := e.c.Server(0).Volume(vid); v.ReadOnly {
		t.Fatal("the source was left read-only")
	}
}

// TestReplicateNeverOverwritesAHolder: a target that holds the volume, not
// from an earlier attempt of the task, is refused for good and nothing is
// deleted.
func TestReplicateNeverOverwritesAHolder(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 4 << 20, FileCount: 20, ReplicaPlacement: 2, Servers: []int{0, 1, 2}})
	e.c.Server(2).Lose()
	waitUnlisted(t, e, 2)
	task := &fsmpb.Task{Id: 5, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: vid, Attempt: 1, Fence: 10}
	spec := e.plan(t, task)
	spec.Target = e.addr(1) // a holder
	_, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, spec, nil)
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable {
		t.Fatalf("copy onto a holder: %v; want a permanent failure", err)
	}
	if h := holders(e, vid); !slices.Equal(h, []int{0, 1}) {
		t.Fatalf("volume %d on servers %v; want both holders kept", vid, h)
	}
}

// TestReplicateRetryAdoptsEarlierCopy: a replicate whose completion was
// lost is retried onto its earlier copy, which it verifies and adopts: no
// second copy is made, and the volume keeps its two copies.
func TestReplicateRetryAdoptsEarlierCopy(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid, task, first := lostCopy(t, e)
	if _, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	retryTask := &fsmpb.Task{Id: task.Id, Type: task.Type, VolumeId: vid, Attempt: 2, Fence: 20, EarlierServers: scheduler.SpecServers(first)}
	retry := e.plan(t, retryTask)
	if retry.Target != first.Target {
		t.Fatalf("retry planned onto %s; want the earlier copy on %s", retry.Target, first.Target)
	}
	e.c.ResetOpLog()
	if _, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, retry, nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for _, o := range e.c.OpLog() {
		if o.Method == "VolumeCopy" || o.Method == "VolumeDelete" {
			t.Fatalf("the retry of a complete copy ran %s", o)
		}
	}
	if h := holders(e, vid); len(h) != 2 || h[0] != 0 {
		t.Fatalf("volume %d on servers %v; want the source and the adopted copy", vid, h)
	}
	if v := e.c.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability: %v", v)
	}
}

// TestReplicateSourceInMaintenance: a planned source in maintenance mode
// is passed over for another replica.
func TestReplicateSourceInMaintenance(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 4 << 20, FileCount: 20, ReplicaPlacement: 2, Servers: []int{0, 1, 2}})
	e.c.Server(2).Lose()
	waitUnlisted(t, e, 2)
	spec := e.plan(t, &fsmpb.Task{Id: 5, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: vid, Attempt: 1, Fence: 10})
	src, _ := e.c.ServerByAddress(spec.Source)
	src.SetMaintenance(true)
	change, err := worker.NewReplicateExecutor(e.vc).Execute(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sameAddr := change.Source == spec.Source; sameAddr {
		t.Fatalf("copied from %s, in maintenance", change.Source)
	}
	if h := holders(e, vid); len(h) != 3 {
		t.Fatalf("volume %d on servers %v; want three copies", vid, h)
	}
}
