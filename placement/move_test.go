package placement

import (
	"errors"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestPlanMovePlacementAndDiskType: a fresh move keeps the volume's disk
// type and replica placement, whether the target is chosen or named by an
// operator; a misplaced volume may move where it ends no worse.
func TestPlanMovePlacementAndDiskType(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	for _, tc := range []struct {
		name           string
		nodes          []*topotest.Node
		source, target string
		wantSrc        string
		wantDst        string
		wantErr        string
		wait           bool // wantErr is an ErrPlanWait
	}{
		{name: "010: chosen target is in another rack than the other copy",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10), v(2, 1), v(3, 1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(10)).Placed("dc1", "r2"),
				srv(sid(3), 10).Placed("dc1", "r2"), // the copy moving off r2 may stay in r2
				srv(sid(4), 10, v(4, 1)).Placed("dc1", "r1"),
			},
			source: sid(2), wantSrc: sid(2), wantDst: sid(3)},
		{name: "010: never next to its other copy",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10), v(2, 1), v(3, 1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(10)).Placed("dc1", "r2"),
				srv(sid(3), 10).Placed("dc1", "r2"),
				srv(sid(4), 10, v(4, 1)).Placed("dc1", "r1"),
			},
			source: sid(1), wantSrc: sid(1), wantDst: sid(4)},
		{name: "010: an operator's target next to the other copy is refused",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(10)).Placed("dc1", "r2"),
				srv(sid(3), 10).Placed("dc1", "r2"),
			},
			source: sid(1), target: sid(3), wantErr: "would break its replica placement 010"},
		{name: "010: no server keeps the placement",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(10)).Placed("dc1", "r2"),
				srv(sid(3), 10).Placed("dc1", "r2"),
			},
			source: sid(1), wantErr: "placement 010 allows a copy"},
		{name: "010 misplaced in one rack: moves to the other rack",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10), v(2, 1)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(10)).Placed("dc1", "r1"),
				srv(sid(3), 10, v(3, 1), v(4, 1)).Placed("dc1", "r2"),
				srv(sid(4), 10).Placed("dc1", "r1"),
			},
			wantSrc: sid(1), wantDst: sid(4)}, // no worse in r1; r2 would fix it but is fuller
		{name: "100: never into the other copy's data center",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(100)).Placed("dc1", "r1"),
				srv(sid(2), 10, v(1, 10).RP(100)).Placed("dc2", "r1"),
				srv(sid(3), 10).Placed("dc2", "r2"),
				srv(sid(4), 10, v(5, 1)).Placed("dc3", "r1"),
			},
			source: sid(1), wantSrc: sid(1), wantDst: sid(4)},
		{name: "001: never onto the other copy's machine",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1), v(2, 1)),
				srv(sid(2), 10, v(1, 10).RP(1)),
				srv("10.0.0.2:8081", 10),
				srv(sid(3), 10, v(3, 1)),
			},
			source: sid(1), wantSrc: sid(1), wantDst: sid(3)},
		{name: "001: an operator's target on the other copy's machine is refused",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)),
				srv(sid(2), 10, v(1, 10).RP(1)),
				srv("10.0.0.2:8081", 10),
			},
			source: sid(1), target: "10.0.0.2:8081", wantErr: "is on machine 10.0.0.2, which already holds a copy of volume 1"},
		// The twin of volume 1 (010) is on a server missing from this
		// topology, in r2: moving the listed copy into r2 would look no
		// worse, and put both copies in one rack once the twin is back.
		{name: "010 with a copy missing from the topology waits",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10), v(2, 1)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r2"),
			},
			wait: true, wantErr: "lists 1 of the 2 copies"},
		{name: "010 with a copy missing: an operator's target waits too",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(10), v(2, 1)).Placed("dc1", "r1"),
				srv(sid(3), 10).Placed("dc1", "r2"),
			},
			source: sid(1), target: sid(3), wait: true, wantErr: "lists 1 of the 2 copies"},
		{name: "replicas on two disk types are not moved",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10).RP(1)),
				srv(sid(2), 10).WithDisk("ssd", 4, v(1, 10).RP(1)),
				srv(sid(3), 10).WithDisk("ssd", 4),
			},
			source: sid(2), wantErr: "replicas on more than one disk type"},
		{name: "a volume with EC shards listed is not moved",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10), v(2, 1)).Shards(1, 0, 1, 2),
				srv(sid(2), 10),
			},
			wantErr: "also has EC shards"},
		{name: "ssd volume: only an ssd disk with a free slot",
			nodes: []*topotest.Node{
				srv(sid(1), 10).WithDisk("ssd", 4, v(1, 10), v(2, 1), v(3, 1)),
				srv(sid(2), 10), // empty hdd, no ssd
				srv(sid(3), 10).WithDisk("ssd", 2, v(4, 1), v(5, 1)), // ssd full
				srv(sid(4), 10, v(6, 1), v(7, 1)).WithDisk("ssd", 4, v(8, 1)),
			},
			wantSrc: sid(1), wantDst: sid(4)},
		{name: "ssd volume: an operator's target without ssd is refused",
			nodes: []*topotest.Node{
				srv(sid(1), 10).WithDisk("ssd", 4, v(1, 10)),
				srv(sid(2), 10),
			},
			target: sid(2), wantErr: "has no ssd disk"},
		{name: "ssd volume: an operator's target with a full ssd is refused",
			nodes: []*topotest.Node{
				srv(sid(1), 10).WithDisk("ssd", 4, v(1, 10)),
				srv(sid(2), 10).WithDisk("ssd", 1, v(2, 1)),
			},
			target: sid(2), wantErr: "no free volume slot on its ssd disk"},
		{name: "hdd volume: free ssd slots do not count",
			nodes: []*topotest.Node{
				srv(sid(1), 10, v(1, 10)),
				srv(sid(2), 0).WithDisk("ssd", 10),
				srv(sid(3), 10, v(2, 1), v(3, 1)),
			},
			wantSrc: sid(1), wantDst: sid(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := topotest.Build(30000, tc.nodes...)
			task := &fsmpb.Task{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 1, Source: tc.source, Target: tc.target}
			src, dst, err := PlanMove(task, topo.Volumes[1], topo)
			if tc.wantErr != "" {
				want := ErrPlan
				if tc.wait {
					want = ErrPlanWait
				}
				if err == nil || !errors.Is(err, want) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("PlanMove = %v, %v, %v; want %v saying %q", src, dst, err, want, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanMove: %v", err)
			}
			if src.ID != tc.wantSrc || dst.ID != tc.wantDst {
				t.Fatalf("PlanMove = %s -> %s, want %s -> %s", src.ID, dst.ID, tc.wantSrc, tc.wantDst)
			}
		})
	}
}
