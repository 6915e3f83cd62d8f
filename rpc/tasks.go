package rpc

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// CancelTask cancels a task. A pending one is cancelled at once; an assigned
// or running one is marked, and the leader's scheduler stops its attempt (the
// worker rolls back) before the cancel is committed, so its volume is never
// free while a worker still touches it. The response holds the task as the
// request left it; callers poll it until it is terminal.
func (s *Server) CancelTask(ctx context.Context, req *pb.CancelTaskRequest) (*pb.CancelTaskResponse, error) {
	if err := validateCancel(req); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, fsm.RequestCancelCmd(req.Id, req.Reason))
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			// The state machine says which terminal state the task is in.
			return nil, status.Errorf(codes.FailedPrecondition, "%s; only a pending, assigned or running task can be cancelled", status.Convert(err).Message())
		}
		return nil, err
	}
	return &pb.CancelTaskResponse{Task: res.Task}, nil
}

// RetryTask submits a new task with the type, volume, servers, parameters
// and priority of a failed or cancelled one. Like any operator submission it
// ignores the detector's failure cooldown; if the volume already has an
// active task of that type, that task is returned (existing).
func (s *Server) RetryTask(ctx context.Context, req *pb.RetryTaskRequest) (*pb.RetryTaskResponse, error) {
	if err := validateRetry(req); err != nil {
		return nil, err
	}
	// The leader's state: a lagging follower might not know the task yet.
	if resp, forwarded, err := viaLeader(s, ctx, pb.Consistency_CONSISTENCY_LINEARIZABLE, func(c *grpc.ClientConn) (*pb.RetryTaskResponse, error) {
		return pb.NewAdminClient(c).RetryTask(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	var old *fsmpb.Task
	var ok bool
	s.fsm.Read(func(st *fsm.State) { old, ok = st.Task(req.Id) })
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %d not found", req.Id)
	}
	switch old.State {
	case fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED:
	case fsmpb.TaskState_TASK_STATE_COMPLETED:
		return nil, status.Errorf(codes.FailedPrecondition, "task %d completed, so there is nothing to retry; only a failed or cancelled task can be retried", req.Id)
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "task %d is still %s; only a failed or cancelled task can be retried", req.Id, fsm.StateName(old.State))
	}
	// A terminal task never changes again, so what was read stays true. The
	// new task inherits the old one's history (every attempt's servers and
	// moves), so that it recognises what they left (a partial copy, a
	// complete EC generation): written as command version 2, only once
	// every voter applies that (fsm.EncodeAgreed drops it otherwise).
	servers := append(slices.Clone(old.EarlierServers), old.AttemptServers...)
	moves := append(slices.Clone(old.EarlierMoves), old.AttemptMove)
	if n := len(servers); n > fsm.MaxEarlierServers {
		servers = servers[n-fsm.MaxEarlierServers:]
	}
	moves = slices.DeleteFunc(moves, func(m *fsmpb.Move) bool { return m == nil })
	if n := len(moves); n > fsm.MaxEarlierMoves {
		moves = moves[n-fsm.MaxEarlierMoves:]
	}
	if (len(servers) > 0 || len(moves) > 0) && s.encodingVersion() < fsm.HistoryVersion {
		return nil, status.Errorf(codes.FailedPrecondition, "task %d's attempt history (the servers its attempts used) can be written only once every member applies command version %d; the new task would not know where they left shards or copies: retry once every member runs this build", req.Id, fsm.HistoryVersion)
	}
	res, err := s.applyAgreed(ctx, fsm.SubmitCmd(&fsmpb.SubmitTask{
		Type: old.Type, VolumeId: old.VolumeId, Collection: old.Collection, Source: old.Source,
		Target: old.Target, Params: old.Params, Priority: old.Priority, Origin: fsm.RetryOrigin(old.Id),
		EarlierServers: servers, EarlierMoves: moves,
	}))
	if err != nil {
		return nil, err
	}
	return &pb.RetryTaskResponse{Task: res.Task, Existing: res.Existing, RetryOf: old.Id}, nil
}
