package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// liveShards is the distinct shard ids whose file some up server holds.
func liveShards(e *simEnv, vid uint32) map[uint32]bool {
	out := map[uint32]bool{}
	for _, ids := range shardFiles(e, vid) {
		for _, id := range ids {
			out[id] = true
		}
	}
	return out
}

// TestECRebuildVerifyFailureKeepsRepairSim: a volume down to 10 shards
// is rebuilt and the regenerated shards are spread; during the verify a
// server holding present shards dies, so the verify's survey fails. The
// rollback must keep the regenerated shards mounted on their targets and
// the rebuilder's gathered copies of the dead server's shards (no live
// server mounts them): at least 10 distinct shards survive on live
// servers. The old rollback deleted both and left 8: the volume lost.
func TestECRebuildVerifyFailureKeepsRepairSim(t *testing.T) {
	e, vid := encodedSimVolume(t)
	destroyHolders(t, e, vid, 4)
	task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: vid, Attempt: 1, Fence: 11}
	spec := e.plan(t, task)
	involved := map[string]bool{spec.Rebuilder: true}
	for _, st := range spec.ShardTargets {
		involved[st.Server] = true
	}
	victim := ""
	for _, ps := range spec.PresentShards {
		if !involved[ps.Server] {
			victim = ps.Server
			break
		}
	}
	if victim == "" {
		t.Fatal("the fixture's plan has no present holder outside the rebuilder and targets: the test would prove nothing")
	}
	var vs *sim.VolumeServer
	for _, s := range e.c.Servers() {
		if s.ID() == victim || s.GRPCAddress() == victim || strings.HasPrefix(victim, s.ID()+".") {
			vs = s
		}
	}
	if vs == nil {
		t.Fatalf("no sim server %s", victim)
	}
	// First survey (prepare) passes; the verify's survey of the victim
	// finds it dead.
	fired := false
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsInfo", Server: vs.ID(), Skip: 1, FailNext: 100, OnFire: func() {
		if !fired {
			fired = true
			vs.Lose()
		}
	}})
	_, err := worker.NewECRebuildExecutor(e.vc).Execute(testCtx(t), spec, nil)
	t.Logf("execute: %v", err)
	if !fired {
		t.Fatal("fault did not fire")
	}
	live := liveShards(e, vid)
	if len(live) < placement.DataShards {
		t.Fatalf("after the failed verify only %d distinct shards survive on live servers (%v): the rollback destroyed a working repair and the gathered copies of the dead server's shards; data lost", len(live), live)
	}
	mounted := mountedShardIDs(e, vid)
	for _, st := range spec.ShardTargets {
		if !mounted[st.ShardId] {
			t.Errorf("regenerated shard %d is no longer mounted: the rollback undid the repair", st.ShardId)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "kept") {
		t.Errorf("execute: %v, want a failure naming what the rollback kept", err)
	}

	// The retry, planned from the current topology, counts the kept
	// regenerated shards as present: it regenerates only the dead
	// server's shards, or fails without deleting any shard.
	e.c.ClearFaults()
	servers := 0
	for _, s := range e.c.Servers() {
		if s.Up() {
			servers++
		}
	}
	testutil.EventuallyTrue(t, 10*time.Second, "the master to drop the dead server", func() bool {
		return len(e.topo(t).Servers) == servers
	})
	task = &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: vid, Attempt: 2, Fence: 12, EarlierServers: scheduler.SpecServers(spec)}
	retry := e.plan(t, task)
	for _, st := range retry.ShardTargets {
		if mounted[st.ShardId] {
			t.Errorf("the retry regenerates shard %d again, which is mounted", st.ShardId)
		}
	}
	_, rerr := worker.NewECRebuildExecutor(e.vc).Execute(testCtx(t), retry, nil)
	t.Logf("retry: %v", rerr)
	if n := len(liveShards(e, vid)); n < len(live) {
		t.Errorf("the retry lowered the distinct shards on live servers from %d to %d", len(live), n)
	}
}

