package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// StopGRPC stops s gracefully, letting the calls in flight finish, and
// forcibly once that has taken longer than within.
func StopGRPC(s *grpc.Server, within time.Duration) {
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(within):
		s.Stop()
	}
}

// Raft is what the servers need from the local raft node.
type Raft interface {
	ID() string
	Apply(ctx context.Context, cmd []byte) (any, error)
	ApplyMany(ctx context.Context, cmds [][]byte) ([]any, []error)
	VerifyRead(ctx context.Context) error
	Leader() (id, raftAddr string)
	Status() cluster.Status
	Members() ([]cluster.Member, error)
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
	SaveSnapshot() (cluster.SnapshotMeta, io.ReadCloser, error)
	RestoreSnapshot(ctx context.Context, index, term uint64, data []byte) (uint64, error)
	StateIndex(fsmIndex uint64) uint64
}

// Server implements the Admin and Internal services of one admin node.
type Server struct {
	pb.UnimplementedAdminServer
	pb.UnimplementedInternalServer
	pb.UnimplementedCapacityOracleServer

	raft     Raft
	fsm      *fsm.FSM
	grpcAddr string
	logger   hclog.Logger
	now      func() time.Time

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn

	fwd       *forwarder
	volFwd    *volumeForwarder
	fwdCancel context.CancelFunc

	live LiveView

	// restores spools restore streams and lets one run at a time.
	restores restoreSpool
	// streams are the caps and deadlines on streams (SetStreamLimits);
	// watches counts the WatchCapacity streams held against its cap.
	streams StreamLimits
	watches slots
	// tls, when set, is the mutual-TLS material this node dials the other
	// admins with (forwarding); nil dials in plaintext.
	tls *certs.Source
	// insecure: plaintext beyond loopback (--insecure), shown by Status.
	insecure bool

	// topo is the master's topology for the capacity oracle (nil: no master).
	topo atomic.Pointer[topologyHolder]
	// watch wakes WatchCapacity streams (nil: watches are refused).
	watch atomic.Pointer[watchHolder]
	// srvIdx sums the master's replicas per server for the server
	// projections of GetServerCapacity and WatchCapacity.
	srvIdx serverIndexCache
}

// LiveView is leader-local knowledge that is not replicated: which workers
// are connected and how far running attempts have got between checkpoints.
type LiveView interface {
	Connected() map[string]bool
	LastHeard() map[string]time.Time
	Progress(task uint64) (progress float64, step string, ok bool)
	Status() (*pb.Maintenance, bool)
}

// SetTLS makes the connections this node opens to other admins
// (forwarding to the leader) use mutual TLS with src, accepting only admin
// certificates. Call it before serving.
func (s *Server) SetTLS(src *certs.Source) { s.tls = src }

// SetInsecure records that the node runs in plaintext on a non-loopback
// address (--insecure), for Status.
func (s *Server) SetInsecure(v bool) { s.insecure = v }

// SetLive lets reads served by the leader include live worker state.
func (s *Server) SetLive(l LiveView) { s.live = l }

// NewServer wires the services of a node whose client address is grpcAddr.
func NewServer(r Raft, f *fsm.FSM, grpcAddr string, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{raft: r, fsm: f, grpcAddr: grpcAddr, logger: logger, now: time.Now, conns: map[string]*grpc.ClientConn{},
		streams: DefaultStreamLimits()}
	s.fwd = newForwarder(s)
	s.volFwd = newVolumeForwarder(s)
	ctx, cancel := context.WithCancel(context.Background())
	s.fwdCancel = cancel
	go s.fwd.run(ctx)
	return s
}

// Register adds the Admin, Internal and CapacityOracle services to a gRPC
// server.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterAdminServer(g, s)
	pb.RegisterInternalServer(g, s)
	pb.RegisterCapacityOracleServer(g, s)
}

// Close drops the connections kept to other nodes.
func (s *Server) Close() {
	s.fwdCancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, c := range s.conns {
		c.Close()
		delete(s.conns, a)
	}
}

// conn returns a cached client connection to another admin node.
func (s *Server) conn(addr string) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, ClientCredentials(s.tls, certs.RoleAdmin), CallLimits())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	s.conns[addr] = c
	return c, nil
}

// leaderConn finds the leader's client address in the replicated state.
func (s *Server) leaderConn() (*grpc.ClientConn, error) {
	id, _ := s.raft.Leader()
	if id == "" {
		return nil, status.Error(codes.Unavailable, "no leader is known yet; retry shortly")
	}
	if id == s.raft.ID() {
		return nil, status.Error(codes.Unavailable, "this node is becoming leader; retry shortly")
	}
	var addr string
	var ok bool
	s.fsm.Read(func(st *fsm.State) { addr, ok = st.AdminAddr(id) })
	if !ok {
		return nil, status.Errorf(codes.Unavailable, "leader %s has not published its gRPC address yet; retry shortly", id)
	}
	return s.conn(addr)
}

