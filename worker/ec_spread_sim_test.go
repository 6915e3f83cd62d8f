package worker_test

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestECSpreadAcrossRacksSim plans and runs an encode on a simulated
// cluster of two data centres of three racks, with hdd and ssd servers:
// the hdd volume's 14 shards end 7 per data centre, 2 or 3 per rack, at
// most 2 per server, none on an ssd server.
func TestECSpreadAcrossRacksSim(t *testing.T) {
	// Server i is in rack i%6 (dc1: racks 1-3 of i%6 < 3, dc2 the rest);
	// servers 6 and 13 are ssd, so each rack has two hdd servers.
	e := newSimEnvConfig(t, sim.Config{Servers: 14, DataCenters: 2, RacksPerDataCenter: 3, MaxVolumesPerServer: 10, DistinctHosts: true,
		DiskTypes: []string{"", "", "", "", "", "", "ssd"}})
	vid := e.volume(t, sim.VolumeSpec{Size: 20 << 20, FileCount: 40, Servers: []int{0}})
	task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10}
	if _, err := worker.NewECExecutor(e.vc).Execute(testCtx(t), e.plan(t, task), nil); err != nil {
		t.Fatalf("encode: %v", err)
	}
	topo := e.topo(t)
	ev, ok := topo.EcVolumes[vid]
	if !ok || ev.ShardCount() != 14 {
		t.Fatalf("volume %d: EC shards %v, want all 14", vid, ev)
	}
	if _, left := topo.Volumes[vid]; left {
		t.Fatalf("volume %d still listed after the encode", vid)
	}
	perDC, perRack, perServer := map[string]int{}, map[string]int{}, map[string]int{}
	for shard, holders := range ev.Shards {
		if len(holders) != 1 {
			t.Fatalf("shard %d on %v, want one server", shard, holders)
		}
		s, _ := topo.Server(holders[0])
		if _, hdd := s.Disks[""]; !hdd {
			t.Errorf("shard %d on %s, which has no hdd disk", shard, s.ID)
		}
		perDC[s.DataCenter]++
		perRack[s.DataCenter+"/"+s.Rack]++
		perServer[s.ID]++
	}
	if len(perDC) != 2 || perDC["dc1"] != 7 || perDC["dc2"] != 7 {
		t.Errorf("shards per data centre %v, want 7 and 7", perDC)
	}
	for r, n := range perRack {
		if n < 2 || n > 3 {
			t.Errorf("rack %s holds %d shards, want 2 or 3: %v", r, n, perRack)
		}
	}
	for s, n := range perServer {
		if n > 2 {
			t.Errorf("server %s holds %d shards, want at most 2", s, n)
		}
	}
	if len(perRack) != 6 {
		t.Errorf("shards in %d racks, want all 6: %v", len(perRack), perRack)
	}
}
