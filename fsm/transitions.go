package fsm

import "github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"

const (
	pending   = fsmpb.TaskState_TASK_STATE_PENDING
	assigned  = fsmpb.TaskState_TASK_STATE_ASSIGNED
	running   = fsmpb.TaskState_TASK_STATE_RUNNING
	completed = fsmpb.TaskState_TASK_STATE_COMPLETED
	failed    = fsmpb.TaskState_TASK_STATE_FAILED
	cancelled = fsmpb.TaskState_TASK_STATE_CANCELLED
)

// legal lists every allowed (from, to) pair; nothing else may happen to a task.
var legal = map[[2]fsmpb.TaskState]bool{
	{pending, assigned}:   true,
	{assigned, running}:   true,
	{running, completed}:  true,
	{assigned, failed}:    true,
	{running, failed}:     true,
	{assigned, pending}:   true, // requeue
	{running, pending}:    true, // requeue
	{pending, cancelled}:  true,
	{assigned, cancelled}: true,
	{running, cancelled}:  true,
}

// Legal reports whether a task may move from one state to another.
func Legal(from, to fsmpb.TaskState) bool { return legal[[2]fsmpb.TaskState{from, to}] }

// Terminal reports whether s is an end state (completed, failed, cancelled).
func Terminal(s fsmpb.TaskState) bool { return s == completed || s == failed || s == cancelled }

// Active reports whether a task in state s holds its volume's reservation.
func Active(s fsmpb.TaskState) bool { return s == pending || s == assigned || s == running }
