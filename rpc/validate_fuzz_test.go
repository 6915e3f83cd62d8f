package rpc

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// The fuzz targets of the handlers' request checks (validate.go, limits.go):
// whatever bytes a client sends, once they decode as the method's request
// the check does not panic and answers nil or InvalidArgument in one short
// sentence. The seeds are real valid requests, which must pass
// (TestValidRequestsPass).

// maxRefusalLen bounds a refusal's message: none may echo a client's
// input at any length.
const maxRefusalLen = 1024

// wantRefusal fails unless err is nil or an InvalidArgument status with a
// non-empty one-line message of at most maxRefusalLen bytes.
func wantRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("%s: refused with %v, want an InvalidArgument status", what, err)
	}
	msg := st.Message()
	if msg == "" || strings.ContainsAny(msg, "\r\n") || len(msg) > maxRefusalLen || !utf8.ValidString(msg) {
		t.Fatalf("%s: refusal message %q is not one short line", what, msg)
	}
}

// requestCheck is one method's request and its check.
type requestCheck struct {
	name  string
	new   func() proto.Message
	check func(*testing.T, proto.Message) error
	valid []proto.Message // real requests the check accepts
}

func encodeCmd(t testing.TB, cmd *fsmpb.Command) []byte {
	b, err := fsm.Encode(1_700_000_000_000_000_000, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// adminChecks are the Admin and Internal services' checks, with the
// first message of a restore stream.
func adminChecks(t testing.TB) []requestCheck {
	vacuum := fsmpb.TaskType_TASK_TYPE_VACUUM
	return []requestCheck{
		{"SubmitTask", func() proto.Message { return &pb.SubmitTaskRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateSubmit(m.(*pb.SubmitTaskRequest)) },
			[]proto.Message{
				&pb.SubmitTaskRequest{Type: vacuum, VolumeId: 7},
				&pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 9, Collection: "pictures", Source: "10.0.0.1:8080", Target: "10.0.0.2:8080",
					Params: []*fsmpb.Param{{Key: "garbage_threshold", Value: "0.3"}, {Key: "disk", Value: "hdd"}}, Priority: 5},
			}},
		{"ListTasks", func() proto.Message { return &pb.ListTasksRequest{} },
			func(t *testing.T, m proto.Message) error {
				req := m.(*pb.ListTasksRequest)
				size, _, err := validateListTasks(req)
				if err == nil && (size < 1 || size > MaxTaskPageSize) && !(req.PageSize == 0 && size == math.MaxInt) {
					t.Fatalf("ListTasks: page size %d accepted as %d", req.PageSize, size)
				}
				return err
			},
			[]proto.Message{
				&pb.ListTasksRequest{},
				&pb.ListTasksRequest{PageSize: DefaultTaskPageSize, PageToken: pageToken(500), VolumeId: 7,
					States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_FAILED}, Consistency: pb.Consistency_CONSISTENCY_STALE},
			}},
		{"GetTask", func() proto.Message { return &pb.GetTaskRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateGetTask(m.(*pb.GetTaskRequest)) },
			[]proto.Message{&pb.GetTaskRequest{Id: 3, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE}}},
		{"ListWorkers", func() proto.Message { return &pb.ListWorkersRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateListWorkers(m.(*pb.ListWorkersRequest)) },
			[]proto.Message{&pb.ListWorkersRequest{Consistency: pb.Consistency_CONSISTENCY_STALE}}},
		{"CancelTask", func() proto.Message { return &pb.CancelTaskRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateCancel(m.(*pb.CancelTaskRequest)) },
			[]proto.Message{&pb.CancelTaskRequest{Id: 3, Reason: "the volume is being moved by hand"}}},
		{"RetryTask", func() proto.Message { return &pb.RetryTaskRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateRetry(m.(*pb.RetryTaskRequest)) },
			[]proto.Message{&pb.RetryTaskRequest{Id: 3}}},
		{"AddPeer", func() proto.Message { return &pb.AddPeerRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateAddPeer(m.(*pb.AddPeerRequest)) },
			[]proto.Message{&pb.AddPeerRequest{Id: "a4", RaftAddr: "127.0.0.1:7004"}, &pb.AddPeerRequest{Id: "admin-4.example", RaftAddr: "[::1]:7004"}}},
		{"RemovePeer", func() proto.Message { return &pb.RemovePeerRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateRemovePeer(m.(*pb.RemovePeerRequest)) },
			[]proto.Message{&pb.RemovePeerRequest{Id: "a4"}}},
		{"GetPolicy", func() proto.Message { return &pb.GetPolicyRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateGetPolicy(m.(*pb.GetPolicyRequest)) },
			[]proto.Message{&pb.GetPolicyRequest{Consistency: pb.Consistency_CONSISTENCY_STALE}}},
		{"SetPolicy", func() proto.Message { return &pb.SetPolicyRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateSetPolicy(m.(*pb.SetPolicyRequest)) },
			[]proto.Message{
				&pb.SetPolicyRequest{Policy: &fsmpb.Policy{}},
				&pb.SetPolicyRequest{ExpectedRevision: 4, Policy: &fsmpb.Policy{Paused: true, PauseReason: "disk swap on rack 3",
					Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}, {Type: vacuum}}}},
			}},
		{"Pause", func() proto.Message { return &pb.PauseRequest{} },
			func(_ *testing.T, m proto.Message) error { return validatePause(m.(*pb.PauseRequest)) },
			[]proto.Message{&pb.PauseRequest{}, &pb.PauseRequest{Reason: "incident 4711: master failover"}}},
		{"RestoreSnapshot header", func() proto.Message { return &pb.SnapshotChunk{} },
			func(_ *testing.T, m proto.Message) error {
				_, err := validateRestoreHeader(m.(*pb.SnapshotChunk))
				return err
			},
			[]proto.Message{hdrChunk(&pb.SnapshotHeader{FormatVersion: SnapshotFormatVersion, Index: 41, Term: 2, Size: 4096, Sha256: sum([]byte("x")), NodeId: "a1"})}},
		{"ApplyBatch", func() proto.Message { return &pb.ApplyBatchRequest{} },
			func(t *testing.T, m proto.Message) error {
				req := m.(*pb.ApplyBatchRequest)
				items, valid, at, err := validateBatch(req)
				if err != nil {
					return err
				}
				refused := 0
				for i, it := range items {
					if it != nil {
						refused++
						wantRefusal(t, "ApplyBatch item", status.Error(codes.Code(it.Code), it.Message))
						if it.Code == int32(codes.OK) {
							t.Fatalf("ApplyBatch: command %d refused with code OK", i)
						}
					}
				}
				if refused+len(valid) != len(req.Commands) || len(at) != len(valid) {
					t.Fatalf("ApplyBatch: %d commands became %d refused and %d valid (%d positions)", len(req.Commands), refused, len(valid), len(at))
				}
				return nil
			},
			[]proto.Message{&pb.ApplyBatchRequest{Commands: [][]byte{
				encodeCmd(t, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 7, Collection: "pictures", Origin: "manual"})),
				encodeCmd(t, fsm.RequestCancelCmd(3, "by hand")),
				encodeCmd(t, fsm.SetAdminAddrCmd("a2", "10.0.0.2:7100", fsm.CommandVersion)),
			}}}},
	}
}

