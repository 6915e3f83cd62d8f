package worker_test

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
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

// TestReviewECRebuildVerifyFailureDestroysRepair: a volume down to 10
// shards is rebuilt; regenerated shards are spread; during verify a holder
// of present shards dies. The verify's survey fails, and the in-Execute
// rollback deletes the spread regenerated shards AND the rebuilder's
// gathered copies (without checking they are still mounted elsewhere):
// the volume drops below 10 shards, while without the rollback 14
// distinct shards would survive.
func TestReviewECRebuildVerifyFailureDestroysRepair(t *testing.T) {
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
		t.Skip("no present holder outside the rebuilder and targets")
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
			vs.Destroy()
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
}
