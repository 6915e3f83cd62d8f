package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestECRebuildReflected: a rebuild's change is retired once the master
// lists every regenerated shard where the rebuild put it.
func TestECRebuildReflected(t *testing.T) {
	change := &fsmpb.CapacityChange{TaskId: 1, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: 7, OldSize: 10 << 20,
		Shards: []*fsmpb.ShardPlacement{{ShardId: 12, Server: topotest.SWA(3)}, {ShardId: 13, Server: topotest.SWA(3)}}}
	before := topotest.Build(1024,
		topotest.Srv(topotest.SID(1), 10).Shards(7, 0, 1, 2, 3, 4, 5),
		topotest.Srv(topotest.SID(2), 10).Shards(7, 6, 7, 8, 9, 10, 11),
		topotest.Srv(topotest.SID(3), 10))
	after := topotest.Build(1024,
		topotest.Srv(topotest.SID(1), 10).Shards(7, 0, 1, 2, 3, 4, 5),
		topotest.Srv(topotest.SID(2), 10).Shards(7, 6, 7, 8, 9, 10, 11),
		topotest.Srv(topotest.SID(3), 10).Shards(7, 12, 13))
	if Reflected(change, before) {
		t.Error("reflected before the master lists the regenerated shards")
	}
	if !Reflected(change, after) {
		t.Error("not reflected once the master lists them")
	}
	// Unreported, the projection puts the two shards on server 3.
	figs := projectServers(before, IndexServers(before), before.Servers, nil, []*fsmpb.CapacityChange{change})
	found := false
	for _, sc := range figs {
		if sc.Server != topotest.SID(3) {
			continue
		}
		found = true
		p := sc.Disks[0].GetProjected()
		if p.GetEcShards() != 2 || p.GetEcShardBytes() != 2<<20 {
			t.Errorf("server 3 projected %d EC shards, %d bytes; want 2 shards of 1 MiB", p.GetEcShards(), p.GetEcShardBytes())
		}
	}
	if !found {
		t.Fatal("no figures for server 3")
	}
}
