package worker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// ecPartlyDeleted runs a first EC attempt on an rp 001 volume whose second
// original's delete fails for good: the shards are complete, one original
// is gone. It returns the volume and the first attempt's spec.
func ecPartlyDeleted(t *testing.T, e *simEnv) (uint32, *pb.TaskSpec) {
	t.Helper()
	vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, ReplicaPlacement: 1, Servers: []int{0, 1}})
	first := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	s1, _ := e.c.ServerByAddress(first.Replicas[1])
	h := e.c.InjectFault(sim.Fault{Method: "VolumeDelete", Server: s1.ID(), FailNext: 100})
	_, err := worker.NewECExecutor(e.vc).Execute(testCtx(t), first, nil)
	h.Remove()
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable {
		t.Fatalf("first attempt: %v; want a permanent failure after deleting one original", err)
	}
	topo := e.topo(t)
	if v := topo.Volumes[vid]; v == nil || len(v.Replicas) != 1 || topo.EcVolumes[vid].ShardCount() != seaweed.EcTotalShards {
		t.Fatalf("after the first attempt: %+v, %d shards", v, topo.EcVolumes[vid].ShardCount())
	}
	return vid, first
}

// TestECRetryFinishesEarlierGeneration: a retry (requeued, or a new task
// from `ctl task retry` carrying the history) of an encode that left a
// complete generation and deleted one of two originals deletes the other
// original; it must never sweep the 14 good shards and encode the survivor.
// A spread fault on the retry's own plan shows it never gets that far.
func TestECRetryFinishesEarlierGeneration(t *testing.T) {
	for _, attempt := range []uint32{2, 1} {
		e := newSimEnv(t, 6)
		ctx := testCtx(t)
		vid, first := ecPartlyDeleted(t, e)
		task := &fsmpb.Task{Id: 4, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: attempt, Fence: 20, EarlierServers: scheduler.SpecServers(first)}
		retry := e.plan(t, task)
		e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", FailNext: 100})
		e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsGenerate", FailNext: 100})
		change, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
		if err != nil {
			t.Fatalf("attempt %d: retry: %v", attempt, err)
		}
		if len(change.Shards) != seaweed.EcTotalShards {
			t.Fatalf("attempt %d: change places %d shards", attempt, len(change.Shards))
		}
		requireShardsOnce(t, e, vid)
	}
}

// TestECRetryRefusesDifferingSurvivor: the original that survived the first
// attempt's deletes took writes afterwards (its server restarted, which
// drops the attempt's freeze). Deleting it would lose them; encoding it
// would sweep the only copy of what the deleted original held. The retry
// deletes nothing, says why, and leaves the survivor read-only.
func TestECRetryRefusesDifferingSurvivor(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, first := ecPartlyDeleted(t, e)
	survivor := first.Replicas[1]
	if err := e.vc.VolumeMarkWritable(ctx, survivor, vid); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WriteReplica(vid, survivor, 1<<20, 2); err != nil {
		t.Fatal(err)
	}
	task := retryEC(3, first)
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, e.plan(t, task), nil)
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("retry: %v; want a permanent refusal saying the survivor differs", err)
	}
	s, _ := e.c.ServerByAddress(survivor)
	if v, ok := s.Volume(vid); !ok || !v.ReadOnly {
		t.Fatalf("survivor: present %v read-only %v; want kept read-only", ok, v.ReadOnly)
	}
	if n := e.topo(t).EcVolumes[vid].ShardCount(); n != seaweed.EcTotalShards {
		t.Fatalf("%d shards left; want the generation kept", n)
	}
}

// TestECNeverSweepsShardsItDidNotMake: a volume whose EC generation lives
// on servers no attempt of this task used (another encode; or, as here,
// the first attempt of a task submitted anew without history, e.g. a
// replica back after its volume was encoded) is refused, by the planner
// and by the executor handed such a spec, and the shards stay.
func TestECNeverSweepsShardsItDidNotMake(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, first := ecPartlyDeleted(t, e)
	task := &fsmpb.Task{Id: 9, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 30}
	if _, err := scheduler.PlanSpec(task, e.topo(t), scheduler.DefaultThresholds()); !errors.Is(err, placement.ErrPlan) || !strings.Contains(err.Error(), "already has EC shards") {
		t.Fatalf("plan: %v; want a refusal", err)
	}
	// A spec from a leader that does not refuse.
	spec := e.plan(t, &fsmpb.Task{Id: 9, Type: task.Type, VolumeId: vid, Attempt: 1, Fence: 30, EarlierServers: scheduler.SpecServers(first)})
	spec.Task.EarlierServers, spec.EarlierServers = nil, nil
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
	if err == nil || !strings.Contains(err.Error(), "already has EC shards") {
		t.Fatalf("execute: %v; want a refusal", err)
	}
	if n := e.topo(t).EcVolumes[vid].ShardCount(); n != seaweed.EcTotalShards {
		t.Fatalf("%d shards left; want the generation kept", n)
	}
}

