package worker_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// A retry that finishes an earlier attempt without the originals in its
// spec (a finish spec, or replicas that answered "not found") must ask
// every earlier server whether an original is still there: the leader's
// topology may not list a replica whose server is restarting or cut off
// from the master, and SeaweedFS answers "not found" for a volume an
// operator unmounted (volume.unmount), one on a disk that failed to load,
// or one a copy is still receiving (not for one loading at startup: the
// volume server loads its disks before it serves gRPC). Completing beside
// a surviving original leaves it to come back writable next to the EC
// volume.

// survivingOriginal runs a first attempt of a two-copy volume (rp 001)
// that deletes one original and fails to delete the other, and returns it,
// the volume and the surviving original's server.
func survivingOriginal(t *testing.T, e *simEnv) (first *pb.TaskSpec, vid uint32, orig *sim.VolumeServer) {
	t.Helper()
	ctx := testCtx(t)
	vid = e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, ReplicaPlacement: 1, Servers: []int{0, 1}})
	first = e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	orig, _ = e.c.ServerByAddress(first.Replicas[1])
	h := e.c.InjectFault(sim.Fault{Method: "VolumeDelete", Server: orig.ID(), FailNext: 100})
	_, _ = worker.NewECExecutor(e.vc).Execute(ctx, first, nil) // the worker dies: its answer is dropped
	h.Remove()
	if _, ok := orig.Volume(vid); !ok {
		t.Fatalf("setup: the original of volume %d is gone", vid)
	}
	return first, vid, orig
}

func finishSpecOf(first *pb.TaskSpec) *pb.TaskSpec {
	task := retryEC(3, first)
	return &pb.TaskSpec{Task: task, EarlierServers: task.EarlierServers}
}

// TestECFinishSpecFindsSurvivingOriginal: the master's topology did not
// list the original (its server had not re-registered), so the leader sent
// a finish spec. The worker finds the original on an earlier server and
// finishes as for a named replica: compared with the generation, deleted.
func TestECFinishSpecFindsSurvivingOriginal(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	first, vid, orig := survivingOriginal(t, e)
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
	change, err := worker.NewECExecutor(e.vc).Execute(ctx, finishSpecOf(first), nil)
	if _, ok := orig.Volume(vid); ok {
		t.Fatalf("the finish completed while the original of volume %d is still on %s", vid, orig.ID())
	}
	requireFinished(t, e, vid, change, err, "finish spec with a surviving original")
}

// TestECFinishSpecWaitsForUnansweringServer: an earlier server that cannot
// say whether it holds the volume fails the finish retryably, changing
// nothing.
func TestECFinishSpecWaitsForUnansweringServer(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	first, vid, orig := survivingOriginal(t, e)
	e.c.InjectFault(sim.Fault{Method: "VolumeStatus", Server: orig.ID(), FailNext: 100})
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, finishSpecOf(first), nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable || !strings.Contains(err.Error(), "may still be there") {
		t.Fatalf("finish with %s not answering: %v, want a retryable wait", orig.ID(), err)
	}
	if _, ok := orig.Volume(vid); !ok {
		t.Fatalf("the original of volume %d is gone after the refused finish", vid)
	}
	n := mountedShards(e, vid, 6)
	if n != seaweed.EcTotalShards {
		t.Fatalf("%d shards mounted after the refused finish, want all %d kept", n, seaweed.EcTotalShards)
	}
}

// TestECRetryNotFoundOnceIsNotDeleted: the original answers "not found"
// once (an operator's volume.unmount, then volume.mount; or a copy that
// was still being received) and is there on the second probe: it is a
// replica, compared and deleted as usual, never left beside the EC volume.
func TestECRetryNotFoundOnceIsNotDeleted(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	first, vid, orig := survivingOriginal(t, e)
	e.c.InjectFault(sim.Fault{Method: "VolumeStatus", Server: orig.ID(), FailNext: 1, Err: status.Error(codes.NotFound, "volume not found")})
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
	change, err := worker.NewECExecutor(e.vc).Execute(ctx, staleRetry(first), nil)
	if _, ok := orig.Volume(vid); ok && err == nil {
		t.Fatalf("the retry completed while the original of volume %d is still on %s", vid, orig.ID())
	}
	requireFinished(t, e, vid, change, err, "retry")
}

// TestECRetryProbesOriginalsTheSpecOmits: a three-copy volume (rp 002)
// whose first attempt deleted one original and failed to delete the other
// two. The retry was planned while the third's server was missing from the
// master's topology, so its spec names only the second, which answers.
// The retry must still ask every earlier server: it finds the third
// original, compares it with the generation and deletes it too, never
// completing while it survives.
func TestECRetryProbesOriginalsTheSpecOmits(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, ReplicaPlacement: 2, Servers: []int{0, 1, 2}})
	first := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	if len(first.Replicas) != 3 {
		t.Fatalf("setup: the first attempt names replicas %v, want 3", first.Replicas)
	}
	var survivors []*sim.VolumeServer
	var faults []*sim.FaultHandle
	for _, r := range first.Replicas[1:] {
		s, _ := e.c.ServerByAddress(r)
		survivors = append(survivors, s)
		faults = append(faults, e.c.InjectFault(sim.Fault{Method: "VolumeDelete", Server: s.ID(), FailNext: 100}))
	}
	_, _ = worker.NewECExecutor(e.vc).Execute(ctx, first, nil) // the worker dies: its answer is dropped
	for _, h := range faults {
		h.Remove()
	}
	for _, s := range survivors {
		if _, ok := s.Volume(vid); !ok {
			t.Fatalf("setup: the original of volume %d on %s is gone", vid, s.ID())
		}
	}
	retry := staleRetry(first)
	retry.Replicas = first.Replicas[1:2] // the third's server was not in the topology
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsGenerate", FailNext: 100})
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
	change, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
	for _, s := range survivors {
		if _, ok := s.Volume(vid); ok && err == nil {
			t.Fatalf("the retry completed while the original of volume %d is still on %s", vid, s.ID())
		}
	}
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(change.GetShards()) != seaweed.EcTotalShards {
		t.Fatalf("change places %d shards", len(change.GetShards()))
	}
	requireShardsOnce(t, e, vid)
	requireDurable(t, e.c)
}
