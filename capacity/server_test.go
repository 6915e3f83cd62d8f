package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// fig is one disk's figures compactly: used/free slots, volumes, MiB, EC shards, EC MiB.
type fig struct {
	used, free int64
	vols       uint32
	mib        uint64
	shards     uint32
	shardMiB   uint64
}

func figOf(f *pb.CapacityFigures) fig {
	return fig{used: f.UsedSlots, free: f.FreeSlots, vols: f.Volumes, mib: f.VolumeBytes / mib, shards: f.EcShards, shardMiB: f.EcShardBytes / mib}
}

func TestProjectServers(t *testing.T) {
	topo := topotest.Build(1000,
		topotest.Srv(topotest.SID(1), 10, topotest.V(7, 100*mib).Garbage(30*mib), topotest.V(8, 50*mib)),
		topotest.Srv(topotest.SID(2), 10, topotest.V(7, 100*mib).Garbage(30*mib)),
		topotest.Srv(topotest.SID(3), 10),
		topotest.Srv(topotest.SID(4), 10).Shards(20, 0, 1).WithFree(9))
	shards := func(servers ...int) []*fsmpb.ShardPlacement {
		var out []*fsmpb.ShardPlacement
		for i := 0; i < seaweed.EcTotalShards; i++ {
			out = append(out, &fsmpb.ShardPlacement{ShardId: uint32(i), Server: topotest.SWA(servers[i*len(servers)/seaweed.EcTotalShards])})
		}
		return out
	}
	type want map[int][2]fig // server -> master, projected
	s1, s2, s3 := fig{used: 2, free: 8, vols: 2, mib: 150}, fig{used: 1, free: 9, vols: 1, mib: 100}, fig{used: 0, free: 10}
	s4 := fig{used: 1, free: 9, shards: 2}
	tests := []struct {
		name    string
		active  []*fsmpb.Task
		changes []*fsmpb.CapacityChange
		want    want
	}{
		{name: "nothing in flight", want: want{1: {s1, s1}, 2: {s2, s2}, 3: {s3, s3}, 4: {s4, s4}}},
		{name: "vacuum in flight reclaims on every replica", active: []*fsmpb.Task{task(1, vac, 7)},
			want: want{1: {s1, fig{used: 2, free: 8, vols: 2, mib: 120}}, 2: {s2, fig{used: 1, free: 9, vols: 1, mib: 70}}, 3: {s3, s3}}},
		{name: "vacuum committed, unreported", changes: []*fsmpb.CapacityChange{change(1, vac, 7, 100*mib, 60*mib)},
			want: want{1: {s1, fig{used: 2, free: 8, vols: 2, mib: 110}}, 2: {s2, fig{used: 1, free: 9, vols: 1, mib: 60}}}},
		{name: "balance in flight moves the volume", active: []*fsmpb.Task{{Id: 2, Type: balType, VolumeId: 8, Source: topotest.SID(1), Target: topotest.SID(3), State: fsmpb.TaskState_TASK_STATE_ASSIGNED}},
			want: want{1: {s1, fig{used: 1, free: 9, vols: 1, mib: 100}}, 3: {s3, fig{used: 1, free: 9, vols: 1, mib: 50}}, 2: {s2, s2}}},
		{name: "balance committed, unreported", changes: []*fsmpb.CapacityChange{{TaskId: 2, Type: balType, VolumeId: 8, OldSize: 50 * mib, NewSize: 50 * mib, Source: topotest.SID(1), Target: topotest.SWA(3)}},
			want: want{1: {s1, fig{used: 1, free: 9, vols: 1, mib: 100}}, 3: {s3, fig{used: 1, free: 9, vols: 1, mib: 50}}}},
		{name: "ec committed, unreported: volume gone, shards arrive", changes: []*fsmpb.CapacityChange{{TaskId: 3, Type: ecType, VolumeId: 8, OldSize: 50 * mib, Shards: shards(1, 2, 3)}},
			want: want{
				1: {s1, fig{used: 2, free: 8, vols: 1, mib: 100, shards: 5, shardMiB: 25}},
				2: {s2, fig{used: 2, free: 8, vols: 1, mib: 100, shards: 5, shardMiB: 25}},
				3: {s3, fig{used: 1, free: 9, shards: 4, shardMiB: 20}},
				4: {s4, s4},
			}},
		{name: "ec committed, some shards reported", changes: []*fsmpb.CapacityChange{{TaskId: 3, Type: ecType, VolumeId: 20, OldSize: 100 * mib, Shards: shards(4, 3)}},
			want: want{
				4: {s4, fig{used: 1, free: 9, shards: 7, shardMiB: 50}},
				3: {s3, fig{used: 1, free: 9, shards: 7, shardMiB: 70}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var servers []*seaweed.Server
			for i := 1; i <= 4; i++ {
				s, ok := FindServer(topo, topotest.SID(i))
				if !ok {
					t.Fatalf("server %d not found", i)
				}
				servers = append(servers, s)
			}
			got := projectServers(topo, IndexServers(topo), servers, tc.active, tc.changes)
			if len(got) != 4 {
				t.Fatalf("got %d servers, want 4", len(got))
			}
			for i, w := range tc.want {
				sc := got[i-1]
				if sc.Server != topotest.SID(i) || len(sc.Disks) != 1 || sc.Disks[0].MaxSlots != 10 {
					t.Fatalf("server %d: got %+v", i, sc)
				}
				if m := figOf(sc.Disks[0].Master); m != w[0] {
					t.Errorf("server %d master: got %+v, want %+v", i, m, w[0])
				}
				if p := figOf(sc.Disks[0].Projected); p != w[1] {
					t.Errorf("server %d projected: got %+v, want %+v", i, p, w[1])
				}
			}
		})
	}
}

func TestProjectServersECInFlight(t *testing.T) {
	topo := topotest.Build(1000,
		topotest.Srv(topotest.SID(1), 10, topotest.V(8, 100*mib)),
		topotest.Srv(topotest.SID(2), 10), topotest.Srv(topotest.SID(3), 10), topotest.Srv(topotest.SID(4), 10), topotest.Srv(topotest.SID(5), 10))
	got := projectServers(topo, IndexServers(topo), topo.Servers, []*fsmpb.Task{task(1, ecType, 8)}, nil)
	var shards uint32
	var shardBytes uint64
	for _, sc := range got {
		p := sc.Disks[0].Projected
		shards += p.EcShards
		shardBytes += p.EcShardBytes
		if p.UsedSlots+p.FreeSlots != 10 {
			t.Errorf("%s: used %d + free %d != 10", sc.Server, p.UsedSlots, p.FreeSlots)
		}
		if sc.Server == topotest.SID(1) && (p.Volumes != 0 || p.VolumeBytes != 0 || p.EcShards == 0) {
			t.Errorf("source after encoding: %+v", p)
		}
	}
	if shards != seaweed.EcTotalShards || shardBytes != seaweed.EcTotalShards*10*mib {
		t.Errorf("projected %d shards of %d MiB in all, want %d of %d", shards, shardBytes/mib, seaweed.EcTotalShards, seaweed.EcTotalShards*10)
	}
}
