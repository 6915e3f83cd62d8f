package scheduler

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// convergeResult is what a run of balancing rounds until detection
// proposes nothing did.
type convergeResult struct {
	rounds   int
	moves    int
	undone   int // a volume moved back to a server it left
	worsened int // a move that raised its volume's placement violations
	cpu      time.Duration
	spread   [2]int64 // fewest and most volumes on a server at the end
	settled  bool
}

// skewedCluster is servers in dcs data centres of racks racks each, with
// volumes volumes: an eighth 010 (copies in two racks of a data centre),
// an eighth 001 (two servers of a rack), the rest single-copy. Two thirds
// of the copies land on every third server (a third of the cluster holds
// four times the volumes of the rest), placed so every volume satisfies
// its placement. With allReplicated, every volume is 010 or 001 instead
// (odd ids 001), so every move must find a target its placement allows.
func skewedCluster(servers, dcs, racks, volumes int, allReplicated bool) *seaweed.Topology {
	rng := rand.New(rand.NewSource(1))
	nodes := make([]*node, servers)
	// Server i is in data centre i%dcs, rack (i/dcs)%racks; hot when i%3 == 0.
	slots := int64(volumes * 2 * 3 / servers)
	for i := range nodes {
		nodes[i] = srv(fmt.Sprintf("10.%d.%d.%d:8080", i%dcs, (i/dcs)%racks, i), slots).
			Placed(fmt.Sprintf("dc%d", i%dcs), fmt.Sprintf("dc%d-rack%d", i%dcs, (i/dcs)%racks))
	}
	dcOf := func(i int) int { return i % dcs }
	rackOf := func(i int) int { return (i / dcs) % racks }
	pick := func() int {
		for {
			i := rng.Intn(servers)
			if i%3 == 0 || rng.Intn(4) == 0 {
				return i // three in four cold picks are redrawn: two thirds of the copies go to hot servers
			}
		}
	}
	for id := 1; id <= volumes; id++ {
		x := v(uint32(id), 10<<20)
		a := pick()
		kind := id % 8
		if allReplicated {
			kind = id % 2 * 4 // 0: 010, 4: 001
		}
		switch kind {
		case 0: // 010: another rack, same data centre
			x = x.RP(10)
			b := pick()
			for dcOf(b) != dcOf(a) || rackOf(b) == rackOf(a) {
				b = pick()
			}
			nodes[b].Holding(x)
		case 4: // 001: another server, same rack
			x = x.RP(1)
			b := pick()
			for b == a || dcOf(b) != dcOf(a) || rackOf(b) != rackOf(a) {
				b = pick()
			}
			nodes[b].Holding(x)
		}
		nodes[a].Holding(x)
	}
	return build(30, nodes...)
}

// runBalanceRounds runs detection rounds on topo, applying every proposed
// move as completed before the next round (no cooldown: nothing done is
// passed, the worst case for oscillation), until a round proposes nothing
// or maxRounds pass. Every move is checked: a volume moved back to a
// server it left counts as undone; one whose placement violations rise,
// as worsened.
func runBalanceRounds(topo *seaweed.Topology, perRound, maxRounds int) convergeResult {
	th := DefaultThresholds()
	th.BalanceMovesPerRound = perRound
	left := map[uint32]map[string]bool{} // volume -> servers it was moved off
	var r convergeResult
	var detect time.Duration
	for r.rounds < maxRounds {
		start := time.Now()
		props := Detect(topo, idle, nil, th, now)
		detect += time.Since(start)
		if len(props) == 0 {
			r.settled = true
			break
		}
		r.rounds++
		for _, p := range props {
			if p.Type != fsmpb.TaskType_TASK_TYPE_BALANCE {
				continue
			}
			vol := topo.Volumes[p.VolumeID]
			src, _ := topo.Server(p.Source)
			dst, _ := topo.Server(p.Target)
			before := placement.Violations(vol.ReplicaPlacement, placement.VolumeLocations(vol))
			for i := range vol.Replicas {
				if vol.Replicas[i].Server == src {
					vol.Replicas[i].Server = dst
					break
				}
			}
			if placement.Violations(vol.ReplicaPlacement, placement.VolumeLocations(vol)) > before {
				r.worsened++
			}
			sd, dd := placement.Disk(src, vol.DiskType), placement.Disk(dst, vol.DiskType)
			sd.VolumeCount--
			sd.FreeSlots++
			dd.VolumeCount++
			dd.FreeSlots--
			if left[p.VolumeID][p.Target] {
				r.undone++
			}
			if left[p.VolumeID] == nil {
				left[p.VolumeID] = map[string]bool{}
			}
			left[p.VolumeID][p.Source] = true
			r.moves++
		}
	}
	r.cpu = detect
	r.spread = [2]int64{1 << 62, 0}
	for _, s := range topo.Servers {
		c := placement.Disk(s, "").VolumeCount
		r.spread[0], r.spread[1] = min(r.spread[0], c), max(r.spread[1], c)
	}
	return r
}

