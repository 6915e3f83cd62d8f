package rpc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// MaxOracleIDs is the most volume ids or servers one oracle call may ask for.
const MaxOracleIDs = 10000

// TopologySource gives the master's last topology and when it was fetched
// (nil before the first successful poll); a *seaweed.TopologyCache.
type TopologySource interface {
	Latest() (*seaweed.Topology, time.Time)
}

type topologyHolder struct{ src TopologySource }

// SetTopology gives the capacity oracle the master's topology. Without it
// (no master configured) oracle calls fail with FailedPrecondition.
func (s *Server) SetTopology(src TopologySource) {
	if src == nil {
		s.topo.Store(nil)
		return
	}
	s.topo.Store(&topologyHolder{src: src})
}

// topology returns the master's last topology, or the status to answer.
func (s *Server) topology() (*seaweed.Topology, time.Time, error) {
	h := s.topo.Load()
	if h == nil {
		return nil, time.Time{}, status.Error(codes.FailedPrecondition, "this admin node has no SeaweedFS master configured (start it with --master), so it knows no volume sizes")
	}
	t, at := h.src.Latest()
	if t == nil {
		return nil, time.Time{}, status.Error(codes.Unavailable, "the master's topology has not been fetched yet; retry shortly")
	}
	return t, at, nil
}

func validConsistency(c pb.Consistency) error {
	if _, ok := pb.Consistency_name[int32(c)]; !ok {
		return invalid(fmt.Sprintf("unknown consistency %d (want STALE or LINEARIZABLE)", int32(c)))
	}
	return nil
}

