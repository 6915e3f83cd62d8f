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
// its placement.
func skewedCluster(servers, dcs, racks, volumes int) *seaweed.Topology {
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
		switch id % 8 {
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
	for _, perRound := range []int{0, 64} {
		t.Run(fmt.Sprintf("moves per round %d", perRound), func(t *testing.T) {
			topo := skewedCluster(50, 2, 5, 5000)
			start := placement.Disk(topo.Servers[0], "").VolumeCount
			r := runBalanceRounds(topo, perRound, 2000)
			t.Logf("rounds %d, moves %d, undone %d, worsened %d, detection %s, %d..%d volumes per server (server 0 began with %d)",
				r.rounds, r.moves, r.undone, r.worsened, r.cpu, r.spread[0], r.spread[1], start)
			if !r.settled {
				t.Fatalf("not settled after %d rounds", r.rounds)
			}
			if r.moves < 1000 {
				t.Fatalf("only %d moves: the cluster is not skewed", r.moves)
			}
			if r.undone != 0 || r.worsened != 0 {
				t.Fatalf("%d moves undone, %d made a placement worse", r.undone, r.worsened)
			}
			// Settled means within the imbalance threshold (0.2 of the
			// average usage, 10,000 copies over 50 servers: 200 each).
			if r.spread[1]-r.spread[0] > 40 {
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
				topo := skewedCluster(1000, 4, 10, 200_000)
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
