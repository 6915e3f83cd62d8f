package worker

import (
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Executors returns the real executor of every task type, sharing one
// volume-server client.
func Executors(c *seaweed.VolumeClient) map[pb.TaskType]Executor {
	return map[pb.TaskType]Executor{
		pb.TaskType_TASK_TYPE_VACUUM:         NewVacuumExecutor(c),
		pb.TaskType_TASK_TYPE_ERASURE_CODING: NewECExecutor(c),
		pb.TaskType_TASK_TYPE_BALANCE:        NewBalanceExecutor(c),
	}
}
