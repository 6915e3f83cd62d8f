package placement

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// cand is a shard candidate in dc/rack named server with free slots.
func cand(dc, rack, server string, free int64) ShardCandidate {
	return ShardCandidate{Loc: Location{DC: dc, Rack: rack, Server: server, Host: server}, Free: free}
}

func source(c ShardCandidate) ShardCandidate { c.Source = true; return c }

// TestSpreadShards: shards spread evenly over data centres, then racks,
// then servers; ties to the generating replica, then the most free slots.
func TestSpreadShards(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cands   []ShardCandidate
		want    []int
		wantErr string
	}{
		{name: "1 DC, 1 rack, 4 servers: 4/4/3/3, the extra to the source and the emptiest",
			cands: []ShardCandidate{source(cand("dc1", "r1", "s1", 10)), cand("dc1", "r1", "s2", 5), cand("dc1", "r1", "s3", 20), cand("dc1", "r1", "s4", 5)},
			want:  []int{4, 3, 4, 3}},
		{name: "2 DCs x 3 racks, one server each: 7 per data centre, 3/2/2 per rack",
			cands: []ShardCandidate{
				source(cand("dc1", "r1", "a1", 5)), cand("dc1", "r2", "a2", 5), cand("dc1", "r3", "a3", 9),
				cand("dc2", "r1", "b1", 5), cand("dc2", "r2", "b2", 6), cand("dc2", "r3", "b3", 5)},
			want: []int{3, 2, 2, 2, 3, 2}},
		{name: "2 DCs x 3 racks x 2 servers: at most 7 per DC, 3 per rack, 2 per server",
			cands: []ShardCandidate{
				source(cand("dc1", "r1", "a1", 5)), cand("dc1", "r1", "a2", 5), cand("dc1", "r2", "a3", 5), cand("dc1", "r2", "a4", 5), cand("dc1", "r3", "a5", 5), cand("dc1", "r3", "a6", 5),
				cand("dc2", "r1", "b1", 5), cand("dc2", "r1", "b2", 5), cand("dc2", "r2", "b3", 5), cand("dc2", "r2", "b4", 5), cand("dc2", "r3", "b5", 5), cand("dc2", "r3", "b6", 8)},
			want: []int{2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}},
		{name: "a data centre with one server takes at most 4, the other the rest",
			cands: []ShardCandidate{
				source(cand("dc1", "r1", "a1", 5)), cand("dc1", "r1", "a2", 5), cand("dc1", "r2", "a3", 5), cand("dc1", "r2", "a4", 5),
				cand("dc2", "r1", "b1", 50)},
			want: []int{3, 2, 3, 2, 4}},
		{name: "uneven racks: the small rack full, the big one evenly",
			cands: []ShardCandidate{
				source(cand("dc1", "big", "s1", 1)), cand("dc1", "big", "s2", 1), cand("dc1", "big", "s3", 1), cand("dc1", "big", "s4", 1), cand("dc1", "big", "s5", 1),
				cand("dc1", "small", "t1", 100)},
			want: []int{2, 2, 2, 2, 2, 4}},
		{name: "more servers than shards: one each, the emptiest chosen",
			cands: func() []ShardCandidate {
				out := []ShardCandidate{source(cand("dc1", "r1", "s00", 1))}
				for i := 1; i < 16; i++ {
					out = append(out, cand("dc1", "r1", fmt.Sprintf("s%02d", i), int64(i)))
				}
				return out
			}(),
			want: []int{1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{name: "three servers", cands: []ShardCandidate{source(cand("dc1", "r1", "s1", 5)), cand("dc1", "r1", "s2", 5), cand("dc2", "r1", "s3", 5)},
			wantErr: "at least 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SpreadShards(tc.cands, TotalShards)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SpreadShards = %v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SpreadShards: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("SpreadShards = %v, want %v", got, tc.want)
			}
			// The order of the candidates does not matter.
			rng := rand.New(rand.NewSource(1))
			for range 5 {
				perm := rng.Perm(len(tc.cands))
				shuffled := make([]ShardCandidate, len(perm))
				for i, p := range perm {
					shuffled[i] = tc.cands[p]
				}
				again, err := SpreadShards(shuffled, TotalShards)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range perm {
					if again[i] != got[p] {
						t.Fatalf("shuffled candidates: %s gets %d, not %d", tc.cands[p].Loc.Server, again[i], got[p])
					}
				}
			}
			checkEven(t, tc.cands, got)
		})
	}
}

