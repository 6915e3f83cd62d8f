package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const ecBalanceT = fsmpb.TaskType_TASK_TYPE_EC_BALANCE

// ecCluster is a cluster for EC balance tests: per server (index = n-1)
// its placement and the shards it holds of each volume.
type ecCluster struct {
	dc, rack []string
	free     []int64
	shards   []map[uint32][]uint32
}

func newECCluster(places ...[2]string) *ecCluster {
	c := &ecCluster{}
	for _, p := range places {
		c.dc, c.rack = append(c.dc, p[0]), append(c.rack, p[1])
		c.free = append(c.free, -1)
		c.shards = append(c.shards, map[uint32][]uint32{})
	}
	return c
}

func (c *ecCluster) put(server int, vid uint32, ids ...uint32) *ecCluster {
	c.shards[server-1][vid] = append(c.shards[server-1][vid], ids...)
	return c
}

func (c *ecCluster) topo() *seaweed.Topology {
	var nodes []*node
	for i := range c.dc {
		n := srv(sid(i+1), 20).Placed(c.dc[i], c.rack[i])
		if c.free[i] >= 0 {
			n = n.WithFree(c.free[i])
		}
		for vid, ids := range c.shards[i] {
			if len(ids) > 0 {
				n = n.Shards(vid, ids...)
			}
		}
		nodes = append(nodes, n)
	}
	return build(1024, nodes...)
}

// apply moves a proposal's shard as its executor would.
func (c *ecCluster) apply(t *testing.T, p Proposal) {
	t.Helper()
	shard, err := strconv.Atoi(p.Params[0].Value)
	if err != nil || p.Params[0].Key != placement.ShardParam {
		t.Fatalf("proposal %+v names no shard", p)
	}
	from, to := -1, -1
	for i := range c.dc {
		if sid(i+1) == p.Source {
			from = i
		}
		if sid(i+1) == p.Target {
			to = i
		}
	}
	ids := c.shards[from][p.VolumeID]
	k := slices.Index(ids, uint32(shard))
	if from < 0 || to < 0 || k < 0 {
		t.Fatalf("proposal %+v: shard not on its source", p)
	}
	c.shards[from][p.VolumeID] = slices.Delete(ids, k, k+1)
	c.shards[to][p.VolumeID] = append(c.shards[to][p.VolumeID], uint32(shard))
}

func never(uint32) bool { return false }

func spreadOf(t *testing.T, topo *seaweed.Topology, vid uint32) placement.ECSpread {
	t.Helper()
	l, err := placement.NewECLayout(topo, topo.EcVolumes[vid])
	if err != nil {
		t.Fatal(err)
	}
	return l.Spread()
}

func ecLoads(topo *seaweed.Topology) (lo, hi int) {
	load := map[string]int{}
	for _, s := range topo.Servers {
		load[s.ID] = 0
	}
	for _, e := range topo.EcVolumes {
		for _, hs := range e.Shards {
			for _, h := range hs {
				load[h]++
			}
		}
	}
	first := true
	for _, n := range load {
		if first {
			lo, hi, first = n, n, false
		}
		lo, hi = min(lo, n), max(hi, n)
	}
	return lo, hi
}