// workerChecks: every message of a worker's session.
func workerChecks(testing.TB) []requestCheck {
	running := []*pb.RunningTask{{TaskId: 4, Fence: 9, Step: "copy", Progress: 0.5}}
	return []requestCheck{{"WorkerMessage", func() proto.Message { return &pb.WorkerMessage{} },
		func(t *testing.T, m proto.Message) error {
			wm := m.(*pb.WorkerMessage)
			err := checkWorkerMessage(wm)
			if err == nil && (len(wm.GetFailed().GetError()) > MaxErrorLen || len(wm.GetReleased().GetError()) > MaxErrorLen) {
				t.Fatalf("a worker's error text of more than %d bytes was kept", MaxErrorLen)
			}
			return err
		},
		[]proto.Message{
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w1", MaxConcurrent: 2, Version: "v1.2.3",
				Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING}, Running: running}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{Running: running}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: 4, Fence: 9}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Progress{Progress: &pb.TaskProgress{TaskId: 4, Fence: 9, Progress: 0.7, Step: "copy", Checkpoint: true}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 4, Fence: 9, Change: &fsmpb.CapacityChange{
				TaskId: 4, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 7, Collection: "pictures", OldSize: 100, NewSize: 140,
				Source: "10.0.0.1:8080", Shards: []*fsmpb.ShardPlacement{{ShardId: 0, Server: "10.0.0.2:8080"}, {ShardId: 1, Server: "10.0.0.3:8080"}}}}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 4, Fence: 9, Error: "volume 7 is read-only", Step: "copy", Retryable: true}}},
			&pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 4, Fence: 9, RolledBack: true, Error: "interrupted"}}},
		}}}
}

