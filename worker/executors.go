package worker

import (
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Executors returns the real executor of every task type, sharing one
// volume-server client.
func Executors(c *seaweed.VolumeClient) map[fsmpb.TaskType]Executor {
	return map[fsmpb.TaskType]Executor{
		fsmpb.TaskType_TASK_TYPE_VACUUM:         NewVacuumExecutor(c),
		fsmpb.TaskType_TASK_TYPE_ERASURE_CODING: NewECExecutor(c),
		fsmpb.TaskType_TASK_TYPE_BALANCE:        NewBalanceExecutor(c),
		fsmpb.TaskType_TASK_TYPE_REPLICATE:      NewReplicateExecutor(c),
		fsmpb.TaskType_TASK_TYPE_EC_REBUILD:     NewECRebuildExecutor(c),
		fsmpb.TaskType_TASK_TYPE_EC_BALANCE:     NewECBalanceExecutor(c),
		fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:   NewRemoveExtraExecutor(c),
		fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:   NewDeleteEmptyExecutor(c),
	}
}
