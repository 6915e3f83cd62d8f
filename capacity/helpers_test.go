package capacity

import (
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Test topologies come from internal/topotest (shared with the scheduler's
// tests), built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList.

const mib = 1 << 20

const (
	vac     = fsmpb.TaskType_TASK_TYPE_VACUUM
	ecType  = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	balType = fsmpb.TaskType_TASK_TYPE_BALANCE
)

func task(id uint64, typ fsmpb.TaskType, vol uint32) *fsmpb.Task {
	return &fsmpb.Task{Id: id, Type: typ, VolumeId: vol, State: fsmpb.TaskState_TASK_STATE_RUNNING}
}

func change(id uint64, typ fsmpb.TaskType, vol uint32, oldSize, newSize uint64) *fsmpb.CapacityChange {
	return &fsmpb.CapacityChange{TaskId: id, Type: typ, VolumeId: vol, OldSize: oldSize, NewSize: newSize}
}
