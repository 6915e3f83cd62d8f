package capacity

import (
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Test topologies come from internal/topotest (shared with the scheduler's
// tests), built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList.

const mib = 1 << 20

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