func stamp(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// GetVolumeCapacity projects volumes: the master's size, the adjustments of
// work in flight and of completed work the master has not reported, and the
// size once they land.
func (s *Server) GetVolumeCapacity(ctx context.Context, req *pb.GetVolumeCapacityRequest) (*pb.GetVolumeCapacityResponse, error) {
	switch n := len(req.VolumeIds); {
	case n == 0:
		return nil, invalid("no volume ids given")
	case n > MaxOracleIDs:
		return nil, invalid(fmt.Sprintf("%d volume ids given; at most %d per call", n, MaxOracleIDs))
	}
	for _, id := range req.VolumeIds {
		if id == 0 {
			return nil, invalid("volume id must be greater than 0")
		}
	}
	if err := validConsistency(req.Consistency); err != nil {
		return nil, err
	}
	if _, _, err := s.topology(); status.Code(err) == codes.FailedPrecondition {
		return nil, err
	}
	// A follower hands linearizable lookups to the leader, merged with
	// other requests in flight (see volumeForwarder).
	if forward, err := s.readLocal(ctx, req.Consistency); err != nil {
		return nil, err
	} else if forward {
		return s.volFwd.forward(ctx, req)
	}
	topo, at, err := s.topology()
	if err != nil {
		return nil, err
	}
	vols := make([]*seaweed.Volume, len(req.VolumeIds))
	var unknown []uint32
	for i, id := range req.VolumeIds {
		v, ok := capacity.FindVolume(topo, id)
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		vols[i] = v
	}
	if len(unknown) > 0 {
		return nil, invalid(unknownVolumes(unknown))
	}
	active := make([]*pb.Task, len(vols))
	// Each volume's own changes, from the state's per-volume index: no copy
	// and sort of every unretired change when one volume has some.
	var changes [][]*pb.CapacityChange
	resp := &pb.GetVolumeCapacityResponse{TopologyAt: stamp(at), Volumes: make([]*pb.VolumeCapacity, len(vols))}
	s.fsm.Read(func(st *fsm.State) {
		for i, v := range vols {
			active[i], _ = st.ActiveTask(v.ID)
			// Recently retired changes too: the leader retired them on its
			// own poll, and this node's topology may not show them yet
			// (ProjectVolume skips what this topology reflects).
			if st.HasUnreportedChange(v.ID) || st.HasRetiredChange(v.ID) {
				if changes == nil {
					changes = make([][]*pb.CapacityChange, len(vols))
				}
				changes[i] = append(st.VolumeChanges(v.ID), freshRetired(st.RecentlyRetired(v.ID), s.now())...)
			}
		}
		resp.AppliedIndex = st.AppliedIndex()
	})
	// The state's index as raft counts it (its no-op and barrier entries too).
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	for i, v := range vols {
		var cs []*pb.CapacityChange
		if changes != nil {
			cs = changes[i]
		}
		resp.Volumes[i] = capacity.ProjectVolume(topo, v, active[i], cs)
	}
	return resp, nil
}

// freshRetired keeps the retired changes younger than fsm.RetiredKeep. The
// state forgets older ones only when the next retirement is applied, so on
// a quiet cluster they would otherwise linger (and a move later undone
// would be projected again).
func freshRetired(cs []*pb.CapacityChange, now time.Time) []*pb.CapacityChange {
	cut := now.UnixNano() - fsm.RetiredKeep
	out := cs[:0:0]
	for _, c := range cs {
		if c.RetiredAt >= cut {
			out = append(out, c)
		}
	}
	return out
}

// unknownVolumes names up to ten unknown volume ids in one sentence.
func unknownVolumes(ids []uint32) string {
	if len(ids) == 1 {
		return fmt.Sprintf("volume %d is not in the master's topology", ids[0])
	}
	names := make([]string, 0, 10)
	for _, id := range ids[:min(len(ids), 10)] {
		names = append(names, fmt.Sprint(id))
	}
	more := ""
	if len(ids) > 10 {
		more = fmt.Sprintf(" and %d more", len(ids)-10)
	}
	return fmt.Sprintf("volumes %s%s are not in the master's topology", strings.Join(names, ", "), more)
}

// GetServerCapacity reports volume slots and bytes of volume servers' disks,
// as the master reports them and as projected once work in flight and
// unreported completed work land.
func (s *Server) GetServerCapacity(ctx context.Context, req *pb.GetServerCapacityRequest) (*pb.GetServerCapacityResponse, error) {
	switch n := len(req.Servers); {
	case n == 0:
		return nil, invalid("no servers given")
	case n > MaxOracleIDs:
		return nil, invalid(fmt.Sprintf("%d servers given; at most %d per call", n, MaxOracleIDs))
	}
	for _, name := range req.Servers {
		if strings.TrimSpace(name) == "" {
			return nil, invalid("a server name is empty")
		}
	}
	if err := validConsistency(req.Consistency); err != nil {
		return nil, err
	}
	if _, _, err := s.topology(); status.Code(err) == codes.FailedPrecondition {
		return nil, err
	}
	if resp, forwarded, err := viaLeader(s, ctx, req.Consistency, func(c *grpc.ClientConn) (*pb.GetServerCapacityResponse, error) {
		return pb.NewCapacityOracleClient(c).GetServerCapacity(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	topo, at, err := s.topology()
	if err != nil {
		return nil, err
	}
	servers := make([]*seaweed.Server, 0, len(req.Servers))
	for _, name := range req.Servers {
		srv, ok := capacity.FindServer(topo, name)
		if !ok {
			return nil, invalid(fmt.Sprintf("server %s is not in the master's topology", name))
		}
		servers = append(servers, srv)
	}
	var active []*pb.Task
	var changes []*pb.CapacityChange
	resp := &pb.GetServerCapacityResponse{TopologyAt: stamp(at)}
	s.fsm.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_PENDING, pb.TaskState_TASK_STATE_ASSIGNED, pb.TaskState_TASK_STATE_RUNNING}})
		changes = append(st.CapacityChanges(), freshRetired(st.RetiredChanges(), s.now())...)
		resp.AppliedIndex = st.AppliedIndex()
	})
	// The state's index as raft counts it (its no-op and barrier entries too).
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	resp.Servers = capacity.ProjectServersIndexed(topo, s.srvIdx.get(topo), servers, active, changes)
	return resp, nil
}