// checkEven checks the spread rule: every shard placed, at most
// MaxShardsPerServer per server, and at each level no unit holds more than
// one shard above another unit of that level that still had room.
func checkEven(t *testing.T, cands []ShardCandidate, got []int) {
	t.Helper()
	total := 0
	for i, c := range got {
		total += c
		if c > MaxShardsPerServer {
			t.Errorf("%s holds %d shards", cands[i].Loc.Server, c)
		}
	}
	if total != TotalShards {
		t.Errorf("%d shards placed", total)
	}
	// Racks are compared within their data centre only.
	for _, level := range []struct{ key, parent func(Location) string }{
		{func(l Location) string { return l.DC }, func(Location) string { return "" }},
		{func(l Location) string { return l.DC + "/" + l.Rack }, func(l Location) string { return l.DC }},
	} {
		count, room, parent := map[string]int{}, map[string]int{}, map[string]string{}
		for i, c := range cands {
			k := level.key(c.Loc)
			count[k] += got[i]
			room[k] += MaxShardsPerServer
			parent[k] = level.parent(c.Loc)
		}
		for a, na := range count {
			for b, nb := range count {
				if parent[a] == parent[b] && na > nb+1 && nb < room[b] {
					t.Errorf("%s holds %d shards, %s only %d with room for more", a, na, b, nb)
				}
			}
		}
	}
}

// TestPlaceShardsDiskType: the shards go only to servers with a free slot
// on the volume's disk type; too few of them is one clear error.
func TestPlaceShardsDiskType(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	ssdVol := func(n int) *topotest.Node { return srv(sid(n), 10).WithDisk("ssd", 10) }
	topo := topotest.Build(100,
		srv(sid(1), 10).WithDisk("ssd", 10, v(1, 100)),
		ssdVol(2), ssdVol(3), ssdVol(4),
		srv(sid(5), 10), srv(sid(6), 10), // hdd only
		srv(sid(7), 10).WithDisk("ssd", 1, v(9, 1)), // its ssd is full
	)
	got, err := PlaceShards(topo.Volumes[1], topo)
	if err != nil {
		t.Fatalf("PlaceShards: %v", err)
	}
	per := map[string]int{}
	for i, p := range got {
		if p.ShardId != uint32(i) {
			t.Errorf("shard %d has id %d", i, p.ShardId)
		}
		per[p.Server]++
	}
	want := map[string]int{topotest.SWA(1): 4, topotest.SWA(2): 4, topotest.SWA(3): 3, topotest.SWA(4): 3}
	if fmt.Sprint(per) != fmt.Sprint(want) {
		t.Errorf("shards per server %v, want %v", per, want)
	}
	if got[0].Server != topotest.SWA(1) {
		t.Errorf("shard 0 on %s, want the generating replica", got[0].Server)
	}
	if err := CheckSpread(per); err != nil {
		t.Errorf("CheckSpread: %v", err)
	}

	few := topotest.Build(100,
		srv(sid(1), 10).WithDisk("ssd", 10, v(1, 100)), ssdVol(2), ssdVol(3),
		srv(sid(4), 10), srv(sid(5), 10), srv(sid(6), 10))
	_, err = PlaceShards(few.Volumes[1], few)
	if !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), "needs at least 4 volume servers with a free slot on a ssd disk") || !strings.Contains(err.Error(), "has 3") {
		t.Errorf("PlaceShards with 3 ssd servers = %v, want a plan error naming the ssd disk type", err)
	}
}

