package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
)

// helloStream is a worker session stream that delivers msgs, then ends.
type helloStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*pb.WorkerMessage
	sent []*pb.AdminMessage
}

func (h *helloStream) Context() context.Context { return h.ctx }
func (h *helloStream) Send(m *pb.AdminMessage) error {
	h.sent = append(h.sent, m)
	return nil
}
func (h *helloStream) Recv() (*pb.WorkerMessage, error) {
	if len(h.msgs) == 0 {
		return nil, io.EOF
	}
	m := h.msgs[0]
	h.msgs = h.msgs[1:]
	return m, nil
}

// noSessions fails the test if a session gets as far as the scheduler.
type noSessions struct{ t *testing.T }

func (n noSessions) Attach(context.Context, *pb.Hello) (*scheduler.Session, *pb.Welcome, error) {
	n.t.Error("a hello over the limits reached the scheduler")
	return nil, nil, errors.New("refused")
}
func (n noSessions) Dispatch(context.Context, *scheduler.Session, *pb.WorkerMessage) error {
	return nil
}
func (n noSessions) Detach(*scheduler.Session) {}

// applyBatch hands cmd to s's Internal ApplyBatch as a follower would.
func applyBatch(s *Server, cmd *fsmpb.Command) error {
	b, err := fsm.Encode(1, cmd)
	if err != nil {
		return err
	}
	resp, err := s.ApplyBatch(context.Background(), &pb.ApplyBatchRequest{Commands: [][]byte{b}})
	if err != nil {
		return err
	}
	// A command over a limit is refused in its own item, not the call.
	if len(resp.Items) != 1 {
		return fmt.Errorf("%d items for one command", len(resp.Items))
	}
	return status.Error(codes.Code(resp.Items[0].Code), resp.Items[0].Message)
}