// oracleChecks: the CapacityOracle service's requests.
func oracleChecks(testing.TB) []requestCheck {
	return []requestCheck{
		{"GetVolumeCapacity", func() proto.Message { return &pb.GetVolumeCapacityRequest{} },
			func(_ *testing.T, m proto.Message) error {
				return validateVolumeCapacity(m.(*pb.GetVolumeCapacityRequest))
			},
			[]proto.Message{&pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7, 8, 7}, Consistency: pb.Consistency_CONSISTENCY_STALE}}},
		{"GetServerCapacity", func() proto.Message { return &pb.GetServerCapacityRequest{} },
			func(_ *testing.T, m proto.Message) error {
				return validateServerCapacity(m.(*pb.GetServerCapacityRequest))
			},
			[]proto.Message{&pb.GetServerCapacityRequest{Servers: []string{"10.0.0.1:8080", "volume-2.example:8080"}}}},
		{"WatchCapacity", func() proto.Message { return &pb.WatchCapacityRequest{} },
			func(_ *testing.T, m proto.Message) error { return validateWatch(m.(*pb.WatchCapacityRequest)) },
			[]proto.Message{
				&pb.WatchCapacityRequest{VolumeIds: []uint32{7}},
				&pb.WatchCapacityRequest{VolumeIds: []uint32{7, 8}, Servers: []string{"10.0.0.1:8080"}},
			}},
	}
}

// fuzzChecks seeds f with every valid request of checks (and an empty and
// a garbage message for each), then fuzzes them: the first byte picks the
// method, the rest is its request's wire form.
func fuzzChecks(f *testing.F, checks []requestCheck) {
	for i, c := range checks {
		for _, m := range c.valid {
			b, err := proto.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0x0a, 0x03, 'a', '\n', 'b', 0x10, 0x00})
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := checks[int(which)%len(checks)]
		m := c.new()
		if proto.Unmarshal(data, m) != nil {
			return // refused by gRPC before any handler sees it
		}
		wantRefusal(t, c.name, c.check(t, m))
	})
}

func FuzzAdminRequests(f *testing.F)  { fuzzChecks(f, adminChecks(f)) }
func FuzzWorkerMessages(f *testing.F) { fuzzChecks(f, workerChecks(f)) }
func FuzzOracleRequests(f *testing.F) { fuzzChecks(f, oracleChecks(f)) }

// FuzzPageToken: a ListTasks page token is accepted only in the one form
// an answer gives (pageToken of the id it follows), and the page size
// is always within 1..MaxTaskPageSize, or everything when 0.
func FuzzPageToken(f *testing.F) {
	f.Add("", uint32(0))
	f.Add(pageToken(1), uint32(DefaultTaskPageSize))
	f.Add(pageToken(math.MaxUint64), uint32(MaxTaskPageSize+1))
	f.Add("t1.007", uint32(1))
	f.Add("t1.-1", uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, token string, size uint32) {
		got, after, err := taskPage(&pb.ListTasksRequest{PageToken: token, PageSize: size})
		wantRefusal(t, "page token", err)
		if err != nil {
			return
		}
		if token != "" && pageToken(after) != token {
			t.Fatalf("page token %q accepted as the one after task %d, whose token is %q", token, after, pageToken(after))
		}
		if token == "" && after != 0 {
			t.Fatalf("no page token, yet the page starts after task %d", after)
		}
		if want := min(int(size), MaxTaskPageSize); size != 0 && got != want || size == 0 && got != math.MaxInt {
			t.Fatalf("page size %d taken as %d", size, got)
		}
	})
}

// TestValidRequestsPass: the seeds of the fuzz targets, real requests, pass
// their checks.
func TestValidRequestsPass(t *testing.T) {
	for _, checks := range [][]requestCheck{adminChecks(t), workerChecks(t), oracleChecks(t)} {
		for _, c := range checks {
			for _, m := range c.valid {
				if err := c.check(t, proto.Clone(m)); err != nil {
					t.Errorf("%s: a valid request %v was refused: %v", c.name, m, err)
				}
			}
		}
	}
}