// TestPlaceShardsAcrossRacks: a topology from the master, shuffled, gets
// the same rack-aware layout every time.
func TestPlaceShardsAcrossRacks(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	nodes := []*topotest.Node{
		srv(sid(1), 10, v(1, 100)).Placed("dc1", "r1"), srv(sid(2), 10).Placed("dc1", "r1"),
		srv(sid(3), 10).Placed("dc1", "r2"), srv(sid(4), 10).Placed("dc1", "r2"),
		srv(sid(5), 10).Placed("dc2", "r1"), srv(sid(6), 12).Placed("dc2", "r1"),
		srv(sid(7), 10).Placed("dc2", "r2"), srv(sid(8), 10).Placed("dc2", "r2"),
		srv(sid(9), 10, v(2, 1)).Placed("dc2", "r3").WithFree(0),
	}
	var first string
	for seed := int64(0); seed < 5; seed++ {
		topo := seaweed.FromVolumeList(topotest.VolumeList(100, rand.New(rand.NewSource(seed)), nodes...))
		got, err := PlaceShards(topo.Volumes[1], topo)
		if err != nil {
			t.Fatal(err)
		}
		perDC, perRack := map[string]int{}, map[string]int{}
		for _, p := range got {
			s, _ := topo.FindServer(p.Server)
			perDC[s.DataCenter]++
			perRack[s.DataCenter+"/"+s.Rack]++
			if s.ID == sid(9) {
				t.Errorf("shard %d on %s, which has no free slot", p.ShardId, s.ID)
			}
		}
		if perDC["dc1"] != 7 || perDC["dc2"] != 7 {
			t.Errorf("per data centre %v, want 7 and 7", perDC)
		}
		for r, n := range perRack {
			if n > 4 || n < 3 {
				t.Errorf("rack %s holds %d shards, want 3 or 4: %v", r, n, perRack)
			}
		}
		if s := fmt.Sprint(got); first == "" {
			first = s
		} else if s != first {
			t.Errorf("seed %d: layout %s, want %s", seed, s, first)
		}
	}
}

// TestSpreadShardsSurvivesARack: with a data centre of four one-server
// racks and another of a single two-server rack, an even split over the
// data centres would put 7 shards in that one rack, so losing it would
// lose the volume (more than ParityShards shards). Five racks allow at
// most ParityShards in every rack; the spread must find that.
func TestSpreadShardsSurvivesARack(t *testing.T) {
	cands := []ShardCandidate{
		source(cand("dc1", "r1", "a1", 5)), cand("dc1", "r2", "a2", 5), cand("dc1", "r3", "a3", 5), cand("dc1", "r4", "a4", 5),
		cand("dc2", "r1", "b1", 5), cand("dc2", "r1", "b2", 5),
	}
	got, err := SpreadShards(cands, TotalShards)
	if err != nil {
		t.Fatal(err)
	}
	perRack := map[string]int{}
	sum := 0
	for i, c := range cands {
		perRack[c.Loc.DC+"/"+c.Loc.Rack] += got[i]
		sum += got[i]
		if got[i] > MaxShardsPerServer {
			t.Errorf("%s takes %d shards, more than %d", c.Loc.Server, got[i], MaxShardsPerServer)
		}
	}
	if sum != TotalShards {
		t.Fatalf("spread %v places %d shards, want %d", got, sum, TotalShards)
	}
	for r, n := range perRack {
		if n > ParityShards {
			t.Errorf("rack %s holds %d shards (spread %v): losing it loses the volume, though 5 racks allow at most %d each", r, n, got, ParityShards)
		}
	}
}