// TestDetectECBalanceConverges: from skewed layouts, applying each round's
// proposals (one shard of a volume each) ends, in a bounded number of
// rounds, with every volume spread as evenly as the cluster allows and the
// servers' shard counts within the skew; no move ever makes a volume's
// data-centre or rack spread worse, and no round moves a volume twice.
func TestDetectECBalanceConverges(t *testing.T) {
	all := func(from, to uint32) []uint32 {
		var out []uint32
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		c    *ecCluster
	}{
		{"two data centres, three volumes all in dc1",
			newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r2"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r2"},
				[2]string{"dc2", "r1"}, [2]string{"dc2", "r2"}, [2]string{"dc2", "r1"}, [2]string{"dc2", "r2"}).
				put(1, 1, all(0, 7)...).put(2, 1, all(7, 14)...).
				put(1, 2, all(0, 4)...).put(2, 2, all(4, 8)...).put(3, 2, all(8, 11)...).put(4, 2, all(11, 14)...).
				put(3, 3, all(0, 14)...)},
		{"one rack, seven servers, volumes spread but the load not: s7 empty",
			newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"},
				[2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}).
				put(1, 1, 0, 1, 2).put(2, 1, 3, 4, 5).put(3, 1, 6, 7).put(4, 1, 8, 9).put(5, 1, 10, 11).put(6, 1, 12, 13).
				put(1, 2, 0, 1, 2).put(2, 2, 3, 4, 5).put(3, 2, 6, 7).put(4, 2, 8, 9).put(5, 2, 10, 11).put(6, 2, 12, 13).
				put(1, 3, 0, 1, 2).put(2, 3, 3, 4, 5).put(3, 3, 6, 7).put(4, 3, 8, 9).put(5, 3, 10, 11).put(6, 3, 12, 13)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := DefaultThresholds()
			rounds := 0
			for ; rounds < 40; rounds++ {
				topo := tc.c.topo()
				props := DetectECBalance(topo, never, nil, th)
				if len(props) == 0 {
					break
				}
				seen := map[uint32]bool{}
				for _, p := range props {
					if p.Type != ecBalanceT || p.Priority != 1 {
						t.Fatalf("proposal %+v: want an ec_balance of priority 1", p)
					}
					if seen[p.VolumeID] {
						t.Fatalf("round %d moves volume %d twice", rounds, p.VolumeID)
					}
					seen[p.VolumeID] = true
					before := spreadOf(t, topo, p.VolumeID)
					tc.c.apply(t, p)
					after := spreadOf(t, tc.c.topo(), p.VolumeID)
					if after[placement.LevelDC] > before[placement.LevelDC] || after[placement.LevelRack] > before[placement.LevelRack] || !after.Keeps(before) {
						t.Fatalf("round %d: %s made volume %d's spread worse: %v -> %v", rounds, p.Reason, p.VolumeID, before, after)
					}
				}
			}
			if rounds == 40 {
				t.Fatal("still moving shards after 40 rounds")
			}
			topo := tc.c.topo()
			for vid := range topo.EcVolumes {
				if s := spreadOf(t, topo, vid); s.Total() != 0 {
					t.Errorf("volume %d ends with spread %v", vid, s)
				}
			}
			if lo, hi := ecLoads(topo); hi-lo > th.ecSkew() {
				t.Errorf("servers end holding %d to %d shards, more apart than %d", lo, hi, th.ecSkew())
			}
			t.Logf("balanced in %d rounds", rounds)
		})
	}
}

// TestDetectECBalanceLeavesAlone: a volume missing a shard (a rebuild's),
// with a shard twice, or busy (a task in flight, an unreported change)
// gets no move, however skewed.
func TestDetectECBalanceLeavesAlone(t *testing.T) {
	c := newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}).
		put(1, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12).                  // missing 13
		put(1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13).put(2, 2, 5). // 5 twice
		put(2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)               // busy
	c.free = []int64{5, 5, 5, 5}
	busy := func(v uint32) bool { return v == 3 }
	if props := DetectECBalance(c.topo(), busy, nil, DefaultThresholds()); len(props) != 0 {
		t.Fatalf("proposals %+v; want none", props)
	}
	// Not busy, volume 3 gets a move.
	props := DetectECBalance(c.topo(), never, nil, DefaultThresholds())
	if len(props) != 1 || props[0].VolumeID != 3 {
		t.Fatalf("proposals %+v; want one of volume 3", props)
	}
	// Volume 3 also listed as a regular volume (mid-encode, or a replica
	// back from before the encode): its shards are not moved.
	mid := c.topo()
	mid.Volumes[3] = &seaweed.Volume{ID: 3}
	if props := DetectECBalance(mid, never, nil, DefaultThresholds()); len(props) != 0 {
		t.Fatalf("proposals %+v for a volume also listed as regular; want none", props)
	}
	// EC balancing off: nothing.
	off := DefaultThresholds()
	off.ECBalanceSkew = -1
	if props := DetectECBalance(c.topo(), never, nil, off); len(props) != 0 {
		t.Fatalf("proposals %+v with EC balancing off; want none", props)
	}
}

