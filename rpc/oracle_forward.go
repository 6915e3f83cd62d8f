package rpc

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// volumeForwardInFlight bounds the merged GetVolumeCapacity calls a follower
// has out to the leader at once; requests arriving meanwhile gather into the
// next call.
const volumeForwardInFlight = 4

// volumeForwarder merges the linearizable volume lookups a follower must
// hand to the leader: concurrent requests become one GetVolumeCapacity call
// with all their ids, and each gets its slice of the answer. A call starts
// only after every request in it arrived, and the leader confirms its
// leadership after receiving it, so each answer is still linearizable.
type volumeForwarder struct {
	s *Server

	mu       sync.Mutex
	pending  []*volumeForwardReq
	inFlight int

	calls atomic.Int64 // merged calls sent (for tests)
}

type volumeForwardReq struct {
	ctx  context.Context
	ids  []uint32
	done chan volumeForwardResp // buffered: send never blocks
}

type volumeForwardResp struct {
	resp *pb.GetVolumeCapacityResponse
	err  error
	// alone: the merged call was refused (a volume unknown to the leader,
	// perhaps another request's): ask again on one's own.
	alone bool
}

func newVolumeForwarder(s *Server) *volumeForwarder { return &volumeForwarder{s: s} }

// forward answers req (linearizable) through the leader.
func (f *volumeForwarder) forward(ctx context.Context, req *pb.GetVolumeCapacityRequest) (*pb.GetVolumeCapacityResponse, error) {
	r := &volumeForwardReq{ctx: ctx, ids: req.VolumeIds, done: make(chan volumeForwardResp, 1)}
	f.mu.Lock()
	f.pending = append(f.pending, r)
	f.startLocked()
	f.mu.Unlock()
	select {
	case v := <-r.done:
		if !v.alone {
			return v.resp, v.err
		}
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	}
	conn, err := f.s.leaderConn()
	if err != nil {
		return nil, err
	}
	resp, err := pb.NewCapacityOracleClient(conn).GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{
		VolumeIds: req.VolumeIds, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
	return resp, f.s.forwardErr(err)
}

// startLocked sends pending requests, at most MaxOracleIDs ids per call,
// while fewer than volumeForwardInFlight calls are out. Call with f.mu held.
func (f *volumeForwarder) startLocked() {
	for f.inFlight < volumeForwardInFlight && len(f.pending) > 0 {
		n, ids := 0, 0
		for n < len(f.pending) && (n == 0 || ids+len(f.pending[n].ids) <= MaxOracleIDs) {
			ids += len(f.pending[n].ids)
			n++
		}
		batch := f.pending[:n:n]
		f.pending = append([]*volumeForwardReq(nil), f.pending[n:]...)
		f.inFlight++
		go f.send(batch, ids)
	}
}

func (f *volumeForwarder) send(batch []*volumeForwardReq, ids int) {
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.startLocked()
		f.mu.Unlock()
	}()
	// Callers that gave up are left out.
	live := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() == nil {
			live = append(live, r)
		} else {
			ids -= len(r.ids)
		}
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	fail := func(err error) {
		for _, r := range batch {
			r.done <- volumeForwardResp{err: err}
		}
	}
	conn, err := f.s.leaderConn()
	if err != nil {
		fail(err)
		return
	}
	ctx, deadline := batch[0].ctx, false
	if len(batch) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), forwardTimeout)
		defer cancel()
		deadline = true
	}
	req := &pb.GetVolumeCapacityRequest{Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE}
	if len(batch) == 1 {
		req.VolumeIds = batch[0].ids
	} else {
		req.VolumeIds = make([]uint32, 0, ids)
		for _, r := range batch {
			req.VolumeIds = append(req.VolumeIds, r.ids...)
		}
	}
	f.calls.Add(1)
	resp, err := pb.NewCapacityOracleClient(conn).GetVolumeCapacity(ctx, req)
	if err != nil {
		if deadline && status.Code(err) == codes.InvalidArgument {
			for _, r := range batch {
				r.done <- volumeForwardResp{alone: true}
			}
			return
		}
		fail(f.s.forwardErr(err))
		return
	}
	if len(batch) == 1 {
		batch[0].done <- volumeForwardResp{resp: resp}
		return
	}
	if len(resp.Volumes) != len(req.VolumeIds) {
		fail(status.Errorf(codes.Internal, "leader answered %d volumes for %d ids", len(resp.Volumes), len(req.VolumeIds)))
		return
	}
	off := 0
	for _, r := range batch {
		part := resp.Volumes[off : off+len(r.ids) : off+len(r.ids)]
		off += len(r.ids)
		r.done <- volumeForwardResp{resp: &pb.GetVolumeCapacityResponse{AppliedIndex: resp.AppliedIndex, TopologyAt: resp.TopologyAt, Volumes: part}}
	}
}