// abandonedAfterCopy plans a first EC attempt (planFirstEC) and plays it
// abandoned after generating the shards on its source and copying the
// first target's shards to that target (other, served by s), before
// mounting them there and before any rollback.
func abandonedAfterCopy(ctx context.Context, t *testing.T, e *simEnv) (vid uint32, first *pb.TaskSpec, other string, s *sim.VolumeServer) {
	t.Helper()
	vid, _, first = e.planFirstEC(t)
	src := first.Replicas[0]
	other, moved := firstTargetOffSource(first, src)
	if err := errors.Join(
		e.vc.VolumeMarkReadonly(ctx, src, vid, false),
		e.vc.VolumeEcShardsGenerate(ctx, src, vid, ""),
		e.vc.VolumeEcShardsCopy(ctx, other, vid, "", moved, src, 0),
	); err != nil {
		t.Fatalf("abandoned attempt: %v", err)
	}
	s, _ = e.c.ServerByAddress(other)
	return vid, first, other, s
}

// TestECRetrySweepsUnmountedLeftoversOfEarlierServers: an abandoned
// attempt copied shards to a server but died before mounting them there;
// the master does not list them (only mounted shards are reported), and
// the retry is planned onto other servers. Only the earlier attempt's
// servers name that one: the retry must sweep it there, or the old
// generation's files come back beside the new one.
func TestECRetrySweepsUnmountedLeftoversOfEarlierServers(t *testing.T) {
	e := newSimEnv(t, 8)
	ctx := testCtx(t)
	// Abandoned after the copy, before mounting it and before any
	// rollback; the source's own shards are torn down by a restart of the
	// source's server (nothing of this generation is mounted anywhere).
	vid, first, other, s := abandonedAfterCopy(ctx, t, e)
	if st, ok := s.EcShards(vid); !ok || len(st.Files) == 0 || len(st.Mounted) != 0 {
		t.Fatalf("%s: %+v; want unmounted shard files", other, st)
	}
	if _, ok := e.topo(t).EcVolumes[vid]; ok {
		t.Fatalf("the master lists shards of volume %d; the test needs none listed", vid)
	}
	task := retryEC(1, first)
	s.SetMaxVolumes(0)
	retry := e.plan(t, task)
	for _, st := range retry.ShardTargets {
		if st.Server == other {
			t.Fatalf("the retry is planned onto %s again; the test needs it elsewhere", other)
		}
	}
	if _, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st, ok := s.EcShards(vid); ok && len(st.Files) > 0 {
		t.Errorf("%s still has EC files of volume %d from the abandoned attempt: %+v", other, vid, st)
	}
	requireShardsOnce(t, e, vid)
}

// TestECRetryWaitsForDownEarlierServer: a shard target of an earlier
// attempt is down (its leftovers would be mounted again when it starts).
// The master lists every replica the placement asks for, so it holds no
// original the encode needs: the leader plans the retry rather than wait
// for a server that may never return, and the worker, which cannot ask
// it, fails the attempt retryably, naming it and the way out, and changes
// nothing (the task ends after its retries); once the server is back the
// retry sweeps it and encodes.
func TestECRetryWaitsForDownEarlierServer(t *testing.T) {
	e := newSimEnv(t, 8)
	ctx := testCtx(t)
	vid, first, other, s := abandonedAfterCopy(ctx, t, e)
	task := retryEC(1, first)
	s.Stop()
	retry, err := scheduler.PlanSpec(task, e.topo(t), scheduler.DefaultThresholds())
	if err != nil || !slices.Contains(retry.EarlierServers, other) {
		t.Fatalf("plan with %s down, every replica listed: %v, %v; want a plan naming it among the earlier servers", other, retry, err)
	}
	_, err = worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "submit a new one") {
		t.Fatalf("retry with %s down: %v; want a retryable failure naming it and the way out", other, err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	// A fresh client: the old one's connection to the server backs off.
	vc := simtest.VolumeClient(t)
	if _, err := worker.NewECExecutor(vc).Execute(ctx, e.plan(t, task), nil); err != nil {
		t.Fatalf("retry with %s back: %v", other, err)
	}
	requireShardsOnce(t, e, vid)
}
