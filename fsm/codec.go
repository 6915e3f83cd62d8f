package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// CommandVersion is the base envelope version: every build writes and
// applies it.
const CommandVersion = 1

// HistoryVersion (2) adds the attempt history: AssignTask.servers and
// .move are recorded in the task (attempt_servers, attempt_move), a
// requeue moves them to earlier_servers and earlier_moves, and SubmitTask
// carries a retried task's history. A version-1 AssignTask, RequeueTask or
// SubmitTask leaves those fields as they are, even if the command carries
// them, as a build that predates them does.
const HistoryVersion = 2

// OwnerVersion (3) adds the reporting worker to the commands a worker's
// report leads to (StartTask, ReportProgress, CompleteTask, FailTask,
// RequeueTask, CancelTask: worker_id): one naming a worker other than the
// attempt's is refused (ERROR_CODE_NOT_OWNER). A version-1 or -2 command
// ignores the field, as a build that predates it would: a node of such a
// build applies what a newer one refuses, so the field is written only
// once every member applies version 3 (EncodeAgreed).
const OwnerVersion = 3

// RepairVersion (4) adds the repair task types (fsm.RepairType: replicate,
// ec_rebuild): a SubmitTask of one, or a RegisterWorker that names one
// among its capabilities, needs version 4. A build that predates them
// refuses both as unknown types, so the leader writes them only once every
// member applies version 4; until then no repair is submitted and a
// worker registers without its repair capabilities.
const RepairVersion = 4

// PolicyVersion (4, the same version as RepairVersion: both are new in
// it, and it was never released without either) adds the maintenance
// policy (SetPolicy). A build that predates it halts on the unknown body,
// so the leader writes a SetPolicy only once every member applies version
// 4; until then a policy change is refused and the default policy (no
// pause, every type enabled) holds.
const PolicyVersion = RepairVersion

// ControlVersion (5) adds what operators and self-healing needed next: new
// task types and policy fields that a version-4 build would refuse or
// ignore, so a command that carries one is written only once every member
// applies version 5 (see RequiredVersion for exactly which): the
// ec_balance, remove_extra and delete_empty task types (a SubmitTask of one, a
// RegisterWorker naming one, or a SetPolicy with an entry for one).
const ControlVersion = 5

// PendingCancelVersion (6) adds CancelTask.pending_attempt: the leader
// cancels a task it decided is no longer wanted (a repair whose volume is
// whole again, a routine task a repair takes the place of) only if the
// task is still pending, in the attempt the leader read, when the command
// applies. Without it such a cancel,
// proposed after the leader read the task as pending, also cancelled an
// attempt assigned in between, releasing the volume while a worker ran on
// it. A version-5 build would ignore the field and cancel the attempt, so
// the command is written only once every member applies version 6; until
// then those cancels are not made (the task runs, which is safe).
const PendingCancelVersion = 6

// CurrentVersion is the highest real command version this build writes and
// applies.
const CurrentVersion = PendingCancelVersion

// TestCommandVersion is the version of the test-only TestCommand, one above
// CurrentVersion. A build applies it only when told to
// (GROUNDSKEEPER_TEST_COMMAND_VERSION=7), which is how tests play "a build
// that knows one more command version".
const TestCommandVersion = CurrentVersion + 1

// MaxEarlierMoves bounds Task.earlier_moves: a requeue or a retry keeps the
// newest ones.
const MaxEarlierMoves = 32

// MaxEarlierServers bounds the history a SubmitTask may carry.
const MaxEarlierServers = 4096

// RequiredVersion is the lowest command version that can carry cmd's body:
// the version Encode stamps and the leader must know every voter applies.
func RequiredVersion(cmd *fsmpb.Command) uint32 {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_TestCommand:
		return TestCommandVersion
	case *fsmpb.Command_SubmitTask:
		return TypeVersion(b.SubmitTask.GetType())
	case *fsmpb.Command_SetPolicy:
		need := uint32(PolicyVersion)
		if usesControlFields(b.SetPolicy.GetPolicy()) {
			need = ControlVersion
		}
		// A per-type entry of a type newer than the policy (ec_balance)
		// is refused as unknown by a build that predates the type.
		for _, tp := range b.SetPolicy.GetPolicy().GetTypes() {
			need = max(need, TypeVersion(tp.GetType()))
		}
		return need
	case *fsmpb.Command_CancelTask:
		if b.CancelTask.GetPendingAttempt() != 0 {
			return PendingCancelVersion
		}
		return CommandVersion
	case *fsmpb.Command_RegisterWorker:
		need := uint32(CommandVersion)
		for _, c := range b.RegisterWorker.GetWorker().GetCapabilities() {
			need = max(need, TypeVersion(c))
		}
		return need
	}
	return CommandVersion
}