// TestDetectECBalanceCountsMovesInFlight: a move in flight counts as done
// for the servers' shard counts, so the next round does not pile onto the
// same target.
func TestDetectECBalanceCountsMovesInFlight(t *testing.T) {
	c := newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}).
		put(1, 1, 0, 1, 2).put(2, 1, 3, 4, 5).put(3, 1, 6, 7, 8).put(4, 1, 9, 10, 11).put(5, 1, 12, 13).
		put(1, 2, 0, 1, 2).put(2, 2, 3, 4, 5).put(3, 2, 6, 7, 8).put(4, 2, 9, 10, 11).put(5, 2, 12, 13)
	topo := c.topo()
	th := DefaultThresholds()
	// Loads 6/6/6/6/4: within the skew of 2, nothing to do.
	if props := DetectECBalance(topo, never, nil, th); len(props) != 0 {
		t.Fatalf("proposals %+v; want none (loads within the skew)", props)
	}
	th.ECBalanceSkew = 1
	props := DetectECBalance(topo, never, nil, th)
	if len(props) != 1 || props[0].Target != sid(5) {
		t.Fatalf("proposals %+v; want one move to %s", props, sid(5))
	}
	// With that move in flight (volume 1 busy), loads are 6/6/6/5/5 or
	// alike: nothing more.
	inflight := []ECMove{{VolumeID: props[0].VolumeID, Source: props[0].Source, Target: props[0].Target}}
	busy := func(v uint32) bool { return v == props[0].VolumeID }
	if more := DetectECBalance(topo, busy, inflight, th); len(more) != 0 {
		t.Fatalf("proposals %+v with a move in flight; want none", more)
	}
}

