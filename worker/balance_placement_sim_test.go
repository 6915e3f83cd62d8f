package worker_test

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestBalanceKeepsPlacementAndDiskTypeSim runs balance detection, planning
// and the executor to the end on a simulated cluster of two racks, one
// machine per server and hdd and ssd servers: 010 volumes (hdd and ssd)
// never end with both copies in one rack, a 010 volume placed in one rack
// is fixed, every volume stays on its disk type, and balance settles.
func TestBalanceKeepsPlacementAndDiskTypeSim(t *testing.T) {
	// Server i: rack i%2+1, disk type hdd for i%4 < 2, else ssd.
	e := newSimEnvConfig(t, sim.Config{Servers: 8, RacksPerDataCenter: 2, MaxVolumesPerServer: 10, DistinctHosts: true,
		DiskTypes: []string{"", "", "ssd", "ssd"}})
	spec := sim.VolumeSpec{Size: 2 << 20, FileCount: 5}
	add := func(rp uint32, servers ...int) uint32 {
		s := spec
		s.ReplicaPlacement, s.Servers = rp, servers
		return e.volume(t, s)
	}
	for i := 0; i < 4; i++ {
		add(10, 0, 1) // hdd, racks 1 and 2
		add(10, 2, 3) // ssd, racks 1 and 2
	}
	for i := 0; i < 3; i++ {
		add(0, 0)
	}
	misplaced := add(10, 0, 4) // hdd, both in rack 1

	initial := e.topo(t)
	diskType := map[uint32]string{}
	violations := map[uint32]int{}
	for id, v := range initial.Volumes {
		diskType[id] = v.DiskType
		violations[id] = placement.Violations(v.ReplicaPlacement, placement.VolumeLocations(v))
	}
	if violations[misplaced] == 0 || diskType[2] != "ssd" {
		t.Fatalf("setup: volume %d violations %d, volume 2 disk type %q", misplaced, violations[misplaced], diskType[2])
	}
	ctx := testCtx(t)
	moves := 0
	for round := 0; ; round++ {
		if round == 30 {
			t.Fatalf("balance did not settle in %d rounds (%d moves)", round, moves)
		}
		topo := e.topo(t)
		var props []scheduler.Proposal
		for _, p := range scheduler.Detect(topo, func(uint32) bool { return false }, nil, scheduler.DefaultThresholds(), time.Now()) {
			if p.Type == fsmpb.TaskType_TASK_TYPE_BALANCE {
				props = append(props, p)
			}
		}
		if len(props) == 0 {
			break
		}
		for _, p := range props {
			moves++
			task := &fsmpb.Task{Id: uint64(moves), Type: p.Type, VolumeId: p.VolumeID, Collection: p.Collection, Source: p.Source, Target: p.Target, Attempt: 1, Fence: uint64(10 * moves)}
			if _, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, e.plan(t, task), nil); err != nil {
				t.Fatalf("move %d of volume %d %s -> %s: %v", moves, p.VolumeID, p.Source, p.Target, err)
			}
		}
		after := e.topo(t)
		for id, v := range after.Volumes {
			for _, r := range v.Replicas {
				if placement.DiskTypeKey(r.DiskType) != placement.DiskTypeKey(diskType[id]) || placement.Disk(r.Server, diskType[id]) == nil {
					t.Fatalf("round %d: volume %d (%q) has a replica on %s of disk type %q", round, id, diskType[id], r.Server.ID, r.DiskType)
				}
			}
			got := placement.Violations(v.ReplicaPlacement, placement.VolumeLocations(v))
			if got > violations[id] {
				t.Fatalf("round %d: volume %d placement %03d violations %d -> %d (%v)", round, id, v.ReplicaPlacement, violations[id], got, placement.VolumeLocations(v))
			}
			violations[id] = got
			if len(v.Replicas) != placement.Copies(v.ReplicaPlacement) {
				t.Fatalf("round %d: volume %d has %d replicas", round, id, len(v.Replicas))
			}
		}
	}
	if moves == 0 || violations[misplaced] != 0 {
		t.Fatalf("%d moves; misplaced volume %d ends with violations %d", moves, misplaced, violations[misplaced])
	}
	t.Logf("%d moves", moves)
}
