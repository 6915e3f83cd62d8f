package fsm

import (
	"fmt"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

var typeNames = map[fsmpb.TaskType]string{
	fsmpb.TaskType_TASK_TYPE_VACUUM:         "vacuum",
	fsmpb.TaskType_TASK_TYPE_ERASURE_CODING: "erasure_coding",
	fsmpb.TaskType_TASK_TYPE_BALANCE:        "balance",
	fsmpb.TaskType_TASK_TYPE_REPLICATE:      "replicate",
	fsmpb.TaskType_TASK_TYPE_EC_REBUILD:     "ec_rebuild",
	fsmpb.TaskType_TASK_TYPE_EC_BALANCE:     "ec_balance",
	fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:   "remove_extra",
	fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:   "delete_empty",
}

var stateNames = map[fsmpb.TaskState]string{
	fsmpb.TaskState_TASK_STATE_PENDING:   "pending",
	fsmpb.TaskState_TASK_STATE_ASSIGNED:  "assigned",
	fsmpb.TaskState_TASK_STATE_RUNNING:   "running",
	fsmpb.TaskState_TASK_STATE_COMPLETED: "completed",
	fsmpb.TaskState_TASK_STATE_FAILED:    "failed",
	fsmpb.TaskState_TASK_STATE_CANCELLED: "cancelled",
}

// TaskTypes lists the known task types in a fixed order.
var TaskTypes = []fsmpb.TaskType{
	fsmpb.TaskType_TASK_TYPE_VACUUM,
	fsmpb.TaskType_TASK_TYPE_ERASURE_CODING,
	fsmpb.TaskType_TASK_TYPE_BALANCE,
	fsmpb.TaskType_TASK_TYPE_REPLICATE,
	fsmpb.TaskType_TASK_TYPE_EC_REBUILD,
	fsmpb.TaskType_TASK_TYPE_EC_BALANCE,
	fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA,
	fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY,
}

// RepairType reports whether t is a repair (replicate, ec_rebuild): a type
// that needs command version RepairVersion to be submitted or named as a
// worker's capability.
func RepairType(t fsmpb.TaskType) bool {
	return t == fsmpb.TaskType_TASK_TYPE_REPLICATE || t == fsmpb.TaskType_TASK_TYPE_EC_REBUILD
}

// TypeVersion is the lowest command version that can carry a task of
// type t (a SubmitTask of it, or a worker naming it as a capability): the
// repairs need RepairVersion, ec_balance, remove_extra and delete_empty
// ControlVersion,
// the rest the base version.
func TypeVersion(t fsmpb.TaskType) uint32 {
	switch {
	case t == fsmpb.TaskType_TASK_TYPE_EC_BALANCE || t == fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA || t == fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
		return ControlVersion
	case RepairType(t):
		return RepairVersion
	}
	return CommandVersion
}

// TypeName is the operator-facing name of a task type ("vacuum", ...).
func TypeName(t fsmpb.TaskType) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", int32(t))
}

// StateName is the operator-facing name of a task state ("pending", ...).
func StateName(s fsmpb.TaskState) string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", int32(s))
}

// ValidType reports whether t is a task type this version knows.
func ValidType(t fsmpb.TaskType) bool {
	_, ok := typeNames[t]
	return ok
}

// ParseTaskType turns "vacuum", "erasure_coding" (or "ec"), "balance",
// "replicate", "ec_rebuild", "ec_balance", "remove_extra" or "delete_empty" into a type.
func ParseTaskType(s string) (fsmpb.TaskType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "vacuum":
		return fsmpb.TaskType_TASK_TYPE_VACUUM, nil
	case "erasure_coding", "ec", "erasure-coding":
		return fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, nil
	case "balance":
		return fsmpb.TaskType_TASK_TYPE_BALANCE, nil
	case "replicate":
		return fsmpb.TaskType_TASK_TYPE_REPLICATE, nil
	case "ec_rebuild", "ec-rebuild":
		return fsmpb.TaskType_TASK_TYPE_EC_REBUILD, nil
	case "ec_balance", "ec-balance":
		return fsmpb.TaskType_TASK_TYPE_EC_BALANCE, nil
	case "remove_extra", "remove-extra":
		return fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, nil
	case "delete_empty", "delete-empty":
		return fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, nil
	}
	return 0, fmt.Errorf("unknown task type %q (want vacuum, erasure_coding, balance, replicate, ec_rebuild, ec_balance, remove_extra or delete_empty)", s)
}

// ParseTaskState turns a state name such as "pending" into a state.
func ParseTaskState(s string) (fsmpb.TaskState, error) {
	for st, n := range stateNames {
		if n == strings.ToLower(strings.TrimSpace(s)) {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown task state %q (want pending, assigned, running, completed, failed or cancelled)", s)
}

// RetryOrigin is the origin of a task an operator submitted as a retry of
// task id.
func RetryOrigin(id uint64) string { return fmt.Sprintf("%s%d", retryOriginPrefix, id) }

const retryOriginPrefix = "retry of task "

// OperatorOrigin reports whether a task's origin is an operator ("manual",
// or a retry of another task) rather than a detector: only detectors wait
// for the master to report a volume's completed work.
func OperatorOrigin(origin string) bool {
	return origin == "manual" || strings.HasPrefix(origin, retryOriginPrefix)
}