// TestPlanEcBalance: a proposed move is planned with its source, target
// and shard; a retry whose move the topology shows done completes; one
// whose move would now make the spread worse fails to plan.
func TestPlanEcBalance(t *testing.T) {
	c := newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}).
		put(1, 1, 0, 1, 2, 3, 4, 5, 6, 7).put(2, 1, 8, 9, 10).put(3, 1, 11, 12, 13)
	topo := c.topo()
	props := DetectECBalance(topo, never, nil, DefaultThresholds())
	if len(props) != 1 {
		t.Fatalf("proposals %+v; want one", props)
	}
	p := props[0]
	task := &fsmpb.Task{Id: 9, Type: ecBalanceT, VolumeId: 1, Source: p.Source, Target: p.Target, Params: p.Params, Fence: 4}
	spec, err := PlanSpec(task, topo, Thresholds{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source != swa(1) || spec.Target != swa(4) || len(spec.ShardTargets) != 1 || spec.ShardTargets[0].Server != swa(4) {
		t.Fatalf("spec source %s target %s shards %v; want %s -> %s", spec.Source, spec.Target, spec.ShardTargets, swa(1), swa(4))
	}
	if servers := SpecServers(spec); !slices.Equal(servers, []string{swa(4)}) {
		t.Errorf("SpecServers %v; want the target", servers)
	}
	c.apply(t, p)
	moved := c.topo()
	// The first attempt is asked for something already done: an error.
	if _, err := PlanSpec(task, moved, Thresholds{}); !errors.Is(err, placement.ErrPlan) {
		t.Fatalf("first attempt of a done move: %v; want a plan error", err)
	}
	retry := proto.Clone(task).(*fsmpb.Task)
	retry.EarlierServers = []string{swa(4)}
	var done *AlreadyDone
	if _, err := PlanSpec(retry, moved, Thresholds{}); !errors.As(err, &done) || done.Change.Shards[0].ShardId != spec.ShardTargets[0].ShardId {
		t.Fatalf("retry of a done move: %v; want AlreadyDone", err)
	}
}

// TestDetectECBalanceDeterministic: the same topology gives the same
// proposals, whatever order the master lists servers in.
func TestDetectECBalanceDeterministic(t *testing.T) {
	var nodes []*node
	for i := 1; i <= 9; i++ {
		n := srv(sid(i), 20).Placed(fmt.Sprintf("dc%d", 1+i%2), fmt.Sprintf("r%d", i%3))
		if i <= 3 {
			n = n.Shards(uint32(i), 0, 1, 2, 3, 4, 5, 6).Shards(uint32(i%3+1), 7, 8, 9, 10, 11, 12, 13)
		}
		nodes = append(nodes, n)
	}
	var first string
	for seed := int64(0); seed < 5; seed++ {
		topo := topotest.Build(1024, nodes...)
		rng := seed
		sort.SliceStable(topo.Servers, func(i, j int) bool { rng = rng*31 + 7; return rng%3 == 0 })
		got := fmt.Sprint(DetectECBalance(topo, never, nil, DefaultThresholds()))
		if first == "" {
			first = got
		} else if got != first {
			t.Fatalf("seed %d: %s; want %s", seed, got, first)
		}
	}
	if first == "[]" {
		t.Fatal("no proposals: nothing was tested")
	}
}

// BenchmarkDetectECBalance: one detection round over 3,000 EC volumes on
// 100 servers in 5 racks, each volume's shards on 7 servers of one rack
// (every volume needs moves).
func BenchmarkDetectECBalance(b *testing.B) {
	var nodes []*node
	for i := 1; i <= 100; i++ {
		n := srv(sid(i), 1000).Placed("dc1", fmt.Sprintf("r%d", i%5))
		for v := uint32(1); v <= 3000; v++ {
			if int(v)%5 != i%5 {
				continue
			}
			// Servers of rack i%5: i = r, r+5, ...; volume v uses 7 of them.
			k := (i/5 + int(v)) % 20
			if k < 7 {
				n = n.Shards(v, uint32(2*k), uint32(2*k+1))
			}
		}
		nodes = append(nodes, n)
	}
	topo := build(1024, nodes...)
	th := DefaultThresholds()
	b.ResetTimer()
	for range b.N {
		if len(DetectECBalance(topo, never, nil, th)) == 0 {
			b.Fatal("no proposals")
		}
	}
}

// TestECBalanceSubmittedOnlyOnceAgreed: the detection round proposes an
// EC shard move, but while an admin applies only command version 4 it is
// not submitted (no task, no error); once version 5 is agreed, the next
// round submits it, naming its shard.
func TestECBalanceSubmittedOnlyOnceAgreed(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now, agreed: fsm.RepairVersion}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	ctx := context.Background()
	c := newECCluster([2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}, [2]string{"dc1", "r1"}).
		put(1, 1, 0, 1, 2, 3, 4, 5, 6, 7).put(2, 1, 8, 9, 10).put(3, 1, 11, 12, 13)
	topo := c.topo()
	tasks := func() (out []*fsmpb.Task) {
		f.Read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{}) })
		return out
	}
	s.detect(ctx, topo)
	if got := tasks(); len(got) != 0 {
		t.Fatalf("before version 5 is agreed: tasks %v; want none", got)
	}
	a.agreed = fsm.ControlVersion
	s.detect(ctx, topo)
	got := tasks()
	if len(got) != 1 || got[0].Type != ecBalanceT || got[0].State != fsmpb.TaskState_TASK_STATE_PENDING || got[0].Source != sid(1) {
		t.Fatalf("after version 5 is agreed: tasks %v; want one pending ec_balance from %s", got, sid(1))
	}
	if shard, err := placement.TaskShard(got[0]); err != nil || shard > 7 {
		t.Fatalf("task shard %d, %v; want one of server 1's", shard, err)
	}
}
