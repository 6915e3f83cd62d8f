package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
)

// Sessions is what the worker service needs from the leader's scheduler.
type Sessions interface {
	Attach(ctx context.Context, h *pb.Hello) (*scheduler.Session, *pb.Welcome, error)
	// Dispatch hands over one received message (scheduler.Dispatch).
	Dispatch(ctx context.Context, s *scheduler.Session, m *pb.WorkerMessage) error
	Detach(s *scheduler.Session)
}

// WorkerServer serves worker sessions: the leader keeps them, a follower
// redirects the worker to the leader.
type WorkerServer struct {
	pb.UnimplementedWorkerServiceServer
	admin    *Server
	sessions Sessions
}

// NewWorkerServer wires the worker service of a node.
func NewWorkerServer(admin *Server, sessions Sessions) *WorkerServer {
	return &WorkerServer{admin: admin, sessions: sessions}
}

// Session runs one worker's stream.
func (w *WorkerServer) Session(stream pb.WorkerService_SessionServer) error {
	ctx := stream.Context()
	// A stream that never says hello would hold a connection slot forever.
	wait := w.admin.streams.HelloTimeout
	first, err := recvWithin(ctx, wait, stream.Recv,
		status.Errorf(codes.DeadlineExceeded, "a worker session must start with its hello within %s, and none came", wait))
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of a session must be hello")
	}
	if err := checkHello(hello); err != nil {
		return err
	}
	if err := w.checkWorkerIdentity(ctx, hello); err != nil {
		return err
	}
	sess, welcome, err := w.sessions.Attach(ctx, hello)
	if errors.Is(err, scheduler.ErrNotRunning) {
		id, _ := w.admin.raft.Leader()
		var addr string
		w.admin.fsm.Read(func(st *fsm.State) { addr, _ = st.AdminAddr(id) })
		if id == w.admin.raft.ID() {
			id, addr = "", ""
		}
		return stream.Send(&pb.AdminMessage{Body: &pb.AdminMessage_Redirect{Redirect: &pb.Redirect{LeaderId: id, LeaderGrpcAddr: addr}}})
	}
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	defer w.sessions.Detach(sess)
	if err := stream.Send(&pb.AdminMessage{Body: &pb.AdminMessage_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-sess.Done():
				sendErr <- status.Error(codes.Unavailable, "session closed by the leader")
				return
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			case m := <-sess.Out():
				if err := stream.Send(m); err != nil {
					sendErr <- err
					return
				}
			}
		}
	}()
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if err := checkWorkerMessage(m); err != nil {
				recvErr <- err
				return
			}
			if err := w.sessions.Dispatch(ctx, sess, m); err != nil {
				recvErr <- status.Error(codes.Unavailable, err.Error())
				return
			}
		}
	}()
	select {
	case err := <-sendErr:
		return err
	case err := <-recvErr:
		return err
	}
}
