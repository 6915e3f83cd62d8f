package rpc

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ChangeSource tells watchers that the node's state may have changed (a
// command was applied, the master's topology was refreshed); a *ChangeFeed.
type ChangeSource interface {
	// Changed returns a channel closed at the next change after the call.
	Changed() <-chan struct{}
	// Done is closed when the node shuts down.
	Done() <-chan struct{}
}

// watchCoalesce is how long a watch waits at least after a wake-up before
// it projects, so that a burst of applied commands costs one projection.
const watchCoalesce = 20 * time.Millisecond

type watchHolder struct {
	src      ChangeSource
	coalesce time.Duration
}

// SetChanges lets WatchCapacity wake on changes. Without it WatchCapacity
// fails with FailedPrecondition. Call it before serving.
func (s *Server) SetChanges(src ChangeSource) {
	if src == nil {
		s.watch.Store(nil)
		return
	}
	s.watch.Store(&watchHolder{src: src, coalesce: watchCoalesce})
}

// WatchCapacity streams the projections of volumes and servers from this
// node's own state: all of them first, then each one whose projection
// changed. It never blocks raft: it wakes on a change notification,
// projects the latest state and sends what differs from what it sent last,
// so a slow client skips intermediate states instead of queueing them.
func (s *Server) WatchCapacity(req *pb.WatchCapacityRequest, stream pb.CapacityOracle_WatchCapacityServer) error {
	if err := validateWatch(req); err != nil {
		return err
	}
	if _, _, err := s.topology(); err != nil {
		return err
	}
	h := s.watch.Load()
	if h == nil {
		return status.Error(codes.FailedPrecondition, "this admin node does not publish capacity changes, so it cannot serve a watch")
	}
	if !s.watches.take(s.streams.MaxWatches) {
		return status.Errorf(codes.ResourceExhausted, "this admin node already serves its limit of %d capacity watches: retry later, or watch through another admin", s.streams.MaxWatches)
	}
	defer s.watches.release()
	w := newCapacityWatch(req)
	ctx := stream.Context()
	for first := true; ; first = false {
		changed := h.src.Changed() // before reading, so no change is missed
		began := time.Now()
		upd, err := s.watchRound(w, first)
		if err != nil {
			return err
		}
		// A projection of many servers (or the first on a new topology,
		// which indexes every volume) is costly: wait at least four times as long as it took before the next one, so a
		// watch never takes more than a fifth of a core however busy raft is.
		pause := max(h.coalesce, 4*time.Since(began))
		if upd != nil {
			if err := stream.Send(upd); err != nil {
				return err
			}
		}
		if err := waitWatch(ctx.Done(), h.src.Done(), changed); err != nil {
			return err
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			err := waitWatch(ctx.Done(), h.src.Done(), t.C)
			t.Stop()
			if err != nil {
				return err
			}
		}
	}
}

// waitWatch waits for wake, the client going away or the node shutting down.
func waitWatch[T any](cancelled, shutdown <-chan struct{}, wake <-chan T) error {
	select {
	case <-cancelled:
		return status.Error(codes.Canceled, "the client cancelled the watch")
	case <-shutdown:
		return status.Error(codes.Unavailable, "this admin node is shutting down; watch through another one")
	case <-wake:
		return nil
	}
}

// capacityWatch is what one stream has sent so far.
type capacityWatch struct {
	volumes []uint32 // requested, deduplicated, in request order
	servers []string

	topo    *seaweed.Topology
	applied uint64

	lastVol     map[uint32]*pb.VolumeCapacity
	lastSrv     map[string]*pb.ServerCapacity // by server id
	srvID       map[string]string             // request name → server id, as last resolved
	missingVol  map[uint32]bool               // reported missing, not back since
	missingSrv  map[string]bool
	initialised bool
}

