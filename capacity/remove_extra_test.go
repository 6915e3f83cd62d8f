package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestRemoveExtraCapacity: a committed remove_extra the master does not
// show yet frees its copy on the server it removed it from (a removal
// in flight frees nothing yet); it is reflected once the master no
// longer lists the copy (or the shards) there.
func TestRemoveExtraCapacity(t *testing.T) {
	rx := fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA
	three := func() []*topotest.Node {
		return []*topotest.Node{
			topotest.Srv(topotest.SID(1), 10, topotest.V(8, 50*mib).RP(1)),
			topotest.Srv(topotest.SID(2), 10, topotest.V(8, 50*mib).RP(1)),
			topotest.Srv(topotest.SID(3), 10, topotest.V(8, 50*mib).RP(1))}
	}
	topo := topotest.Build(1000, three()...)
	committed := &fsmpb.CapacityChange{TaskId: 2, Type: rx, VolumeId: 8, OldSize: 50 * mib, Source: topotest.SWA(3)}
	all := fig{used: 1, free: 9, vols: 1, mib: 50}
	for _, tc := range []struct {
		name    string
		active  []*fsmpb.Task
		changes []*fsmpb.CapacityChange
		want    []fig
	}{
		{name: "in flight: nothing freed yet", active: []*fsmpb.Task{task(2, rx, 8)}, want: []fig{all, all, all}},
		{name: "committed, unreported", changes: []*fsmpb.CapacityChange{committed}, want: []fig{all, all, {used: 0, free: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := projectServers(topo, IndexServers(topo), topo.Servers, tc.active, tc.changes)
			for i, sc := range got {
				if p := figOf(sc.Disks[0].Projected); p != tc.want[i] {
					t.Errorf("%s projected %+v, want %+v", sc.Server, p, tc.want[i])
				}
			}
		})
	}
	if Reflected(committed, topo) {
		t.Fatal("a removal is reflected while the master lists the copy")
	}
	after := topotest.Build(1000, three()[:2]...)
	if !Reflected(committed, after) {
		t.Fatal("a removal is not reflected once the master no longer lists the copy")
	}

	shards := &fsmpb.CapacityChange{TaskId: 3, Type: rx, VolumeId: 5, Source: topotest.SWA(3),
		Shards: []*fsmpb.ShardPlacement{{ShardId: 0, Server: topotest.SWA(3)}}}
	dup := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10).Shards(5, 0, 1, 2, 3, 4, 5, 6),
		topotest.Srv(topotest.SID(2), 10).Shards(5, 7, 8, 9, 10, 11, 12, 13), topotest.Srv(topotest.SID(3), 10).Shards(5, 0))
	if Reflected(shards, dup) {
		t.Fatal("a shard removal is reflected while the master lists the shard there")
	}
	got := projectServers(dup, IndexServers(dup), dup.Servers, nil, []*fsmpb.CapacityChange{shards})
	if n := got[2].Disks[0].Projected.EcShards; n != 0 {
		t.Fatalf("server 3 projected with %d shards after its duplicate's removal; want 0", n)
	}
	clean := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10).Shards(5, 0, 1, 2, 3, 4, 5, 6),
		topotest.Srv(topotest.SID(2), 10).Shards(5, 7, 8, 9, 10, 11, 12, 13), topotest.Srv(topotest.SID(3), 10))
	if !Reflected(shards, clean) {
		t.Fatal("a shard removal is not reflected once the master no longer lists the shard there")
	}
}
