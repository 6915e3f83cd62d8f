package placement

import (
	"errors"
	"strconv"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// shardRange is the shard ids from..to-1.
func shardRange(from, to uint32) []uint32 {
	var out []uint32
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestECSpreadMoves: from a skewed layout, SpreadMove makes one move at a
// time, each strictly improving the spread and never making any level
// worse, until the layout is as even as the cluster allows.
func TestECSpreadMoves(t *testing.T) {
	srv, sid := topotest.Srv, topotest.SID
	for _, tc := range []struct {
		name  string
		nodes []*topotest.Node
		want  ECSpread // the spread when no move improves it
		moves int
	}{
		{name: "one rack, 7 servers, all shards on two: 2 per server",
			nodes: []*topotest.Node{
				srv(sid(1), 10).Shards(1, shardRange(0, 7)...), srv(sid(2), 10).Shards(1, shardRange(7, 14)...),
				srv(sid(3), 10), srv(sid(4), 10), srv(sid(5), 10), srv(sid(6), 10), srv(sid(7), 10)},
			moves: 10},
		{name: "two data centres, every shard in dc1: 7 each, then 4/3 per rack",
			nodes: []*topotest.Node{
				srv(sid(1), 10).Placed("dc1", "r1").Shards(1, shardRange(0, 4)...), srv(sid(2), 10).Placed("dc1", "r1").Shards(1, shardRange(4, 7)...),
				srv(sid(3), 10).Placed("dc1", "r2").Shards(1, shardRange(7, 11)...), srv(sid(4), 10).Placed("dc1", "r2").Shards(1, shardRange(11, 14)...),
				srv(sid(5), 10).Placed("dc2", "r1"), srv(sid(6), 10).Placed("dc2", "r1"),
				srv(sid(7), 10).Placed("dc2", "r2"), srv(sid(8), 10).Placed("dc2", "r2")},
			moves: 7},
		{name: "already even: no move",
			nodes: []*topotest.Node{
				srv(sid(1), 10).Shards(1, 0, 1, 2, 3), srv(sid(2), 10).Shards(1, 4, 5, 6, 7),
				srv(sid(3), 10).Shards(1, 8, 9, 10), srv(sid(4), 10).Shards(1, 11, 12, 13)},
			moves: 0},
		{name: "uneven racks: dc2's single rack keeps its excess, dc1 spreads",
			nodes: []*topotest.Node{
				srv(sid(1), 10).Placed("dc1", "r1").Shards(1, shardRange(0, 7)...), srv(sid(2), 10).Placed("dc1", "r2"), srv(sid(3), 10).Placed("dc1", "r3"),
				srv(sid(4), 10).Placed("dc2", "r1").Shards(1, shardRange(7, 14)...), srv(sid(5), 10).Placed("dc2", "r1")},
			// 4 racks: cap 4; dc2's one rack holds 7 (excess 3), which only
			// a data-centre move could lower; 5 servers: cap 3, s4 keeps 4.
			want: ECSpread{0, 3, 1, 1}, moves: 4 + 3},
		{name: "a server without a free slot takes nothing",
			nodes: []*topotest.Node{
				srv(sid(1), 10).Shards(1, shardRange(0, 10)...), srv(sid(2), 10).Shards(1, shardRange(10, 14)...),
				srv(sid(3), 10).WithFree(0), srv(sid(4), 10)},
			// s3 full: s1 can give to s4 only, until s4 holds its even 4.
			want: ECSpread{0, 0, 2, 2}, moves: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := topotest.Build(100, tc.nodes...)
			l, err := NewECLayout(topo, topo.EcVolumes[1])
			if err != nil {
				t.Fatal(err)
			}
			canTake := func(s *seaweed.Server) bool { return FreeSlotsOf(s, "") > 0 }
			n := 0
			for ; n < 50; n++ {
				m, ok := l.SpreadMove(canTake, nil)
				if !ok {
					break
				}
				if !m.After.Improves(m.Before) || m.After != l.After(m.Source, m.Target) || m.Before != l.Spread() {
					t.Fatalf("move %d (shard %d %s -> %s): %v -> %v is not an improvement", n, m.ShardID, m.Source.ID, m.Target.ID, m.Before, m.After)
				}
				if !canTake(m.Target) {
					t.Fatalf("move %d targets %s, which cannot take a shard", n, m.Target.ID)
				}
				if l.On[m.ShardID].ID != m.Source.ID {
					t.Fatalf("move %d: shard %d is not on %s", n, m.ShardID, m.Source.ID)
				}
				l.Move(m.ShardID, m.Target)
				if l.Spread() != m.After {
					t.Fatalf("move %d: spread after %v, predicted %v", n, l.Spread(), m.After)
				}
			}
			if n != tc.moves || l.Spread() != tc.want {
				t.Fatalf("%d moves ending at %v; want %d ending at %v", n, l.Spread(), tc.moves, tc.want)
			}
		})
	}
}

// TestECLayoutRefuses: a volume missing a shard (a rebuild's work) or with
// a shard listed twice is not balanced.
func TestECLayoutRefuses(t *testing.T) {
	srv, sid := topotest.Srv, topotest.SID
	missing := topotest.Build(100, srv(sid(1), 10).Shards(1, shardRange(0, 13)...), srv(sid(2), 10))
	if _, err := NewECLayout(missing, missing.EcVolumes[1]); err == nil {
		t.Fatal("a volume missing shard 13 got a layout")
	}
	dup := topotest.Build(100, srv(sid(1), 10).Shards(1, shardRange(0, 14)...), srv(sid(2), 10).Shards(1, 3))
	if _, err := NewECLayout(dup, dup.EcVolumes[1]); err == nil {
		t.Fatal("a volume with shard 3 twice got a layout")
	}
}

// TestECLoadMoveKeepsSpread: a move for the servers' load is allowed only
// when it makes no level of the volume's spread worse.
func TestECLoadMoveKeepsSpread(t *testing.T) {
	srv, sid := topotest.Srv, topotest.SID
	topo := topotest.Build(100,
		srv(sid(1), 10).Placed("dc1", "r1").Shards(1, 0, 1, 2, 3), srv(sid(2), 10).Placed("dc1", "r2").Shards(1, 4, 5, 6),
		srv(sid(3), 10).Placed("dc1", "r3").Shards(1, 7, 8, 9, 10), srv(sid(4), 10).Placed("dc1", "r4").Shards(1, 11, 12, 13),
		srv(sid(5), 10).Placed("dc1", "r4"))
	l, err := NewECLayout(topo, topo.EcVolumes[1])
	if err != nil {
		t.Fatal(err)
	}
	s := func(n int) *seaweed.Server { x, _ := topo.FindServer(sid(n)); return x }
	// s1 -> s3: rack r3 would hold 5, over the even 4.
	if m, ok := l.LoadMove(s(1), s(3)); ok {
		t.Fatalf("LoadMove s1 -> s3 = %+v; want refused (rack r3 over its share)", m)
	}
	// s4 -> s5: same rack, the servers 3/0 -> 2/1: keeps every level.
	m, ok := l.LoadMove(s(4), s(5))
	if !ok || m.ShardID != 11 || !m.After.Keeps(m.Before) {
		t.Fatalf("LoadMove s4 -> s5 = %+v, %v; want shard 11, spread kept", m, ok)
	}
}

func ecTask(vid uint32, shard int, src, dst string) *fsmpb.Task {
	return &fsmpb.Task{Id: 7, Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeId: vid, Source: src, Target: dst,
		Params: []*fsmpb.Param{{Key: ShardParam, Value: strconv.Itoa(shard)}}}
}

// TestPlanECShardMove: a move is planned only while it still makes
// sense: the shard on its source, the target with room and a disk of the
// volume's type, and the spread not made worse.
func TestPlanECShardMove(t *testing.T) {
	srv, sid := topotest.Srv, topotest.SID
	topo := topotest.Build(100,
		srv(sid(1), 10).Shards(1, shardRange(0, 10)...), srv(sid(2), 10).Shards(1, 10, 11, 12),
		srv(sid(3), 10).WithFree(0), srv(sid(4), 10).Shards(1, 13), srv(sid(5), 10).Shards(2, shardRange(0, 13)...))
	for _, tc := range []struct {
		name string
		task *fsmpb.Task
		want error // nil, ErrPlan or ErrPlanWait
	}{
		{"a good move", ecTask(1, 3, sid(1), sid(4)), nil},
		{"shard not on the source", ecTask(1, 12, sid(1), sid(5)), ErrPlan},
		{"target full: wait", ecTask(1, 3, sid(1), sid(3)), ErrPlanWait},
		{"spread worse", ecTask(1, 13, sid(4), sid(2)), ErrPlan},
		{"volume missing a shard", ecTask(2, 0, sid(5), sid(4)), ErrPlan},
		{"no shard parameter", &fsmpb.Task{Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeId: 1, Source: sid(1), Target: sid(4)}, ErrPlan},
		{"unknown volume", ecTask(9, 0, sid(1), sid(4)), ErrPlan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst, shard, err := PlanECShardMove(tc.task, topo)
			if tc.want == nil {
				if err != nil || src.ID != tc.task.Source || dst.ID != tc.task.Target || shard != 3 {
					t.Fatalf("PlanECShardMove = %v, %v, %d, %v", src, dst, shard, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || tc.want == ErrPlan && errors.Is(err, ErrPlanWait) {
				t.Fatalf("PlanECShardMove error %v; want %v", err, tc.want)
			}
		})
	}
}