// TestBalanceConverges: on a skewed 50-server cluster (2 data centres of 5
// racks, 5,000 volumes, a quarter 010 or 001), balancing rounds settle,
// never move a volume back to a server it left, and never make a volume's
// placement worse.
func TestBalanceConverges(t *testing.T) {
	for _, tc := range []struct {
		perRound      int
		allReplicated bool
		volumes       int
		maxSpread     int64
	}{
		// Settled means within the imbalance threshold: 0.2 of the
		// average, 125 copies per server.
		{0, false, 5000, 25}, {64, false, 5000, 25},
		// Every volume 010 or 001 (80 copies per server): placement
		// refuses many pairs, and detection stops once maxBalancePairs
		// pairs find no allowed move, short of the threshold.
		{0, true, 2000, 30},
	} {
		perRound := tc.perRound
		t.Run(fmt.Sprintf("moves per round %d, all replicated %v", perRound, tc.allReplicated), func(t *testing.T) {
			topo := skewedCluster(50, 2, 5, tc.volumes, tc.allReplicated)
			start := placement.Disk(topo.Servers[0], "").VolumeCount
			r := runBalanceRounds(topo, perRound, 2000)
			t.Logf("rounds %d, moves %d, undone %d, worsened %d, detection %s, %d..%d volumes per server (server 0 began with %d)",
				r.rounds, r.moves, r.undone, r.worsened, r.cpu, r.spread[0], r.spread[1], start)
			if !r.settled {
				t.Fatalf("not settled after %d rounds", r.rounds)
			}
			if r.moves < tc.volumes/5 {
				t.Fatalf("only %d moves: the cluster is not skewed", r.moves)
			}
			if r.undone != 0 || r.worsened != 0 {
				t.Fatalf("%d moves undone, %d made a placement worse", r.undone, r.worsened)
			}
			if r.spread[1]-r.spread[0] > tc.maxSpread {
				t.Fatalf("settled with %d..%d volumes per server", r.spread[0], r.spread[1])
			}
		})
	}
}

// BenchmarkBalanceConverges1000: the same on 1,000 servers in 4 data
// centres of 10 racks with 200,000 volumes. One iteration is one whole
// run, from the skewed cluster until detection proposes nothing; the
// detection time (CPU time of the rounds, without applying the moves) is
// reported as detect-s. Run with -benchtime=1x.
func BenchmarkBalanceConverges1000(b *testing.B) {
	for _, perRound := range []int{1000, 100} {
		b.Run(fmt.Sprintf("per-round=%d", perRound), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				topo := skewedCluster(1000, 4, 10, 200_000, false)
				b.StartTimer()
				r := runBalanceRounds(topo, perRound, 100_000)
				if !r.settled {
					b.Fatalf("not settled after %d rounds", r.rounds)
				}
				b.ReportMetric(float64(r.rounds), "rounds")
				b.ReportMetric(float64(r.moves), "moves")
				b.ReportMetric(float64(r.undone), "undone")
				b.ReportMetric(float64(r.worsened), "worsened")
				b.ReportMetric(r.cpu.Seconds(), "detect-s")
				b.ReportMetric(float64(r.spread[1]-r.spread[0]), "final-spread")
			}
		})
	}
}
