package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestECBalanceReflectedAndProjected: a shard move's change is retired
// once the master lists the shard on its target and not on its source;
// until then, and while the move is in flight, the projection counts the
// shard on the target and not on the source.
func TestECBalanceReflectedAndProjected(t *testing.T) {
	sid, swa := topotest.SID, topotest.SWA
	change := &fsmpb.CapacityChange{TaskId: 1, Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeId: 7, OldSize: 10 << 20,
		Source: swa(1), Target: swa(3), Shards: []*fsmpb.ShardPlacement{{ShardId: 5, Server: swa(3)}}}
	before := topotest.Build(1024,
		topotest.Srv(sid(1), 10).Shards(7, 0, 1, 2, 3, 4, 5),
		topotest.Srv(sid(2), 10).Shards(7, 6, 7, 8, 9, 10, 11, 12, 13),
		topotest.Srv(sid(3), 10))
	both := topotest.Build(1024,
		topotest.Srv(sid(1), 10).Shards(7, 0, 1, 2, 3, 4, 5),
		topotest.Srv(sid(2), 10).Shards(7, 6, 7, 8, 9, 10, 11, 12, 13),
		topotest.Srv(sid(3), 10).Shards(7, 5))
	after := topotest.Build(1024,
		topotest.Srv(sid(1), 10).Shards(7, 0, 1, 2, 3, 4),
		topotest.Srv(sid(2), 10).Shards(7, 6, 7, 8, 9, 10, 11, 12, 13),
		topotest.Srv(sid(3), 10).Shards(7, 5))
	if Reflected(change, before) || Reflected(change, both) {
		t.Error("reflected before the master lists the shard on the target only")
	}
	if !Reflected(change, after) {
		t.Error("not reflected once the master lists the move")
	}
	shards := func(figs []*pb.ServerCapacity) map[string]uint32 {
		out := map[string]uint32{}
		for _, sc := range figs {
			out[sc.Server] = sc.Disks[0].GetProjected().GetEcShards()
		}
		return out
	}
	want := map[string]uint32{sid(1): 5, sid(2): 8, sid(3): 1}
	// Unreported change.
	got := shards(projectServers(before, IndexServers(before), before.Servers, nil, []*fsmpb.CapacityChange{change}))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("unreported change: projected shards %v; want %v", got, want)
			break
		}
	}
	// Move in flight.
	task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeId: 7, Source: sid(1), Target: sid(3),
		State: fsmpb.TaskState_TASK_STATE_RUNNING, Params: []*fsmpb.Param{{Key: placement.ShardParam, Value: "5"}}}
	got = shards(projectServers(before, IndexServers(before), before.Servers, []*fsmpb.Task{task}, nil))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("move in flight: projected shards %v; want %v", got, want)
			break
		}
	}
	// Reported: nothing more to project.
	got = shards(projectServers(after, IndexServers(after), after.Servers, []*fsmpb.Task{task}, []*fsmpb.CapacityChange{change}))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("reported: projected shards %v; want %v", got, want)
			break
		}
	}
}
