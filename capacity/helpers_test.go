package capacity

import (
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Test topologies are built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList.

const mib = 1 << 20

// The builder is internal/topotest's (shared with the scheduler's tests),
// under the short names the tests use.
type (
	vol  = topotest.Vol
	node = topotest.Node
)

var (
	sid   = topotest.SID
	swa   = topotest.SWA
	v     = topotest.V
	srv   = topotest.Srv
	build = topotest.Build
)

const (
	vac     = pb.TaskType_TASK_TYPE_VACUUM
	ecType  = pb.TaskType_TASK_TYPE_ERASURE_CODING
	balType = pb.TaskType_TASK_TYPE_BALANCE
)

func task(id uint64, typ pb.TaskType, vol uint32) *pb.Task {
	return &pb.Task{Id: id, Type: typ, VolumeId: vol, State: pb.TaskState_TASK_STATE_RUNNING}
}

func change(id uint64, typ pb.TaskType, vol uint32, oldSize, newSize uint64) *pb.CapacityChange {
	return &pb.CapacityChange{TaskId: id, Type: typ, VolumeId: vol, OldSize: oldSize, NewSize: newSize}
}