// AgreedVersion is the highest command version every one of ids (the
// servers of the raft configuration, voters and non-voters alike: each
// applies every entry) has advertised (advertised maps an admin id to its
// advertised version): the newest the leader may write. A server that
// advertised nothing yet counts as the base version, which every build
// applies.
func AgreedVersion(ids []string, advertised map[string]uint32) uint32 {
	if len(ids) == 0 {
		return CommandVersion
	}
	agreed := uint32(0)
	for i, id := range ids {
		a := max(advertised[id], CommandVersion)
		if i == 0 || a < agreed {
			agreed = a
		}
	}
	return agreed
}

// Encode stamps the envelope version (RequiredVersion) and the proposer's
// time and marshals cmd. A command that carries attempt history is written
// as version 1, its history dropped: EncodeAgreed writes it as version 2
// when every voter applies that.
func Encode(now int64, cmd *fsmpb.Command) ([]byte, error) {
	return EncodeAgreed(now, CommandVersion, cmd)
}

// historyBody reports whether cmd's body is one whose version-2 form
// records attempt history.
func historyBody(cmd *fsmpb.Command) bool {
	switch cmd.Body.(type) {
	case *fsmpb.Command_AssignTask, *fsmpb.Command_RequeueTask, *fsmpb.Command_SubmitTask:
		return true
	}
	return false
}

// ownerField returns the address of the worker_id of cmd's body, for the
// bodies that carry one from OwnerVersion on (nil for the others).
func ownerField(cmd *fsmpb.Command) *string {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_StartTask:
		return &b.StartTask.WorkerId
	case *fsmpb.Command_ReportProgress:
		return &b.ReportProgress.WorkerId
	case *fsmpb.Command_CompleteTask:
		return &b.CompleteTask.WorkerId
	case *fsmpb.Command_FailTask:
		return &b.FailTask.WorkerId
	case *fsmpb.Command_RequeueTask:
		return &b.RequeueTask.WorkerId
	case *fsmpb.Command_CancelTask:
		return &b.CancelTask.WorkerId
	}
	return nil
}

// EncodeAgreed is Encode for a leader whose voters all apply command
// versions up to agreed: a command that records attempt history is
// stamped version 2 if agreed allows it; otherwise it is stamped version 1
// and its history fields are cleared (a version-1 command never carries
// what it would not apply). Likewise a command naming the worker whose
// report it is is stamped version 3 if agreed allows it, and otherwise
// loses the worker id (and with it the ownership check: an older member
// would apply it unchecked, and the states must not differ).
func EncodeAgreed(now int64, agreed uint32, cmd *fsmpb.Command) ([]byte, error) {
	cmd.Version = RequiredVersion(cmd)
	if w := ownerField(cmd); w != nil && *w != "" {
		if agreed >= OwnerVersion {
			cmd.Version = max(cmd.Version, OwnerVersion)
		} else {
			*w = ""
		}
	}
	if historyBody(cmd) {
		if agreed >= HistoryVersion {
			cmd.Version = max(cmd.Version, HistoryVersion)
		} else {
			switch b := cmd.Body.(type) {
			case *fsmpb.Command_AssignTask:
				b.AssignTask.Servers, b.AssignTask.Move = nil, nil
			case *fsmpb.Command_SubmitTask:
				b.SubmitTask.EarlierServers, b.SubmitTask.EarlierMoves = nil, nil
			}
		}
	}
	cmd.Now = now
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// Decode unmarshals a command from a log entry.
func Decode(b []byte) (*fsmpb.Command, error) {
	var cmd fsmpb.Command
	if err := proto.Unmarshal(b, &cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return &cmd, nil
}
