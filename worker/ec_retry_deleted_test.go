package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// A worker killed right after its EC attempt deleted the originals never
// reports. The leader plans the retry from a topology a second behind,
// which still names the deleted replicas (staleRetry), or, once it lists
// the volume as EC-only, gives a finish spec naming no replica. Either way
// the retry finishes the earlier attempt's work: it completes, deletes
// nothing the generation does not replace, and loses nothing.

// staleRetry is the retry of first as a leader whose topology predates the
// earlier attempt's deletes plans it: the same replicas and targets, with
// the earlier attempt's servers.
func staleRetry(first *pb.TaskSpec) *pb.TaskSpec {
	spec := proto.Clone(first).(*pb.TaskSpec)
	spec.Task.Attempt, spec.Task.Fence = 2, 20
	spec.Task.EarlierServers = scheduler.SpecServers(first)
	spec.EarlierServers = spec.Task.EarlierServers
	return spec
}

func requireDurable(t *testing.T, c *sim.Cluster) {
	t.Helper()
	if v := violations(c); len(v) > 0 {
		t.Fatalf("durability violations: %v", v)
	}
}

// encodedAndDeleted runs a whole first EC attempt (task 3) of a one-copy
// volume: the shards are spread and the original
// is deleted. It returns the volume and the attempt's spec.
func encodedAndDeleted(ctx context.Context, t *testing.T, e *simEnv) (uint32, *pb.TaskSpec) {
	t.Helper()
	vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, Servers: []int{0}})
	first := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	if _, err := worker.NewECExecutor(e.vc).Execute(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	return vid, first
}

// requireFinished checks an EC attempt's outcome: what completed, placing
// every shard, each mounted once, and nothing was lost.
func requireFinished(t *testing.T, e *simEnv, vid uint32, change *fsmpb.CapacityChange, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(change.GetShards()) != seaweed.EcTotalShards {
		t.Fatalf("change places %d shards", len(change.GetShards()))
	}
	requireShardsOnce(t, e, vid)
	requireDurable(t, e.c)
}

// TestECRetryFinishesWithOriginalsDeleted: every original deleted (rp 000
// and 001), or one of two (the other's delete failed); the retry's spec
// names them all.
func TestECRetryFinishesWithOriginalsDeleted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rp      uint32
		servers []int
		partial bool // the second original's delete fails
	}{
		{"rp000 deleted", 0, []int{0}, false},
		{"rp001 both deleted", 1, []int{0, 1}, false},
		{"rp001 one deleted", 1, []int{0, 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, 6)
			ctx := testCtx(t)
			vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, ReplicaPlacement: tc.rp, Servers: tc.servers})
			first := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
			var h *sim.FaultHandle
			if tc.partial {
				s1, _ := e.c.ServerByAddress(first.Replicas[1])
				h = e.c.InjectFault(sim.Fault{Method: "VolumeDelete", Server: s1.ID(), FailNext: 100})
			}
			// The worker dies before reporting: its answer is dropped.
			_, _ = worker.NewECExecutor(e.vc).Execute(ctx, first, nil)
			if h != nil {
				h.Remove()
			}
			retry := staleRetry(first)
			// The retry must never encode again or tear a shard down.
			e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsGenerate", FailNext: 100})
			e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
			change, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
			requireFinished(t, e, vid, change, err, "retry naming deleted originals")
		})
	}
}

// TestECFinishSpecCompletes: the finish spec the leader plans once its
// topology lists the volume as EC-only (no replica, no targets, the
// earlier servers) completes without touching the shards.
func TestECFinishSpecCompletes(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, first := encodedAndDeleted(ctx, t, e)
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsTeardown", FailNext: 100})
	change, err := worker.NewECExecutor(e.vc).Execute(ctx, finishSpecOf(first), nil)
	requireFinished(t, e, vid, change, err, "finish spec")
}

// TestECRetryDeletedOriginalIncompleteGenerationRefused: the original is
// gone and one shard of the generation is missing. The retry must not
// sweep what is left (it may be all there is of the volume): it refuses,
// retryably, changing nothing. A first attempt naming a missing replica
// fails as before.
func TestECRetryDeletedOriginalIncompleteGenerationRefused(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, first := encodedAndDeleted(ctx, t, e)
	holder := first.ShardTargets[13].Server
	if err := e.vc.VolumeEcShardsUnmount(ctx, holder, vid, []uint32{13}); err != nil {
		t.Fatal(err)
	}
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, staleRetry(first), nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable || !strings.Contains(err.Error(), "changing nothing") {
		t.Fatalf("retry over an incomplete generation: %v, want a retryable refusal that changes nothing", err)
	}
	n := mountedShards(e, vid, 6)
	if n != 13 {
		t.Fatalf("%d shards mounted after the refused retry, want the 13 left", n)
	}
	firstAgain := proto.Clone(first).(*pb.TaskSpec)
	if _, err := worker.NewECExecutor(e.vc).Execute(ctx, firstAgain, nil); err == nil || !errors.Is(err, worker.ErrVolumeNotFound) {
		t.Fatalf("first attempt naming a missing replica: %v, want volume not found", err)
	}
}
