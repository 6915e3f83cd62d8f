package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
)

const rebuildT = fsmpb.TaskType_TASK_TYPE_EC_REBUILD

// TestPlanEcRebuild: volume 7 lost shards 12 and 13 (their server died).
// Six live servers in three racks hold the rest; the plan gathers on the
// server with the most shards, places the two missing shards where the
// volume has fewest (rack, then server), lists every present copy, and
// records the rebuilder and targets as the attempt's servers.
func TestPlanEcRebuild(t *testing.T) {
	topo := build(1024,
		srv(sid(1), 10).Placed("dc1", "r1").Shards(7, 0, 1, 2, 3),
		srv(sid(2), 10).Placed("dc1", "r1").Shards(7, 4, 5),
		srv(sid(3), 10).Placed("dc1", "r2").Shards(7, 6, 7),
		srv(sid(4), 10).Placed("dc1", "r2").Shards(7, 8, 9),
		srv(sid(5), 10).Placed("dc1", "r3").Shards(7, 10, 11),
		srv(sid(6), 10).Placed("dc1", "r3"),
	)
	task := &fsmpb.Task{Id: 5, Type: rebuildT, VolumeId: 7, Fence: 3}
	spec, err := PlanSpec(task, topo, Thresholds{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Rebuilder != swa(1) {
		t.Errorf("rebuilder %s, want %s (holds the most shards)", spec.Rebuilder, swa(1))
	}
	if len(spec.PresentShards) != 12 {
		t.Errorf("present shards %v, want 12", spec.PresentShards)
	}
	if len(spec.ShardTargets) != 2 || spec.ShardTargets[0].ShardId != 12 || spec.ShardTargets[1].ShardId != 13 {
		t.Fatalf("targets %v, want shards 12 and 13", spec.ShardTargets)
	}
	// Rack r3 holds 2, r1 6, r2 4: both go to r3, to the empty server 6
	// (which then holds as many as server 5).
	for _, st := range spec.ShardTargets {
		if st.Server != swa(6) {
			t.Errorf("targets %v, want both on %s (rack r3 holds the fewest)", spec.ShardTargets, swa(6))
		}
	}
	if servers := SpecServers(spec); len(servers) != 2 || servers[0] != swa(1) || servers[1] != swa(6) {
		t.Errorf("SpecServers %v, want the rebuilder and the target", servers)
	}
}

func TestPlanEcRebuildRefusals(t *testing.T) {
	whole := [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {11, 12, 13}}
	nine := [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8}}
	twelve := [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}}
	cases := []struct {
		name   string
		nodes  []*node
		target error
		want   string
	}{
		{"whole", ecServers(7, whole...), placement.ErrPlan, "nothing to rebuild"},
		{"nine left", ecServers(7, nine...), placement.ErrPlan, "not rebuildable"},
		{"not erasure coded", []*node{srv(sid(1), 10, v(7, mib))}, placement.ErrPlan, "not erasure coded"},
		{"unknown", []*node{srv(sid(1), 10)}, placement.ErrPlan, "not found"},
		{"no room", []*node{
			srv(sid(1), 1).WithFree(0).Shards(7, twelve[0]...),
			srv(sid(2), 1).WithFree(0).Shards(7, twelve[1]...),
			srv(sid(3), 1).WithFree(0).Shards(7, twelve[2]...),
		}, placement.ErrPlanWait, "free slots"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanSpec(&fsmpb.Task{Id: 1, Type: rebuildT, VolumeId: 7}, build(1024, tc.nodes...), Thresholds{})
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PlanSpec: %v, want %v containing %q", err, tc.target, tc.want)
			}
		})
	}
}

// TestPlanEcRebuildCapsServers: with one server left with room besides
// the holders, the missing shards still go no more than
// MaxShardsPerServer to a server while another can take them.
func TestPlanEcRebuildCapsServers(t *testing.T) {
	topo := build(1024,
		srv(sid(1), 10).Shards(7, 0, 1, 2, 3),
		srv(sid(2), 10).Shards(7, 4, 5, 6, 7),
		srv(sid(3), 10).Shards(7, 8, 9),
		srv(sid(4), 10),
	)
	spec, err := PlanSpec(&fsmpb.Task{Id: 1, Type: rebuildT, VolumeId: 7}, topo, Thresholds{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{sid(1): 4, sid(2): 4, sid(3): 2}
	for _, st := range spec.ShardTargets {
		per[st.Server]++
	}
	for s, n := range per {
		if n > placement.MaxShardsPerServer {
			t.Errorf("%s ends with %d shards, more than %d", s, n, placement.MaxShardsPerServer)
		}
	}
	if err := placement.CheckSpread(per); err != nil {
		t.Errorf("layout after the rebuild: %v", err)
	}
}