func newCapacityWatch(req *pb.WatchCapacityRequest) *capacityWatch {
	w := &capacityWatch{lastVol: map[uint32]*pb.VolumeCapacity{}, lastSrv: map[string]*pb.ServerCapacity{},
		srvID: map[string]string{}, missingVol: map[uint32]bool{}, missingSrv: map[string]bool{}}
	seenV := map[uint32]bool{}
	for _, id := range req.VolumeIds {
		if !seenV[id] {
			seenV[id] = true
			w.volumes = append(w.volumes, id)
		}
	}
	seenS := map[string]bool{}
	for _, name := range req.Servers {
		if !seenS[name] {
			seenS[name] = true
			w.servers = append(w.servers, name)
		}
	}
	return w
}

// watchRound projects the watched volumes and servers and returns what
// changed since the last round (nil: nothing). On the first round an
// unknown volume or server is an InvalidArgument error.
func (s *Server) watchRound(w *capacityWatch, first bool) (*pb.CapacityUpdate, error) {
	topo, at, err := s.topology()
	if err != nil {
		return nil, err
	}
	var applied uint64
	s.fsm.Read(func(st *fsm.State) { applied = st.AppliedIndex() })
	applied = s.stateIndex(applied) // raft's applied index, as answered below
	if w.initialised && topo == w.topo && applied == w.applied {
		return nil, nil // a notification with nothing new for this node
	}

	// Resolve against the current topology.
	vols := make([]*seaweed.Volume, 0, len(w.volumes))
	var goneVol []uint32
	for _, id := range w.volumes {
		if v, ok := capacity.FindVolume(topo, id); ok {
			vols = append(vols, v)
		} else {
			goneVol = append(goneVol, id)
		}
	}
	servers := make([]*seaweed.Server, 0, len(w.servers))
	var goneSrv []string
	for _, name := range w.servers {
		if srv, ok := capacity.FindServer(topo, name); ok {
			servers = append(servers, srv)
			w.srvID[name] = srv.ID
			delete(w.missingSrv, name)
		} else {
			goneSrv = append(goneSrv, name)
		}
	}
	if first && len(goneVol) > 0 {
		return nil, invalid(unknownVolumes(goneVol))
	}
	if first && len(goneSrv) > 0 {
		if len(goneSrv) == 1 {
			return nil, invalid(fmt.Sprintf("server %s is not in the master's topology", goneSrv[0]))
		}
		return nil, invalid(fmt.Sprintf("servers %s are not in the master's topology", strings.Join(goneSrv[:min(len(goneSrv), 10)], ", ")))
	}

	// The same projection as GetVolumeCapacity and GetServerCapacity.
	q := capacity.Query{Topology: topo, Volumes: vols, Servers: servers, Now: s.now}
	if len(servers) > 0 {
		q.Index = s.srvIdx.get(topo) // shared with GetServerCapacity, built once per topology
	}
	p := capacity.Project(s.fsm, q)
	applied = s.stateIndex(p.AppliedIndex)
	w.topo, w.applied, w.initialised = topo, applied, true

	upd := &pb.CapacityUpdate{AppliedIndex: applied, TopologyAt: stamp(at)}
	for _, vc := range p.Volumes {
		delete(w.missingVol, vc.VolumeId)
		if prev, ok := w.lastVol[vc.VolumeId]; !ok || !proto.Equal(prev, vc) {
			w.lastVol[vc.VolumeId] = vc
			upd.Volumes = append(upd.Volumes, vc)
		}
	}
	for _, sc := range p.Servers {
		if prev, ok := w.lastSrv[sc.Server]; !ok || !proto.Equal(prev, sc) {
			w.lastSrv[sc.Server] = sc
			upd.Servers = append(upd.Servers, sc)
		}
	}
	for _, id := range goneVol {
		if !w.missingVol[id] {
			w.missingVol[id] = true
			delete(w.lastVol, id)
			upd.MissingVolumeIds = append(upd.MissingVolumeIds, id)
		}
	}
	for _, name := range goneSrv {
		if !w.missingSrv[name] {
			w.missingSrv[name] = true
			if id, ok := w.srvID[name]; ok {
				delete(w.lastSrv, id)
			}
			upd.MissingServers = append(upd.MissingServers, name)
		}
	}
	if !first && len(upd.Volumes) == 0 && len(upd.Servers) == 0 && len(upd.MissingVolumeIds) == 0 && len(upd.MissingServers) == 0 {
		return nil, nil
	}
	return upd, nil
}
