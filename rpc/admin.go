package rpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// memberProbeTimeout bounds how long Status waits for each other member.
const memberProbeTimeout = 700 * time.Millisecond

// Member states Status gives besides raft's own (leader, follower, ...).
const (
	// MemberUnreachable: the member did not answer at its published address.
	MemberUnreachable = "unreachable"
	// MemberAddressUnknown: the member has not published its gRPC address
	// yet (it does so once it joins a quorum), so it could not be asked; it
	// may well be healthy.
	MemberAddressUnknown = "address unknown yet"
	// MemberHalted prefixes the state of a node whose FSM stopped at a
	// command (or snapshot) its build does not know, followed by why.
	MemberHalted = "halted: "
)

// Status reports the cluster as this node sees it; unless local_only, it asks
// every member for its own state and marks those that do not answer
// unreachable, and those it cannot ask because their address is not
// published yet MemberAddressUnknown.
func (s *Server) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	st := s.raft.Status()
	resp := &pb.StatusResponse{
		NodeId:         st.ID,
		State:          st.State,
		LeaderId:       st.LeaderID,
		LeaderRaftAddr: st.LeaderAddr,
		Term:           st.Term,
		CommitIndex:    st.CommitIndex,
		AppliedIndex:   st.AppliedIndex,
		LastLogIndex:   st.LastLogIndex,
		Tls:            s.tls != nil,
		Insecure:       s.insecure,
	}
	if err := s.fsm.Halted(); err != nil {
		// Until the process exits (at once, in the admin command): the
		// node takes no entry past the halt and says why.
		resp.State = MemberHalted + err.Error()
	}
	fsmIndex, hash := s.fsm.HashAt()
	resp.StateIndex, resp.StateHash = s.raft.StateIndex(fsmIndex), hash
	addrs := map[string]string{}
	members, err := s.raft.Members()
	if err != nil {
		return nil, toStatus(err)
	}
	var advertised map[string]uint32
	s.fsm.Read(func(f *fsm.State) {
		for _, m := range members {
			addrs[m.ID], _ = f.AdminAddr(m.ID)
		}
		advertised = f.AdminVersions()
		resp.TestCommandIndex = f.TestCommandIndex()
		resp.Policy = f.Policy()
	})
	resp.CommandVersion = fsm.AgreedVersion(cluster.MemberIDs(members), advertised)
	resp.LeaderGrpcAddr = addrs[st.LeaderID]
	resp.Members = make([]*pb.Member, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		pm := &pb.Member{Id: m.ID, RaftAddr: m.RaftAddr, GrpcAddr: addrs[m.ID], Suffrage: m.Suffrage, State: MemberUnreachable,
			MaxCommandVersion: advertised[m.ID]}
		resp.Members[i] = pm
		if m.ID == st.ID {
			pm.State, pm.AppliedIndex, pm.Term = resp.State, st.AppliedIndex, st.Term
			continue
		}
		if req.LocalOnly {
			continue
		}
		if pm.GrpcAddr == "" {
			pm.State = MemberAddressUnknown
			continue
		}
		wg.Add(1)
		go func(pm *pb.Member) {
			defer wg.Done()
			c, err := s.conn(pm.GrpcAddr)
			if err != nil {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
			defer cancel()
			other, err := pb.NewAdminClient(c).Status(pctx, &pb.StatusRequest{LocalOnly: true})
			if err != nil || other.NodeId != pm.Id {
				return
			}
			pm.State, pm.AppliedIndex, pm.Term = other.State, other.AppliedIndex, other.Term
		}(pm)
	}
	wg.Wait()
	resp.Maintenance = s.maintenance(ctx, req.LocalOnly)
	return resp, nil
}

// maintenance is the leader's scheduler view: local on the leader, asked of
// the leader otherwise.
func (s *Server) maintenance(ctx context.Context, localOnly bool) *pb.Maintenance {
	if s.live != nil {
		if m, ok := s.live.Status(); ok {
			return m
		}
	}
	if localOnly {
		return nil
	}
	c, err := s.leaderConn()
	if err != nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
	defer cancel()
	st, err := pb.NewAdminClient(c).Status(pctx, &pb.StatusRequest{LocalOnly: true})
	if err != nil {
		return nil
	}
	return st.Maintenance
}

// SubmitTask creates a manual task, or returns the active one of the same
// type for the same volume.
func (s *Server) SubmitTask(ctx context.Context, req *pb.SubmitTaskRequest) (*pb.SubmitTaskResponse, error) {
	if err := validateSubmit(req); err != nil {
		return nil, err
	}
	if err := s.refuseCloudTiered(req.VolumeId); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, fsm.SubmitCmd(&fsmpb.SubmitTask{
		Type: req.Type, VolumeId: req.VolumeId, Collection: req.Collection, Source: req.Source,
		Target: req.Target, Params: req.Params, Priority: req.Priority, Origin: "manual",
	}))
	if err != nil {
		return nil, err
	}
	return &pb.SubmitTaskResponse{Task: res.Task, Existing: res.Existing, Index: res.Index}, nil
}

// refuseCloudTiered refuses a submit for a volume the master's last
// topology (as this admin has it) lists as cloud-tiered, with the reason a
// plan would give. Without a topology, or with the volume not listed, the
// plan decides (placement.CloudTiered refuses it there too).
func (s *Server) refuseCloudTiered(vid uint32) error {
	h := s.topo.Load()
	if h == nil {
		return nil
	}
	t, _ := h.src.Latest()
	if t == nil {
		return nil
	}
	v, ok := t.Volumes[vid]
	if !ok {
		return nil
	}
	var pe *placement.PlanError
	if err := placement.CloudTiered(v); errors.As(err, &pe) {
		return status.Error(codes.FailedPrecondition, pe.Reason)
	}
	return nil
}

