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
