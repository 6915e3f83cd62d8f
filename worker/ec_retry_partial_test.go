package worker_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// An attempt abandoned mid-spread (its rollback could not tear down) leaves
// every shard mounted once, most on the source. The retry must not delete
// the originals into that lopsided placement: it sweeps it (every original
// is there) and encodes again, spread as a fresh plan spreads.
func TestECRetryDoesNotFinishLopsidedGeneration(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, ReplicaPlacement: 1, Servers: []int{0, 1}})
	first := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	var h2 *sim.FaultHandle
	h1 := e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", Skip: 1, FailNext: 1, OnFire: func() {
		h2 = e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsUnmount", FailNext: 1000})
	}})
	if _, err := worker.NewECExecutor(e.vc).Execute(ctx, first, nil); err == nil {
		t.Fatal("first attempt succeeded despite the injected copy fault")
	}
	h1.Remove()
	if h2 == nil {
		t.Fatal("the copy fault never fired")
	}
	h2.Remove()
	task := retryEC(3, first)
	retry := e.plan(t, task)
	change, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	per := map[string]int{}
	for _, s := range change.GetShards() {
		per[s.Server]++
	}
	if err := placement.CheckSpread(per); err != nil {
		t.Fatalf("the retry left the shards %v: %v", per, err)
	}
	topo := e.topo(t)
	for id, ss := range topo.EcVolumes[vid].Shards {
		if len(ss) != 1 {
			t.Errorf("shard %d listed on %v, want once", id, ss)
		}
	}
	perTopo := map[string]int{}
	for _, ss := range topo.EcVolumes[vid].Shards {
		for _, s := range ss {
			perTopo[s]++
		}
	}
	if err := placement.CheckSpread(perTopo); err != nil {
		t.Fatalf("the master lists the shards %v: %v", perTopo, err)
	}
}

// A complete generation, one original deleted; one shard holder is down
// when the retry runs. The retry must fail retryably and touch nothing:
// no holder's shards torn down, the replica not deleted.
func TestECRetryHolderDownTouchesNothing(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, first := ecPartlyDeleted(t, e)
	topo := e.topo(t)
	var down string
	for id := uint32(13); ; id-- {
		if ss := topo.EcVolumes[vid].Shards[id]; len(ss) > 0 && ss[0] != first.Replicas[1] && ss[0] != first.Replicas[0] {
			down = ss[0]
			break
		}
	}
	task := retryEC(3, first)
	retry := e.plan(t, task)
	s, _ := e.c.ServerByAddress(down)
	h := e.c.InjectFault(sim.Fault{Server: s.ID(), FailNext: 100000})
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable || !strings.Contains(err.Error(), "changing nothing") {
		t.Fatalf("retry with a holder down: %v, want a retryable failure that changes nothing", err)
	}
	h.Remove()
	n := mountedShards(e, vid, 6)
	if n != 14 {
		t.Fatalf("%d shards mounted after the refused retry, want all 14", n)
	}
	if _, ok := e.topo(t).Volumes[vid]; !ok {
		t.Fatal("the remaining replica was deleted")
	}
}
