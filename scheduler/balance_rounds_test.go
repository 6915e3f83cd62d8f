package scheduler

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestDetectBalanceSeveralMovesPerRound: one round proposes moves of
// different volumes until the projected usage is balanced or the setting's
// bound is reached, each judged with the earlier ones counted as in flight.
func TestDetectBalanceSeveralMovesPerRound(t *testing.T) {
	s1, s2, s3 := sid(1), sid(2), sid(3)
	eight := func() []*node {
		return []*node{srv(s1, 10, v(1, 10), v(2, 20), v(3, 30), v(4, 40), v(5, 50), v(6, 60), v(7, 70), v(8, 80)), srv(s2, 10), srv(s3, 10)}
	}
	bal := func(id uint32, from, to string) string { return fmt.Sprintf("balance %d %s->%s", id, from, to) }
	for _, tc := range []struct {
		name  string
		nodes []*node
		moves []ActiveMove
		max   int
		want  []string
	}{
		{name: "8/0/0: five moves to 3/3/2, smallest volumes first, alternating targets", nodes: eight(), max: 8,
			want: []string{bal(1, s1, s3), bal(2, s1, s2), bal(3, s1, s3), bal(4, s1, s2), bal(5, s1, s3)}},
		{name: "the bound stops the round", nodes: eight(), max: 2,
			want: []string{bal(1, s1, s3), bal(2, s1, s2)}},
		{name: "unset: the default bound", nodes: eight(), max: 0,
			want: []string{bal(1, s1, s3), bal(2, s1, s2), bal(3, s1, s3), bal(4, s1, s2), bal(5, s1, s3)}},
		{name: "moves in flight count: only what is left", nodes: eight(), max: 8,
			moves: []ActiveMove{{VolumeID: 7, Source: s1, Target: s2}, {VolumeID: 8, Source: s1, Target: s3}},
			want:  []string{bal(1, s1, s3), bal(2, s1, s2), bal(3, s1, s3)}},
		{name: "volumes moved inside the cooldown stay; the rest still balance", nodes: eight(), max: 8,
			moves: []ActiveMove{{VolumeID: 1, Source: s2, Target: s1, Done: true}, {VolumeID: 2, Source: s3, Target: s1, Done: true}},
			want:  []string{bal(3, s1, s3), bal(4, s1, s2), bal(5, s1, s3), bal(6, s1, s2), bal(7, s1, s3)}},
		{name: "every volume of the full server moved inside the cooldown: nothing", max: 8,
			nodes: []*node{srv(s1, 10, v(1, 10), v(2, 20), v(3, 30)), srv(s2, 10)},
			moves: []ActiveMove{{VolumeID: 1, Done: true}, {VolumeID: 2, Done: true}, {VolumeID: 3, Done: true}},
			want:  []string{}},
		{name: "a done move is not projected: balanced servers stay", max: 8,
			nodes: []*node{srv(s1, 10, v(1, 10), v(2, 20)), srv(s2, 10, v(3, 30), v(4, 40))},
			moves: []ActiveMove{{VolumeID: 1, Source: s2, Target: s1, Done: true}},
			want:  []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThresholds()
			th.BalanceMovesPerRound = tc.max
			topo := build(100, tc.nodes...)
			got := Detect(topo, idle, tc.moves, th, now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			assertPlannable(t, topo, got)
			// The moves together never leave the source emptier than a
			// target, and never move a volume twice.
			used := map[string]int64{}
			for _, s := range topo.Servers {
				used[s.ID] = s.Disks[""].VolumeCount
			}
			for _, m := range tc.moves {
				if !m.Done {
					used[m.Source]--
					used[m.Target]++
				}
			}
			seen := map[uint32]bool{}
			for _, p := range got {
				if seen[p.VolumeID] {
					t.Errorf("volume %d moved twice in one round", p.VolumeID)
				}
				seen[p.VolumeID] = true
				used[p.Source]--
				used[p.Target]++
				if used[p.Source] < used[p.Target] {
					t.Errorf("after %s, %s holds %d and %s %d: the moves swapped which is fuller", summary([]Proposal{p}), p.Source, used[p.Source], p.Target, used[p.Target])
				}
			}
		})
	}
}