// TestSpreadShardsSurvivesAMachine: two volume servers on one machine
// (one per disk, a common layout) are one failure. With five servers on
// four machines an even split over servers puts 6 shards on that machine,
// so losing it loses the volume; at most ParityShards per machine fit.
func TestSpreadShardsSurvivesAMachine(t *testing.T) {
	onHost := func(c ShardCandidate, host string) ShardCandidate { c.Loc.Host = host; return c }
	cands := []ShardCandidate{
		source(onHost(cand("dc1", "r1", "h1:8080", 5), "h1")), onHost(cand("dc1", "r1", "h1:8081", 5), "h1"),
		onHost(cand("dc1", "r1", "h2:8080", 5), "h2"), onHost(cand("dc1", "r1", "h3:8080", 5), "h3"), onHost(cand("dc1", "r1", "h4:8080", 5), "h4"),
	}
	got, err := SpreadShards(cands, TotalShards)
	if err != nil {
		t.Fatal(err)
	}
	perHost := map[string]int{}
	sum := 0
	for i, c := range cands {
		perHost[c.Loc.Host] += got[i]
		sum += got[i]
		if got[i] > MaxShardsPerServer {
			t.Errorf("%s takes %d shards, more than %d", c.Loc.Server, got[i], MaxShardsPerServer)
		}
	}
	if sum != TotalShards {
		t.Fatalf("spread %v places %d shards, want %d", got, sum, TotalShards)
	}
	for h, n := range perHost {
		if n > ParityShards {
			t.Errorf("machine %s holds %d shards (spread %v): losing it loses the volume, though four machines allow at most %d each", h, n, got, ParityShards)
		}
	}
}

// TestPlaceShardsEvensServersOverEncodes: encoding one volume after
// another keeps the servers' EC shard counts even. The master's free
// volume count moves only every 10 shards, so breaking ties by it sent
// the two shards 14 leaves over after an even split to the same servers
// on every encode (in the fault harness half of all tasks were then
// ec_balance moves putting them back); free shard slots move with every
// shard.
func TestPlaceShardsEvensServersOverEncodes(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	var nodes []*topotest.Node
	for i := 1; i <= 6; i++ {
		nodes = append(nodes, srv(sid(i), 20, v(uint32(i), 100)))
	}
	topo := topotest.Build(100, nodes...)
	held := map[string]int{}
	for round := 0; round < 3; round++ {
		for vid := uint32(1); vid <= 6; vid++ {
			got, err := PlaceShards(topo.Volumes[vid], topo)
			if err != nil {
				t.Fatalf("PlaceShards(%d): %v", vid, err)
			}
			for _, p := range got {
				held[p.Server]++
				for _, s := range topo.Servers {
					if s.Addr.String() == p.Server {
						Disk(s, "").EcShards++
					}
				}
			}
		}
	}
	lo, hi := 1<<30, 0
	for _, n := range held {
		lo, hi = min(lo, n), max(hi, n)
	}
	if len(held) != 6 || hi-lo > 2 {
		t.Fatalf("EC shards per server after 18 encodes: %v; want every server within 2 of the others", held)
	}
}

// TestPlaceShardsOddShardsToFewerHeld: between servers that take as many
// shards of a volume, the odd shard goes to the one holding fewer EC
// shards, not to the one with more free slots: encodes keep the servers'
// shard counts even, as ec_balance would make them (to the freer server,
// the odd shards of every encode landed where ec_balance then moved them
// from).
func TestPlaceShardsOddShardsToFewerHeld(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	var nodes []*topotest.Node
	for i := 1; i <= 6; i++ {
		n := srv(sid(i), 20, v(uint32(i), 100))
		if i >= 4 {
			n = n.Holding(v(uint32(10+i), 100), v(uint32(20+i), 100), v(uint32(30+i), 100)) // fewer free slots
		}
		nodes = append(nodes, n)
	}
	topo := topotest.Build(100, nodes...)
	for _, s := range topo.Servers {
		if s.ID == sid(2) || s.ID == sid(3) {
			Disk(s, "").EcShards = 12 // the freer servers hold more shards
		}
	}
	got, err := PlaceShards(topo.Volumes[1], topo)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, p := range got {
		per[p.Server]++
	}
	// 14 over 6: the source (server 1) and one more take 3; that one is
	// server 4 (fewest held, then the least id of 4..6), not 2 or 3.
	if per[topotest.SWA(1)] != 3 || per[topotest.SWA(4)] != 3 || per[topotest.SWA(2)] != 2 || per[topotest.SWA(3)] != 2 {
		t.Fatalf("shards per server %v; want 3 on the source and on %s, 2 on the servers holding 12", per, topotest.SWA(4))
	}
}
