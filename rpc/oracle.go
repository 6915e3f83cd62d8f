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
	if err := validateVolumeCapacity(req); err != nil {
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
	p := capacity.Project(s.fsm, capacity.Query{Topology: topo, Volumes: vols, Now: s.now})
	// The state's index as raft counts it (its no-op and barrier entries too).
	return &pb.GetVolumeCapacityResponse{AppliedIndex: s.stateIndex(p.AppliedIndex), TopologyAt: stamp(at), Volumes: p.Volumes}, nil
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
	if err := validateServerCapacity(req); err != nil {
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
	p := capacity.Project(s.fsm, capacity.Query{Topology: topo, Index: s.srvIdx.get(topo), Servers: servers, Now: s.now})
	// The state's index as raft counts it (its no-op and barrier entries too).
	return &pb.GetServerCapacityResponse{AppliedIndex: s.stateIndex(p.AppliedIndex), TopologyAt: stamp(at), Servers: p.Servers}, nil
}