// ListTasks lists a page of tasks in id order, optionally filtered by state
// and volume (see pb.ListTasksRequest for paging).
func (s *Server) ListTasks(ctx context.Context, req *pb.ListTasksRequest) (*pb.ListTasksResponse, error) {
	size, after, err := validateListTasks(req)
	if err != nil {
		return nil, err
	}
	if resp, forwarded, err := viaLeader(s, ctx, req.Consistency, func(c *grpc.ClientConn) (*pb.ListTasksResponse, error) {
		return pb.NewAdminClient(c).ListTasks(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	resp := &pb.ListTasksResponse{}
	s.fsm.Read(func(st *fsm.State) {
		resp.Tasks, resp.NextPageToken = pageOf(st.Tasks(fsm.TaskFilter{States: req.States, VolumeID: req.VolumeId, Types: req.Types}), size, after)
		resp.AppliedIndex = st.AppliedIndex()
	})
	// The state's index as raft counts it (its no-op and barrier entries too).
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	for i, t := range resp.Tasks {
		resp.Tasks[i] = s.withLiveProgress(t)
	}
	return resp, nil
}

// withLiveProgress overlays the leader's live progress on a running task
// (a copy: stored tasks are immutable).
func (s *Server) withLiveProgress(t *fsmpb.Task) *fsmpb.Task {
	if s.live == nil || t.State != fsmpb.TaskState_TASK_STATE_RUNNING {
		return t
	}
	p, step, ok := s.live.Progress(t.Id)
	if !ok || (p == t.Progress && step == t.Step) || step == "" {
		return t
	}
	c := proto.Clone(t).(*fsmpb.Task)
	c.Progress, c.Step = p, step
	return c
}

// GetTask returns one task by id.
func (s *Server) GetTask(ctx context.Context, req *pb.GetTaskRequest) (*pb.GetTaskResponse, error) {
	if err := validateGetTask(req); err != nil {
		return nil, err
	}
	if resp, forwarded, err := viaLeader(s, ctx, req.Consistency, func(c *grpc.ClientConn) (*pb.GetTaskResponse, error) {
		return pb.NewAdminClient(c).GetTask(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	resp := &pb.GetTaskResponse{}
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		resp.Task, ok = st.Task(req.Id)
		resp.AppliedIndex = st.AppliedIndex()
	})
	// The state's index as raft counts it (its no-op and barrier entries too).
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "task %d not found (finished tasks are forgotten after the admins' --task-retention)", req.Id)
	}
	resp.Task = s.withLiveProgress(resp.Task)
	return resp, nil
}

// ListWorkers lists registered workers.
func (s *Server) ListWorkers(ctx context.Context, req *pb.ListWorkersRequest) (*pb.ListWorkersResponse, error) {
	if err := validateListWorkers(req); err != nil {
		return nil, err
	}
	if resp, forwarded, err := viaLeader(s, ctx, req.Consistency, func(c *grpc.ClientConn) (*pb.ListWorkersResponse, error) {
		return pb.NewAdminClient(c).ListWorkers(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	resp := &pb.ListWorkersResponse{}
	var connected map[string]bool
	var heard map[string]time.Time
	if s.live != nil {
		connected, heard = s.live.Connected(), s.live.LastHeard()
	}
	s.fsm.Read(func(st *fsm.State) {
		running := map[string][]uint64{}
		for _, t := range st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING}}) {
			running[t.WorkerId] = append(running[t.WorkerId], t.Id)
		}
		for _, w := range st.Workers() {
			ws := &pb.WorkerStatus{Worker: w, Running: running[w.Id], Connected: connected[w.Id]}
			if at, ok := heard[w.Id]; ok && ws.Connected {
				ws.LastHeardAt = at.UnixNano()
			}
			resp.Workers = append(resp.Workers, ws)
		}
		resp.AppliedIndex = st.AppliedIndex()
	})
	// The state's index as raft counts it (its no-op and barrier entries too).
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	return resp, nil
}

// AddPeer adds a voter; a follower forwards the call to the leader.
func (s *Server) AddPeer(ctx context.Context, req *pb.AddPeerRequest) (*pb.AddPeerResponse, error) {
	if err := validateAddPeer(req); err != nil {
		return nil, err
	}
	err := s.raft.AddVoter(ctx, req.Id, req.RaftAddr)
	if isNotLeader(err) {
		c, cerr := s.leaderConn()
		if cerr != nil {
			return nil, cerr
		}
		resp, err := pb.NewAdminClient(c).AddPeer(ctx, req)
		return resp, s.forwardErr(err)
	}
	if err != nil {
		return nil, peerError(err)
	}
	return &pb.AddPeerResponse{}, nil
}

// RemovePeer removes a member; a follower forwards the call to the leader.
func (s *Server) RemovePeer(ctx context.Context, req *pb.RemovePeerRequest) (*pb.RemovePeerResponse, error) {
	if err := validateRemovePeer(req); err != nil {
		return nil, err
	}
	err := s.raft.RemoveServer(ctx, req.Id)
	if isNotLeader(err) {
		c, cerr := s.leaderConn()
		if cerr != nil {
			return nil, cerr
		}
		resp, err := pb.NewAdminClient(c).RemovePeer(ctx, req)
		return resp, s.forwardErr(err)
	}
	if err != nil {
		return nil, peerError(err)
	}
	return &pb.RemovePeerResponse{}, nil
}