// apply encodes cmd in the base command version, applies it on the leader
// (forwarding if this node is a follower) and returns the FSM result, or
// its refusal as an error.
func (s *Server) apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	return s.applyIn(ctx, fsm.CommandVersion, cmd)
}

// applyIn is apply with cmd encoded for a cluster whose members all apply
// command versions up to agreed (fsm.EncodeAgreed).
func (s *Server) applyIn(ctx context.Context, agreed uint32, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	b, err := fsm.EncodeAgreed(s.now().UnixNano(), agreed, cmd)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	res, err := s.applyBytes(ctx, b)
	if err != nil {
		return nil, err
	}
	if err := fsm.ResultError(res); err != nil {
		return res, toStatus(err)
	}
	return res, nil
}

// encodingVersion is the command version the leader writes in: what every
// member advertised, never below what is written already
// (fsm.EncodingVersion).
func (s *Server) encodingVersion() uint32 {
	if members, err := s.raft.Members(); err == nil {
		return s.fsm.EncodingVersion(cluster.MemberIDs(members))
	}
	w, _ := s.fsm.WrittenVersion()
	return min(w, s.fsm.MaxCommandVersion())
}

// applyAgreed is apply for a command whose newer form (command version 2:
// attempt history) is written only when every member applies it; called on
// the leader.
func (s *Server) applyAgreed(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	return s.applyIn(ctx, s.encodingVersion(), cmd)
}

func (s *Server) applyBytes(ctx context.Context, b []byte) (*fsmpb.ApplyResult, error) {
	out, err := s.raft.Apply(ctx, b)
	if err == nil {
		res, ok := out.(*fsmpb.ApplyResult)
		if !ok {
			return nil, status.Errorf(codes.Internal, "unexpected apply result %T", out)
		}
		return res, nil
	}
	if !errors.Is(err, cluster.ErrNotLeader) {
		return nil, toStatus(err)
	}
	return s.fwd.forward(ctx, b)
}

// forwardErr rewords a failure to reach the leader so the caller sees a
// retryable "leader unreachable" rather than a connection error of its own.
func (s *Server) forwardErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return err
	}
	id, _ := s.raft.Leader()
	return status.Errorf(codes.Unavailable, "forwarding to leader %s failed (%s); retry shortly", id, st.Message())
}

// readLocal decides whether a read may be served here. For a linearizable
// read on a follower it returns forward=true and the caller forwards the call.
func (s *Server) readLocal(ctx context.Context, c pb.Consistency) (forward bool, err error) {
	switch c {
	case pb.Consistency_CONSISTENCY_STALE:
		return false, nil
	case pb.Consistency_CONSISTENCY_UNSPECIFIED, pb.Consistency_CONSISTENCY_LINEARIZABLE:
	default:
		return false, invalid(fmt.Sprintf("unknown consistency %d (want STALE or LINEARIZABLE)", int32(c)))
	}
	err = s.raft.VerifyRead(ctx)
	if err == nil {
		return false, nil
	}
	var nl *cluster.NotLeaderError
	if errors.As(err, &nl) {
		return true, nil
	}
	return false, toStatus(err)
}

// viaLeader serves a read on the leader when its consistency requires it:
// it reports forwarded=true with the leader's answer, or forwarded=false
// when this node may answer itself.
func viaLeader[T any](s *Server, ctx context.Context, c pb.Consistency, call func(*grpc.ClientConn) (T, error)) (resp T, forwarded bool, err error) {
	forward, err := s.readLocal(ctx, c)
	if err != nil || !forward {
		return resp, false, err
	}
	conn, err := s.leaderConn()
	if err != nil {
		return resp, true, err
	}
	resp, err = call(conn)
	return resp, true, s.forwardErr(err)
}

// PublishAddress keeps this node's client address, and the highest command
// version its build applies, in the replicated state, so followers can
// forward to it once it leads and the leader knows which command versions
// every voter applies. It returns when ctx ends.
func (s *Server) PublishAddress(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	version := s.fsm.MaxCommandVersion()
	for {
		var cur string
		var curVersion uint32
		s.fsm.Read(func(st *fsm.State) {
			cur, _ = st.AdminAddr(s.raft.ID())
			curVersion, _ = st.AdminVersion(s.raft.ID())
		})
		if cur != s.grpcAddr || curVersion != version {
			if id, _ := s.raft.Leader(); id != "" {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := s.apply(cctx, fsm.SetAdminAddrCmd(s.raft.ID(), s.grpcAddr, version))
				cancel()
				if err != nil {
					s.logger.Debug("publish gRPC address", "error", err)
				} else {
					s.logger.Info("published gRPC address", "addr", s.grpcAddr, "max_command_version", version)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stateIndex is the index the local state is at as raft counts it
// (Raft.StateIndex); a server without raft (the oracle's tests) answers
// the FSM's.
func (s *Server) stateIndex(fsmIndex uint64) uint64 {
	if s.raft == nil {
		return fsmIndex
	}
	return s.raft.StateIndex(fsmIndex)
}
