package scheduler

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestBalanceNeverWorsensPlacement runs balance detection to its end on
// random clusters (2 data centres × 3 racks, hdd and ssd disks, volumes
// with placements 000, 001, 010, 100 and 110 skewed onto a few servers,
// some misplaced), applying each proposed move to the topology: no move
// changes a volume's disk type, a well-placed volume stays well placed, a
// misplaced one's Violations never grow, every proposal is plannable, and
// the cluster settles.
func TestBalanceNeverWorsensPlacement(t *testing.T) {
	placements := []uint32{0, 1, 10, 100, 110}
	var total, fixed, undone int
	defer func() {
		t.Logf("%d moves, %d of them lowering a misplaced volume's violations, %d back to a server the volume left", total, fixed, undone)
		if total == 0 || fixed == 0 {
			t.Errorf("%d moves, %d fixing placement: the clusters do not exercise balance", total, fixed)
		}
	}()
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			var nodes []*node
			for dc := 1; dc <= 2; dc++ {
				for rack := 1; rack <= 3; rack++ {
					for k := 0; k < 2; k++ {
						n := srv(fmt.Sprintf("10.%d.%d.%d:8080", dc, rack, k), 20).Placed(fmt.Sprintf("dc%d", dc), fmt.Sprintf("r%d", rack))
						nodes = append(nodes, n)
					}
				}
			}
			ssd := map[int][]vol{}
			for id := uint32(1); id <= 60; id++ {
				rp := placements[rng.Intn(len(placements))]
				x := v(id, uint64(1+rng.Intn(10))*mib).RP(rp)
				onSSD := rng.Intn(4) == 0
				// Copies on servers picked from the first few (skew); CanAdd
				// decides where unless the volume is to be misplaced.
				misplace := rng.Intn(5) == 0
				var locs []placement.Location
				var chosen []int
				for tries := 0; len(chosen) < placement.Copies(rp) && tries < 200; tries++ {
					i := rng.Intn(len(nodes))
					if tries < 100 {
						i = rng.Intn(4)
					}
					l := placement.Location{DC: fmt.Sprintf("dc%d", i/6+1), Rack: fmt.Sprintf("r%d", i%6/2+1), Server: fmt.Sprint(i), Host: fmt.Sprint(i)}
					if slices.Contains(chosen, i) || !misplace && !placement.CanAdd(rp, locs, l) {
						continue
					}
					locs, chosen = append(locs, l), append(chosen, i)
				}
				for _, i := range chosen {
					if onSSD {
						ssd[i] = append(ssd[i], x)
					} else {
						nodes[i].Holding(x)
					}
				}
			}
			for i, n := range nodes {
				if i%3 != 2 {
					n.WithDisk("ssd", 10, ssd[i]...)
				}
			}
			topo := build(100, nodes...)
			th := DefaultThresholds()
			left := map[string]bool{} // volume/server pairs a move left
			for round := 0; ; round++ {
				if round == 500 {
					t.Fatalf("balance did not settle in %d moves", round)
				}
				var moves []Proposal
				for _, p := range Detect(topo, idle, nil, th, now) {
					if p.Type == fsmpb.TaskType_TASK_TYPE_BALANCE {
						moves = append(moves, p)
					}
				}
				if len(moves) == 0 {
					return
				}
				assertPlannable(t, topo, moves)
				for _, p := range moves {
					vol := topo.Volumes[p.VolumeID]
					src, _ := topo.Server(p.Source)
					dst, _ := topo.Server(p.Target)
					before := placement.VolumeLocations(vol)
					vb := placement.Violations(vol.ReplicaPlacement, before)
					moveReplica(t, vol, src, dst)
					va := placement.Violations(vol.ReplicaPlacement, placement.VolumeLocations(vol))
					total++
					if left[fmt.Sprint(vol.ID, dst.ID)] {
						undone++
					}
					left[fmt.Sprint(vol.ID, src.ID)] = true
					if va < vb {
						fixed++
					}
					if va > vb || vb == 0 && placement.Misplaced(vol.ReplicaPlacement, placement.VolumeLocations(vol)) {
						t.Fatalf("round %d: moving volume %d (placement %03d) %s -> %s: violations %d -> %d (%v -> %v)", round, vol.ID, vol.ReplicaPlacement, src.ID, dst.ID, vb, va, before, placement.VolumeLocations(vol))
					}
				}
			}
		})
	}
}

// moveReplica moves v's replica on src to dst in the topology, as the
// master would list it after the move, failing if dst has no free slot of
// v's disk type.
func moveReplica(t *testing.T, v *seaweed.Volume, src, dst *seaweed.Server) {
	t.Helper()
	ds, dd := placement.Disk(src, v.DiskType), placement.Disk(dst, v.DiskType)
	if ds == nil || dd == nil || dd.FreeSlots <= 0 {
		t.Fatalf("volume %d (disk type %q) moved %s -> %s: no free slot of its type there", v.ID, v.DiskType, src.ID, dst.ID)
	}
	for i := range v.Replicas {
		if v.Replicas[i].Server == src {
			v.Replicas[i].Server = dst
			ds.VolumeCount, ds.FreeSlots = ds.VolumeCount-1, ds.FreeSlots+1
			dd.VolumeCount, dd.FreeSlots = dd.VolumeCount+1, dd.FreeSlots-1
			return
		}
	}
	t.Fatalf("volume %d has no replica on %s", v.ID, src.ID)
}