// TestStringLimits: every handler that takes a client's string refuses one
// over its limit with InvalidArgument, in one sentence naming the field
// and the limit, before anything is proposed (the server here has no raft:
// getting past the check would panic).
func TestStringLimits(t *testing.T) {
	s := NewServer(nil, fsm.New(), "", nil)
	defer s.Close()
	ws := NewWorkerServer(s, noSessions{t})
	long := func(n int) string { return strings.Repeat("x", n+1) }
	vacuum := fsmpb.TaskType_TASK_TYPE_VACUUM
	ctx := context.Background()
	params := func(n int) []*fsmpb.Param {
		out := make([]*fsmpb.Param, n)
		for i := range out {
			out[i] = &fsmpb.Param{Key: fmt.Sprintf("k%d", i), Value: "v"}
		}
		return out
	}
	worker := func(m *pb.WorkerMessage) error {
		return ws.Session(&helloStream{ctx: ctx, msgs: []*pb.WorkerMessage{m}})
	}
	for _, tc := range []struct {
		name, field string
		limit       int
		call        func() error
	}{
		{"submit collection", "collection", MaxCollectionLen, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Collection: long(MaxCollectionLen)})
			return err
		}},
		{"submit source", "source", MaxAddrLen, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Source: long(MaxAddrLen)})
			return err
		}},
		{"submit target", "target", MaxAddrLen, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Target: long(MaxAddrLen)})
			return err
		}},
		{"submit param count", "params", MaxParams, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Params: params(MaxParams + 1)})
			return err
		}},
		{"submit param key", "parameter key", MaxParamKeyLen, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Params: []*fsmpb.Param{{Key: long(MaxParamKeyLen)}}})
			return err
		}},
		{"submit param value", "parameter value", MaxParamValueLen, func() error {
			_, err := s.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuum, VolumeId: 1, Params: []*fsmpb.Param{{Key: "k", Value: long(MaxParamValueLen)}}})
			return err
		}},
		{"cancel reason", "reason", MaxReasonLen, func() error {
			_, err := s.CancelTask(ctx, &pb.CancelTaskRequest{Id: 1, Reason: long(MaxReasonLen)})
			return err
		}},
		{"peers add id", "node id", MaxIDLen, func() error {
			_, err := s.AddPeer(ctx, &pb.AddPeerRequest{Id: long(MaxIDLen), RaftAddr: "127.0.0.1:1"})
			return err
		}},
		{"peers add address", "raft address", MaxAddrLen, func() error {
			_, err := s.AddPeer(ctx, &pb.AddPeerRequest{Id: "a9", RaftAddr: long(MaxAddrLen)})
			return err
		}},
		{"peers remove id", "node id", MaxIDLen, func() error {
			_, err := s.RemovePeer(ctx, &pb.RemovePeerRequest{Id: long(MaxIDLen)})
			return err
		}},
		{"oracle server", "server name", MaxAddrLen, func() error {
			_, err := s.GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: []string{long(MaxAddrLen)}})
			return err
		}},
		{"watch server", "server name", MaxAddrLen, func() error {
			return s.WatchCapacity(&pb.WatchCapacityRequest{Servers: []string{long(MaxAddrLen)}}, nil)
		}},
		{"forwarded admin id", "admin id", MaxIDLen, func() error {
			return applyBatch(s, fsm.SetAdminAddrCmd(long(MaxIDLen), "127.0.0.1:1", 1))
		}},
		{"forwarded admin address", "admin address", MaxAddrLen, func() error {
			return applyBatch(s, fsm.SetAdminAddrCmd("a1", long(MaxAddrLen), 1))
		}},
		{"forwarded collection", "collection", MaxCollectionLen, func() error {
			return applyBatch(s, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Collection: long(MaxCollectionLen)}))
		}},
		{"forwarded reason", "reason", MaxReasonLen, func() error {
			return applyBatch(s, fsm.RequestCancelCmd(1, long(MaxReasonLen)))
		}},
		{"hello worker id", "worker id", MaxIDLen, func() error {
			return worker(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: long(MaxIDLen), MaxConcurrent: 1}}})
		}},
		{"hello version", "version", MaxVersionLen, func() error {
			return worker(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w", MaxConcurrent: 1, Version: long(MaxVersionLen)}}})
		}},
		{"hello running step", "step", MaxStepLen, func() error {
			return worker(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w", MaxConcurrent: 1,
				Running: []*pb.RunningTask{{TaskId: 1, Fence: 1, Step: long(MaxStepLen)}}}}})
		}},
		// After the hello, the session checks each message as the
		// handler does through checkWorkerMessage.
		{"heartbeat step", "step", MaxStepLen, func() error {
			return checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{Running: []*pb.RunningTask{{Step: long(MaxStepLen)}}}}})
		}},
		{"progress step", "step", MaxStepLen, func() error {
			return checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Progress{Progress: &pb.TaskProgress{TaskId: 1, Step: long(MaxStepLen)}}})
		}},
		{"failed step", "step", MaxStepLen, func() error {
			return checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Step: long(MaxStepLen)}}})
		}},
		{"completed collection", "collection", MaxCollectionLen, func() error {
			return checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1,
				Change: &fsmpb.CapacityChange{Collection: long(MaxCollectionLen)}}}})
		}},
		{"completed shard server", "server", MaxAddrLen, func() error {
			return checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1,
				Change: &fsmpb.CapacityChange{Shards: []*fsmpb.ShardPlacement{{ShardId: 1, Server: long(MaxAddrLen)}}}}}})
		}},
	} {
		err := tc.call()
		wantCode(t, tc.name, err, codes.InvalidArgument)
		wantMessage(t, tc.name, err, tc.field, fmt.Sprint(tc.limit))
	}

	// At the limit, the checks pass.
	at := func(n int) string { return strings.Repeat("x", n) }
	for name, err := range map[string]error{
		"submit":    checkSubmit(&pb.SubmitTaskRequest{Collection: at(MaxCollectionLen), Source: at(MaxAddrLen), Target: at(MaxAddrLen), Params: []*fsmpb.Param{{Key: at(MaxParamKeyLen), Value: at(MaxParamValueLen)}}}),
		"hello":     checkHello(&pb.Hello{WorkerId: at(MaxIDLen), Version: at(MaxVersionLen), Running: []*pb.RunningTask{{Step: at(MaxStepLen)}}}),
		"failed":    checkWorkerMessage(&pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{Error: at(MaxErrorLen), Step: at(MaxStepLen)}}}),
		"servers":   checkServers([]string{at(MaxAddrLen)}),
		"not utf-8": checkLen("collection", "\xff", MaxCollectionLen),
	} {
		if (err != nil) != (name == "not utf-8") {
			t.Errorf("%s at the limits: %v", name, err)
		}
	}
}
