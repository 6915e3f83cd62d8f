package rpc

import (
	"fmt"
	"unicode/utf8"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/errtext"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Lengths, in bytes, of the strings a client may hand the API. They are
// checked where a request enters (InvalidArgument naming the field and the
// limit), so that nothing a client sends makes the replicated state, the
// scheduler's memory or a log line grow without bound.
const (
	// MaxIDLen bounds a worker id (admin node ids are bounded tighter by
	// cluster.ValidateID).
	MaxIDLen = 128
	// MaxAddrLen bounds a server or admin address: a 253-byte DNS name
	// with a SeaweedFS server's ":port.grpcPort" (12 bytes) fits, with room.
	MaxAddrLen = 272
	// MaxCollectionLen bounds a collection name.
	MaxCollectionLen = 256
	// MaxStepLen bounds the step a worker reports.
	MaxStepLen = 256
	// MaxReasonLen bounds the reason an operator gives for a cancel.
	MaxReasonLen = 512
	// MaxErrorLen bounds the error text a worker reports. Longer text is
	// cut to it (errtext.Truncate), never refused: refusing an outcome ends
	// the session, and the worker re-sends it on every reconnect.
	MaxErrorLen = errtext.MaxLen
	// MaxVersionLen bounds the build version a worker gives in its hello.
	MaxVersionLen = 128
	// MaxParams bounds the parameters of one task; MaxParamKeyLen and
	// MaxParamValueLen their keys and values.
	MaxParams        = 32
	MaxParamKeyLen   = 128
	MaxParamValueLen = 1024
	// MaxRunningReported bounds the attempts a worker lists in a hello or
	// heartbeat (it runs at most its max_concurrent; the rest are rolled
	// back journal entries).
	MaxRunningReported = 4096
	// MaxShardPlacements bounds the shard placements of a reported change.
	MaxShardPlacements = 256
)

// checkLen refuses a string field longer than limit bytes, or not UTF-8,
// in one sentence naming the field and the limit.
func checkLen(field, v string, limit int) error {
	if len(v) > limit {
		return invalid(fmt.Sprintf("%s is %d bytes long; at most %d are allowed", field, len(v), limit))
	}
	if !utf8.ValidString(v) {
		return invalid(fmt.Sprintf("%s is not valid UTF-8", field))
	}
	return nil
}

// checkCount refuses a list field of more than limit entries.
func checkCount(field string, n, limit int) error {
	if n > limit {
		return invalid(fmt.Sprintf("%s holds %d entries; at most %d are allowed", field, n, limit))
	}
	return nil
}

// firstErr returns the first non-nil error of errs.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkSubmit checks the strings of a task submission.
func checkSubmit(req *pb.SubmitTaskRequest) error {
	if err := firstErr(
		checkLen("collection", req.Collection, MaxCollectionLen),
		checkLen("source", req.Source, MaxAddrLen),
		checkLen("target", req.Target, MaxAddrLen),
		checkCount("params", len(req.Params), MaxParams),
	); err != nil {
		return err
	}
	for _, p := range req.Params {
		if err := firstErr(checkLen("a parameter key", p.Key, MaxParamKeyLen), checkLen("a parameter value", p.Value, MaxParamValueLen)); err != nil {
			return err
		}
	}
	return nil
}

// checkRunning checks the attempts a worker lists.
func checkRunning(field string, running []*pb.RunningTask) error {
	if err := checkCount(field, len(running), MaxRunningReported); err != nil {
		return err
	}
	for _, r := range running {
		if err := checkLen(field+" step", r.Step, MaxStepLen); err != nil {
			return err
		}
	}
	return nil
}

// checkHello checks what a worker says of itself.
func checkHello(h *pb.Hello) error {
	return firstErr(
		checkLen("worker id", h.GetWorkerId(), MaxIDLen),
		checkLen("version", h.GetVersion(), MaxVersionLen),
		checkCount("capabilities", len(h.GetCapabilities()), len(fsmpb.TaskType_name)),
		checkRunning("running", h.GetRunning()),
	)
}

// checkChange checks the capacity change a worker reports.
func checkChange(c *fsmpb.CapacityChange) error {
	if c == nil {
		return nil
	}
	if err := firstErr(
		checkLen("change collection", c.Collection, MaxCollectionLen),
		checkLen("change source", c.Source, MaxAddrLen),
		checkLen("change target", c.Target, MaxAddrLen),
		checkCount("change shards", len(c.Shards), MaxShardPlacements),
	); err != nil {
		return err
	}
	for _, s := range c.Shards {
		if err := checkLen("a shard's server", s.Server, MaxAddrLen); err != nil {
			return err
		}
	}
	return nil
}

// checkWorkerMessage checks a message of a worker's session after its hello.
// The error text of a failure or release is cut to MaxErrorLen in place
// rather than refused: a worker reports what its executor said, and must
// be able to report every outcome. The other fields hold what a worker
// itself chooses (ids, step names) and are refused over their limits.
func checkWorkerMessage(m *pb.WorkerMessage) error {
	switch b := m.Body.(type) {
	case *pb.WorkerMessage_Hello:
		return checkHello(b.Hello)
	case *pb.WorkerMessage_Heartbeat:
		return checkRunning("heartbeat running", b.Heartbeat.GetRunning())
	case *pb.WorkerMessage_Progress:
		return checkLen("progress step", b.Progress.GetStep(), MaxStepLen)
	case *pb.WorkerMessage_Completed:
		return checkChange(b.Completed.GetChange())
	case *pb.WorkerMessage_Failed:
		if b.Failed != nil {
			b.Failed.Error = errtext.Truncate(b.Failed.Error, MaxErrorLen)
		}
		return checkLen("failure step", b.Failed.GetStep(), MaxStepLen)
	case *pb.WorkerMessage_Released:
		if b.Released != nil {
			b.Released.Error = errtext.Truncate(b.Released.Error, MaxErrorLen)
		}
	}
	return nil
}

// checkServers checks the server names an oracle call asks for.
func checkServers(servers []string) error {
	for _, s := range servers {
		if err := checkLen("a server name", s, MaxAddrLen); err != nil {
			return err
		}
	}
	return nil
}

// checkForwarded checks the strings of a command a follower forwards: the
// writes its handlers make (a submission, a cancel, its own address) are
// held to the limits those handlers apply.
func checkForwarded(cmd *fsmpb.Command) error {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_SubmitTask:
		c := b.SubmitTask
		if err := firstErr(
			checkSubmit(&pb.SubmitTaskRequest{Collection: c.GetCollection(), Source: c.GetSource(), Target: c.GetTarget(), Params: c.GetParams()}),
			checkLen("origin", c.GetOrigin(), MaxIDLen),
		); err != nil {
			return err
		}
		for _, srv := range c.GetEarlierServers() {
			if err := checkLen("an earlier server", srv, MaxAddrLen); err != nil {
				return err
			}
		}
	case *fsmpb.Command_RequestCancel:
		return checkLen("the reason", b.RequestCancel.GetReason(), MaxReasonLen)
	case *fsmpb.Command_SetPolicy:
		c := b.SetPolicy
		return firstErr(checkLen("the policy change's identity", c.GetBy(), fsm.MaxPolicyByLen), checkLen("the pause reason", c.GetPolicy().GetPauseReason(), fsm.MaxPolicyReasonLen),
			checkCount("the policy's task types", len(c.GetPolicy().GetTypes()), len(fsm.TaskTypes)))
	case *fsmpb.Command_SetAdminAddr:
		return firstErr(checkLen("admin id", b.SetAdminAddr.GetId(), MaxIDLen), checkLen("admin address", b.SetAdminAddr.GetGrpcAddr(), MaxAddrLen))
	}
	return nil
}
