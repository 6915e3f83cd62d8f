package placement

import (
	"errors"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestPlanReplicate: the new copy lands where the placement asks for it,
// on the volume's disk type, with a free slot, never on a server or
// machine holding a copy; a retry returns to its earlier copy; no target
// or nothing missing is refused as a plan error.
func TestPlanReplicate(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	for _, tc := range []struct {
		name             string
		nodes            []*topotest.Node
		earlier          []string
		wantSrc, wantDst string
		wantErr          string
	}{
		{name: "001: another server of the same rack, the emptiest",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(2, 1), v(3, 1)).Placed("dc1", "r1"),
				srv(sid(3), 10, v(4, 1)).Placed("dc1", "r1"),
				srv(sid(4), 10).Placed("dc1", "r2"), // emptiest, but another rack
			},
			wantSrc: sid(1), wantDst: sid(3)},
		{name: "010: another rack",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10)).Placed("dc1", "r1"),
				srv(sid(2), 10).Placed("dc1", "r1"),
				srv(sid(3), 10, v(4, 1)).Placed("dc1", "r2"),
			},
			wantSrc: sid(1), wantDst: sid(3)},
		{name: "002 with two copies: the third in their rack, from the fuller copy",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(2)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 20).RP(2)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r2"),
				srv(sid(4), 10, v(5, 1)).Placed("dc1", "r1"),
			},
			wantSrc: sid(2), wantDst: sid(4)},
		{name: "no free slot",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 1, v(2, 1)).Placed("dc1", "r1"),
			},
			wantErr: "placement 001 allows one"},
		{name: "not on the volume's disk type",
			nodes: []*topotest.Node{
				srv(sid(1), 0).WithDisk("ssd", 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 10).Placed("dc1", "r1"),
			},
			wantErr: "free ssd slot"},
		{name: "on another machine than the copy's when one qualifies",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv("10.0.0.1:8081", 10).At("10.0.0.1:8081", 18081).Placed("dc1", "r1"),
				srv(sid(3), 10, v(2, 1), v(3, 1)).Placed("dc1", "r1"),
			},
			wantSrc: sid(1), wantDst: sid(3)},
		{name: "on the copy's machine only as a last resort",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv("10.0.0.1:8081", 10).At("10.0.0.1:8081", 18081).Placed("dc1", "r1"),
			},
			wantSrc: sid(1), wantDst: "10.0.0.1:8081"},
		{name: "nothing missing",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r1"),
			},
			wantErr: "already has 2 of the 2 copies"},
		{name: "retry: back to the earlier attempt's copy",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 4).RP(1)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r1"),
			},
			earlier: []string{topotest.SWA(2)}, wantSrc: sid(1), wantDst: sid(2)},
		{name: "retry whose earlier target holds nothing: a fresh target",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(2, 1), v(3, 1)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r1"),
			},
			earlier: []string{topotest.SWA(3)}, wantSrc: sid(1), wantDst: sid(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := topotest.Build(100, tc.nodes...)
			task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 1, EarlierServers: tc.earlier}
			src, dst, err := PlanReplicate(task, topo.Volumes[1], topo)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want an ErrPlan with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.ID != tc.wantSrc || dst.ID != tc.wantDst {
				t.Fatalf("planned %s -> %s, want %s -> %s", src.ID, dst.ID, tc.wantSrc, tc.wantDst)
			}
			if tc.earlier == nil && !SatisfiesPlacement(topo.Volumes[1].ReplicaPlacement, append(VolumeLocations(topo.Volumes[1]), ServerLocation(dst))) {
				t.Fatalf("copy on %s does not satisfy the placement", dst.ID)
			}
		})
	}
}

// TestReplicaTargetsSpreadOverLoad: the repairs of many volumes that lost
// a copy to the same server, planned one after another with each plan
// counted as load, land on every qualifying server in turn rather than all
// on the emptiest, never more on a server than it has free slots, and the
// same inputs always give the same targets (ties end on the server id).
func TestReplicaTargetsSpreadOverLoad(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	var vols []topotest.Vol
	for id := uint32(1); id <= 12; id++ {
		vols = append(vols, v(id, 10).RP(1))
	}
	topo := topotest.Build(100,
		srv(sid(1), 20, vols...).Placed("dc1", "r1"),
		srv(sid(2), 3).Placed("dc1", "r1"), // emptiest, three free slots
		srv(sid(3), 5, v(20, 1), v(21, 1)).Placed("dc1", "r1"),
		srv(sid(4), 5, v(22, 1), v(23, 1)).Placed("dc1", "r1"),
	)
	plan := func() []string {
		load := map[string]int{}
		var got []string
		for id := uint32(1); id <= 12; id++ {
			task := &fsmpb.Task{Id: uint64(id), Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: id}
			_, dst, err := PlanReplicateLoaded(task, topo.Volumes[id], topo, load)
			if err != nil {
				got = append(got, "none")
				continue
			}
			load[dst.ID]++
			got = append(got, dst.ID)
		}
		return got
	}
	got := plan()
	count := map[string]int{}
	for _, d := range got {
		count[d]++
	}
	// Free slots: s2 3, s3 3, s4 3; nine copies fit, three wait.
	if count[sid(2)] != 3 || count[sid(3)] != 3 || count[sid(4)] != 3 || count["none"] != 3 {
		t.Fatalf("targets %v (by server %v); want three on each of %s, %s, %s and three without a slot", got, count, sid(2), sid(3), sid(4))
	}
	// Spread, not filled one after another: the first three go to three servers.
	if got[0] == got[1] || got[1] == got[2] || got[0] == got[2] {
		t.Fatalf("the first three targets %v share a server", got[:3])
	}
	for i := 0; i < 20; i++ {
		if again := plan(); strings.Join(again, ",") != strings.Join(got, ",") {
			t.Fatalf("planned %v, then %v from the same inputs", got, again)
		}
	}
}