// mountedShardIDs is the distinct shard ids some up server mounts.
func mountedShardIDs(e *simEnv, vid uint32) map[uint32]bool {
	out := map[uint32]bool{}
	for _, s := range e.c.Servers() {
		if st, ok := s.EcShards(vid); ok && s.Up() {
			for _, id := range st.Mounted {
				out[id] = true
			}
		}
	}
	return out
}

// TestECRebuildRestartRollbackKeepsSpreadShardsSim: a worker died after
// gathering, rebuilding and spreading every regenerated shard to its
// target; before it restarts, a present shard is lost on a server that
// still answers, so Rollback's verify fails. Rollback must keep the
// regenerated shards mounted on their targets (it never lowers the number
// of distinct mounted shards): the volume keeps its 13. The old fallback
// deleted them all and left 9, below the 10 needed to read it.
func TestECRebuildRestartRollbackKeepsSpreadShardsSim(t *testing.T) {
	e, vid := encodedSimVolume(t)
	destroyHolders(t, e, vid, 4)
	task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: vid, Attempt: 1, Fence: 11}
	spec := e.plan(t, task)
	ctx := testCtx(t)
	held := map[uint32]bool{}
	for _, ps := range spec.PresentShards {
		if ps.Server == spec.Rebuilder {
			held[ps.ShardId] = true
		}
	}
	first := len(held) == 0
	for _, ps := range spec.PresentShards {
		if held[ps.ShardId] {
			continue
		}
		held[ps.ShardId] = true
		if err := e.vc.VolumeEcShardsGather(ctx, spec.Rebuilder, vid, "", []uint32{ps.ShardId}, ps.Server, first, 0); err != nil {
			t.Fatal(err)
		}
		first = false
	}
	rebuilt, err := e.vc.VolumeEcShardsRebuild(ctx, spec.Rebuilder, vid, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.vc.VolumeEcShardsMount(ctx, spec.Rebuilder, vid, "", rebuilt); err != nil {
		t.Fatal(err)
	}
	for _, st := range spec.ShardTargets { // the spread, as moveShards does it
		if st.Server == spec.Rebuilder {
			continue
		}
		ids := []uint32{st.ShardId}
		if err := e.vc.VolumeEcShardsCopy(ctx, st.Server, vid, "", ids, spec.Rebuilder, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.vc.VolumeEcShardsMount(ctx, st.Server, vid, "", ids); err != nil {
			t.Fatal(err)
		}
		if err := e.vc.VolumeEcShardsUnmount(ctx, spec.Rebuilder, vid, ids); err != nil {
			t.Fatal(err)
		}
		if err := e.vc.VolumeEcShardsDelete(ctx, spec.Rebuilder, vid, "", ids); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mountedShardIDs(e, vid)); n != 14 {
		t.Fatalf("after the spread %d shards mounted, want 14", n)
	}
	// A disk failure on a holder that is neither rebuilder nor target.
	var lost *fsmpb.ShardPlacement
	for _, ps := range spec.PresentShards {
		if ps.Server != spec.Rebuilder {
			lost = ps
			break
		}
	}
	if err := e.vc.VolumeEcShardsUnmount(ctx, lost.Server, vid, []uint32{lost.ShardId}); err != nil {
		t.Fatal(err)
	}
	if err := e.vc.VolumeEcShardsDelete(ctx, lost.Server, vid, "", []uint32{lost.ShardId}); err != nil {
		t.Fatal(err)
	}
	before := len(mountedShardIDs(e, vid))
	rerr := worker.NewECRebuildExecutor(e.vc).Rollback(ctx, spec)
	after := mountedShardIDs(e, vid)
	t.Logf("Rollback: %v; mounted shards %d -> %d", rerr, before, len(after))
	if len(after) < placement.DataShards {
		t.Fatalf("the restart rollback deleted spread, mounted regenerated shards: %d distinct shards mounted (%v), fewer than %d (it had %d)", len(after), after, placement.DataShards, before)
	}
	if len(after) < before {
		t.Errorf("the restart rollback lowered the distinct mounted shards from %d to %d (%v)", before, len(after), after)
	}
	if rerr == nil || !strings.Contains(rerr.Error(), "kept regenerated shards") {
		t.Errorf("Rollback: %v, want an error naming the regenerated shards it kept", rerr)
	}
}