// TestBalanceNoOscillation: rounds of detection on a cluster where every
// proposed move completes before the next round never move a volume again
// while its move is inside the cooldown, never move one back to a server
// it left, and settle balanced.
func TestBalanceNoOscillation(t *testing.T) {
	const cooldown = 30 * time.Minute
	// Nine servers in three racks of uneven size, 40 single-copy volumes on
	// two of them and a few 010 volumes across racks.
	nodes := []*node{}
	for i := 1; i <= 9; i++ {
		n := srv(sid(i), 12).Placed("dc1", fmt.Sprintf("r%d", (i-1)%3))
		nodes = append(nodes, n)
	}
	for id := uint32(1); id <= 40; id++ {
		nodes[int(id)%2].Holding(v(id, uint64(id)))
	}
	for id := uint32(41); id <= 44; id++ {
		nodes[0].Holding(v(id, 5).RP(10))
		nodes[1].Holding(v(id, 5).RP(10))
	}
	// Where each volume's copies are, by server index: the topology is
	// rebuilt from it every round.
	where := map[uint32][]int{}
	for i := range nodes {
		for id := uint32(1); id <= 40; id++ {
			if int(id)%2 == i {
				where[id] = append(where[id], i)
			}
		}
	}
	for id := uint32(41); id <= 44; id++ {
		where[id] = []int{0, 1}
	}
	rp := func(id uint32) uint32 {
		if id > 40 {
			return 10
		}
		return 0
	}
	index := map[string]int{}
	for i := 1; i <= 9; i++ {
		index[sid(i)] = i - 1
	}
	type done struct {
		vol      uint32
		from, to string
		at       time.Time
	}
	var history []done
	clock := now
	moved := 0
	for round := 0; round < 40; round++ {
		var fresh []*node
		for i := 1; i <= 9; i++ {
			fresh = append(fresh, srv(sid(i), 12).Placed("dc1", fmt.Sprintf("r%d", (i-1)%3)))
		}
		ids := make([]uint32, 0, len(where))
		for id := range where {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			for _, s := range where[id] {
				fresh[s].Holding(v(id, uint64(id)).RP(rp(id)))
			}
		}
		topo := build(100, fresh...)
		var recent []ActiveMove
		for _, h := range history {
			if !h.at.Before(clock.Add(-cooldown)) {
				recent = append(recent, ActiveMove{VolumeID: h.vol, Source: h.from, Target: h.to, Done: true})
			}
		}
		props := Detect(topo, idle, recent, DefaultThresholds(), clock)
		if len(props) == 0 {
			checkBalanced(t, topo)
			t.Logf("settled after %d rounds, %d moves", round, moved)
			if moved == 0 {
				t.Fatal("nothing was ever moved: the test topology is not skewed")
			}
			return
		}
		for _, p := range props {
			for _, r := range recent {
				if r.VolumeID == p.VolumeID {
					t.Fatalf("round %d: volume %d moved again (%s) inside the cooldown of its move %s->%s", round, p.VolumeID, summary([]Proposal{p}), r.Source, r.Target)
				}
			}
			for _, h := range history {
				if h.vol == p.VolumeID && h.from == p.Target {
					t.Errorf("round %d: volume %d moved back to %s, which an earlier round moved it off", round, p.VolumeID, p.Target)
				}
			}
			src, dst := index[p.Source], index[p.Target]
			w := where[p.VolumeID]
			for i, s := range w {
				if s == src {
					w[i] = dst
				}
			}
			history = append(history, done{p.VolumeID, p.Source, p.Target, clock})
			moved++
		}
		clock = clock.Add(time.Minute)
	}
	t.Fatalf("not settled after 40 rounds (%d moves)", moved)
}

// checkBalanced: the servers' usage is within the threshold, or no move
// would narrow it.
func checkBalanced(t *testing.T, topo *seaweed.Topology) {
	t.Helper()
	lo, hi := int64(1<<62), int64(0)
	for _, s := range topo.Servers {
		c := s.Disks[""].VolumeCount
		lo, hi = min(lo, c), max(hi, c)
	}
	if hi-lo > 2 {
		t.Errorf("settled with %d to %d volumes per server", lo, hi)
	}
}
