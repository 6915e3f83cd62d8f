package rpc

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// The request checks of the handlers: what a request must satisfy before
// anything is read or proposed for it. Each answers nil or an
// InvalidArgument status in one sentence, reads nothing but the request,
// and is fuzzed (validate_fuzz_test.go).

func validateSubmit(req *pb.SubmitTaskRequest) error {
	if !fsm.ValidType(req.Type) {
		return invalid(fmt.Sprintf("unknown task type %d (want vacuum, erasure_coding or balance)", int32(req.Type)))
	}
	if req.VolumeId == 0 {
		return invalid("volume id must be greater than 0")
	}
	if err := checkSubmit(req); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range req.Params {
		if p.Key == "" {
			return invalid("a task parameter has an empty key")
		}
		if seen[p.Key] {
			return invalid(fmt.Sprintf("task parameter %q is given twice", p.Key))
		}
		seen[p.Key] = true
	}
	return nil
}

// validateListTasks also gives the page the request asks for (taskPage).
func validateListTasks(req *pb.ListTasksRequest) (size int, after uint64, err error) {
	if err := validConsistency(req.Consistency); err != nil {
		return 0, 0, err
	}
	for _, st := range req.States {
		if _, ok := fsmpb.TaskState_name[int32(st)]; !ok || st == fsmpb.TaskState_TASK_STATE_UNSPECIFIED {
			return 0, 0, invalid(fmt.Sprintf("unknown task state %d", int32(st)))
		}
	}
	for _, t := range req.Types {
		if _, ok := fsmpb.TaskType_name[int32(t)]; !ok || t == fsmpb.TaskType_TASK_TYPE_UNSPECIFIED {
			return 0, 0, invalid(fmt.Sprintf("unknown task type %d", int32(t)))
		}
	}
	return taskPage(req)
}

func validateTaskID(id uint64) error {
	if id == 0 {
		return invalid("task id must be greater than 0")
	}
	return nil
}

func validateGetTask(req *pb.GetTaskRequest) error {
	return firstErr(validateTaskID(req.Id), validConsistency(req.Consistency))
}

func validateListWorkers(req *pb.ListWorkersRequest) error { return validConsistency(req.Consistency) }

func validateCancel(req *pb.CancelTaskRequest) error {
	return firstErr(validateTaskID(req.Id), checkLen("the reason", req.Reason, MaxReasonLen))
}

func validateRetry(req *pb.RetryTaskRequest) error { return validateTaskID(req.Id) }

func validateNodeID(id string) error {
	if err := checkLen("node id", id, MaxIDLen); err != nil {
		return err
	}
	if err := cluster.ValidateID(id); err != nil {
		return invalid(err.Error())
	}
	return nil
}

func validateAddPeer(req *pb.AddPeerRequest) error {
	if err := validateNodeID(req.Id); err != nil {
		return err
	}
	if err := checkLen("raft address", req.RaftAddr, MaxAddrLen); err != nil {
		return err
	}
	if err := cluster.ValidateAddr("raft address", req.RaftAddr); err != nil {
		return invalid(err.Error())
	}
	return nil
}

func validateRemovePeer(req *pb.RemovePeerRequest) error { return validateNodeID(req.Id) }

// validateRestoreHeader checks the first message of a restore stream.
func validateRestoreHeader(first *pb.SnapshotChunk) (*pb.SnapshotHeader, error) {
	hdr := first.GetHeader()
	if hdr == nil {
		return nil, invalid("a restore must start with the snapshot header")
	}
	if err := CheckSnapshotHeader(hdr); err != nil {
		return nil, invalid(err.Error())
	}
	return hdr, nil
}

// validateBatch decodes and checks a follower's batch: a malformed request
// fails as a whole; a command over a limit gets its refusal in items[i]
// and is left out of valid (at[j] is the index of valid[j] in the batch).
func validateBatch(req *pb.ApplyBatchRequest) (items []*pb.ApplyBatchItem, valid []forwarded, at []int, err error) {
	if len(req.Commands) == 0 || len(req.Commands) > maxForwardBatch {
		return nil, nil, nil, invalid(fmt.Sprintf("a batch must hold between 1 and %d commands", maxForwardBatch))
	}
	items = make([]*pb.ApplyBatchItem, len(req.Commands))
	for i, c := range req.Commands {
		cmd, err := fsm.Decode(c)
		if err != nil {
			return nil, nil, nil, invalid(err.Error())
		}
		if err := checkForwarded(cmd); err != nil {
			st := status.Convert(err)
			items[i] = &pb.ApplyBatchItem{Code: int32(st.Code()), Message: st.Message()}
			continue
		}
		valid, at = append(valid, forwarded{raw: c, cmd: cmd}), append(at, i)
	}
	return items, valid, at, nil
}

// forwarded is a command a follower forwarded: as it came, and decoded.
type forwarded struct {
	raw []byte
	cmd *fsmpb.Command
}

func validateVolumeIDs(ids []uint32) error {
	if n := len(ids); n > MaxOracleIDs {
		return invalid(fmt.Sprintf("%d volume ids given; at most %d per call", n, MaxOracleIDs))
	}
	for _, id := range ids {
		if id == 0 {
			return invalid("volume id must be greater than 0")
		}
	}
	return nil
}

func validateServerNames(servers []string) error {
	if n := len(servers); n > MaxOracleIDs {
		return invalid(fmt.Sprintf("%d servers given; at most %d per call", n, MaxOracleIDs))
	}
	if err := checkServers(servers); err != nil {
		return err
	}
	for _, name := range servers {
		if strings.TrimSpace(name) == "" {
			return invalid("a server name is empty")
		}
	}
	return nil
}

func validateVolumeCapacity(req *pb.GetVolumeCapacityRequest) error {
	if len(req.VolumeIds) == 0 {
		return invalid("no volume ids given")
	}
	return firstErr(validateVolumeIDs(req.VolumeIds), validConsistency(req.Consistency))
}

func validateServerCapacity(req *pb.GetServerCapacityRequest) error {
	if len(req.Servers) == 0 {
		return invalid("no servers given")
	}
	return firstErr(validateServerNames(req.Servers), validConsistency(req.Consistency))
}

func validateWatch(req *pb.WatchCapacityRequest) error {
	if len(req.VolumeIds) == 0 && len(req.Servers) == 0 {
		return invalid("no volume ids or servers given")
	}
	return firstErr(validateVolumeIDs(req.VolumeIds), validateServerNames(req.Servers))
}
