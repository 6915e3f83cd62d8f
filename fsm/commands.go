package fsm

import "github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"

// Constructors of the commands proposed to the replicated state, shared by
// the code that proposes them (the scheduler, the gRPC layer's operator
// calls and address publishing, the version gate) and the tests that apply
// them, so both build a command the same way. Each returns a command
// without a version: Encode sets it.

// SubmitCmd submits a task as c describes it.
func SubmitCmd(c *fsmpb.SubmitTask) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: c}}
}

// AssignCmd assigns task id's next attempt to worker, recording the
// servers it may touch and its move (nil: none).
func AssignCmd(id uint64, worker string, servers []string, move *fsmpb.Move) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: id, WorkerId: worker, Servers: servers, Move: move}}}
}

// The commands a worker's report leads to name the worker whose report it
// is (worker; empty for the leader's own decision): from OwnerVersion on,
// Apply refuses one whose attempt is another worker's.

// StartCmd records that attempt fence of task id, worker's, started.
func StartCmd(id, fence uint64, worker string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_StartTask{StartTask: &fsmpb.StartTask{TaskId: id, Fence: fence, WorkerId: worker}}}
}

// ProgressCmd records a checkpoint of attempt fence of task id, worker's.
func ProgressCmd(id, fence uint64, worker string, progress float64, step string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_ReportProgress{ReportProgress: &fsmpb.ReportProgress{TaskId: id, Fence: fence, Progress: progress, Step: step, WorkerId: worker}}}
}

// CompleteCmd completes task id by its attempt fence, worker's, with the
// capacity change it made (nil: none).
func CompleteCmd(id, fence uint64, worker string, change *fsmpb.CapacityChange) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_CompleteTask{CompleteTask: &fsmpb.CompleteTask{TaskId: id, Fence: fence, Change: change, WorkerId: worker}}}
}

// FailCmd fails task id for good by its attempt fence, on worker's report.
func FailCmd(id, fence uint64, worker, msg string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_FailTask{FailTask: &fsmpb.FailTask{TaskId: id, Fence: fence, Error: msg, WorkerId: worker}}}
}

// RequeueCmd puts attempt fence of task id back to pending (on worker's
// report), not to be assigned before notBefore (unix nanoseconds; 0: at
// once), counting a retry if retry.
func RequeueCmd(id, fence uint64, worker, reason string, notBefore int64, retry bool) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RequeueTask{RequeueTask: &fsmpb.RequeueTask{TaskId: id, Fence: fence, Reason: reason, NotBefore: notBefore, CountAsRetry: retry, WorkerId: worker}}}
}

// CancelCmd cancels task id (fence: its stopped attempt; 0 for a task that
// has none running), on worker's report, with how the attempt ended as
// reason.
func CancelCmd(id, fence uint64, worker, reason string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: id, Fence: fence, Reason: reason, WorkerId: worker}}}
}

// CancelPendingCmd cancels task id, the leader's own decision, only if it
// is still pending in attempt (the one the leader read; at least 1) when
// the command applies (refused otherwise: an attempt assigned since the
// leader looked is left to run, and one requeued since may carry history
// the leader's decision did not see).
func CancelPendingCmd(id uint64, attempt uint32, reason string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: id, Reason: reason, PendingAttempt: max(attempt, 1)}}}
}

// RequestCancelCmd records an operator's request to cancel task id.
func RequestCancelCmd(id uint64, reason string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RequestCancel{RequestCancel: &fsmpb.RequestCancel{TaskId: id, Reason: reason}}}
}

// RetireCmd retires the capacity changes of the given tasks.
func RetireCmd(ids ...uint64) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RetireCapacityChanges{RetireCapacityChanges: &fsmpb.RetireCapacityChanges{TaskIds: ids}}}
}

// PruneCmd drops the given finished tasks.
func PruneCmd(ids ...uint64) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_PruneTasks{PruneTasks: &fsmpb.PruneTasks{TaskIds: ids}}}
}

// SetPolicyCmd replaces the maintenance policy with p if its revision is
// still expected, recording by as who changed it.
func SetPolicyCmd(p *fsmpb.Policy, expected uint64, by string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetPolicy{SetPolicy: &fsmpb.SetPolicy{Policy: p, ExpectedRevision: expected, By: by}}}
}

// PauseCmd pauses maintenance (paused, with reason) or resumes it, whatever
// the policy's revision, recording by as who did.
func PauseCmd(paused bool, reason, by string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetPolicy{SetPolicy: &fsmpb.SetPolicy{Policy: &fsmpb.Policy{Paused: paused, PauseReason: reason}, By: by, PauseOnly: true}}}
}

// RegisterCmd registers (or refreshes) a worker.
func RegisterCmd(w *fsmpb.Worker) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RegisterWorker{RegisterWorker: &fsmpb.RegisterWorker{Worker: w}}}
}

// DeregisterCmd forgets a worker.
func DeregisterCmd(id string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DeregisterWorker{DeregisterWorker: &fsmpb.DeregisterWorker{WorkerId: id}}}
}

// SetAdminAddrCmd publishes admin id's client gRPC address and the highest
// command version its build applies.
func SetAdminAddrCmd(id, grpcAddr string, maxCommandVersion uint32) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetAdminAddr{SetAdminAddr: &fsmpb.SetAdminAddr{Id: id, GrpcAddr: grpcAddr, MaxCommandVersion: maxCommandVersion}}}
}

// ForgetAdminCmd forgets a removed admin's address and version.
func ForgetAdminCmd(id string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_ForgetAdmin{ForgetAdmin: &fsmpb.ForgetAdmin{Id: id}}}
}
