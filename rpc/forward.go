package rpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	// maxForwardBatch bounds how many commands one ApplyBatch call carries.
	maxForwardBatch = 512
	// maxForwardBytes bounds the commands of one ApplyBatch call, well
	// below the MaxRequestMessage the leader accepts (a command alone is
	// bounded by the API's limits, far below this).
	maxForwardBytes = MaxRequestMessage / 2
	// forwardInFlight bounds concurrent ApplyBatch calls; while they are out,
	// new commands gather into the next batch.
	forwardInFlight = 4
	forwardTimeout  = 10 * time.Second
)

type forwardReq struct {
	ctx  context.Context
	cmd  []byte
	done chan forwardResp
}

type forwardResp struct {
	res *fsmpb.ApplyResult
	err error
}

// forwarder coalesces the writes a follower must hand to the leader into
// ApplyBatch calls: one RPC for many concurrent writes instead of one each.
type forwarder struct {
	s     *Server
	queue chan forwardReq
	slots chan struct{}
}

func newForwarder(s *Server) *forwarder {
	return &forwarder{s: s, queue: make(chan forwardReq, maxForwardBatch), slots: make(chan struct{}, forwardInFlight)}
}

// forward sends cmd to the leader as part of a batch and waits for its result.
func (f *forwarder) forward(ctx context.Context, cmd []byte) (*fsmpb.ApplyResult, error) {
	req := forwardReq{ctx: ctx, cmd: cmd, done: make(chan forwardResp, 1)}
	select {
	case f.queue <- req:
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	}
	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, toStatus(ctx.Err())
	}
}

// run gathers queued writes into batches until ctx ends.
func (f *forwarder) run(ctx context.Context) {
	// next is a write taken from the queue that did not fit the last batch.
	var next *forwardReq
	for {
		var first forwardReq
		if next != nil {
			first, next = *next, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case first = <-f.queue:
			}
		}
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			first.done <- forwardResp{err: status.Error(codes.Unavailable, "node is shutting down")}
			return
		}
		batch, size := []forwardReq{first}, len(first.cmd)
	fill:
		for len(batch) < maxForwardBatch {
			select {
			case r := <-f.queue:
				if size+len(r.cmd) > maxForwardBytes {
					next = &r
					break fill
				}
				batch, size = append(batch, r), size+len(r.cmd)
			default:
				break fill
			}
		}
		go func() {
			defer func() { <-f.slots }()
			f.send(batch)
		}()
	}
}

func (f *forwarder) send(batch []forwardReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.done <- forwardResp{err: err}
		}
	}
	// Drop requests whose callers gave up; the rest share one deadline.
	live := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.done <- forwardResp{err: toStatus(r.ctx.Err())}
			continue
		}
		live = append(live, r)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	c, err := f.s.leaderConn()
	if err != nil {
		fail(err)
		return
	}
	req := &pb.ApplyBatchRequest{Commands: make([][]byte, len(batch))}
	for i, r := range batch {
		req.Commands[i] = r.cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	resp, err := pb.NewInternalClient(c).ApplyBatch(ctx, req)
	if err != nil {
		fail(f.s.forwardErr(err))
		return
	}
	if len(resp.Items) != len(batch) {
		fail(status.Errorf(codes.Internal, "leader answered %d results for %d commands", len(resp.Items), len(batch)))
		return
	}
	for i, it := range resp.Items {
		if codes.Code(it.Code) != codes.OK {
			batch[i].done <- forwardResp{err: status.Error(codes.Code(it.Code), it.Message)}
			continue
		}
		batch[i].done <- forwardResp{res: it.Result}
	}
}

// ApplyBatch is the Internal RPC behind the forwarder: every command is
// proposed as its own entry and the outcomes are returned in order. The
// batch holds unrelated writes of many callers, so a command over a limit
// is answered InvalidArgument in its own item and the others still apply;
// only a malformed request (its size, an undecodable command) fails the
// call.
func (s *Server) ApplyBatch(ctx context.Context, req *pb.ApplyBatchRequest) (*pb.ApplyBatchResponse, error) {
	items, valid, at, err := validateBatch(req)
	if err != nil {
		return nil, err
	}
	resp := &pb.ApplyBatchResponse{Items: items}
	if len(valid) == 0 {
		return resp, nil
	}
	cmds, err := restamp(valid, s.now().UnixNano())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	outs, errs := s.raft.ApplyMany(ctx, cmds)
	for j := range outs {
		it := &pb.ApplyBatchItem{}
		if errs[j] != nil {
			st := status.Convert(toStatus(errs[j]))
			it.Code, it.Message = int32(st.Code()), st.Message()
		} else if res, ok := outs[j].(*fsmpb.ApplyResult); ok {
			it.Result = res
		} else {
			it.Code, it.Message = int32(codes.Internal), "unexpected apply result"
		}
		resp.Items[at[j]] = it
	}
	return resp, nil
}

// restamp gives each forwarded command the leader's clock at its arrival
// instead of the follower's: a command forwarded from a follower reaches
// raft after proposals the leader stamped since, so its time could precede
// that of an entry committed before it (the fault harness, seed
// 1796324126356219112, saw a task created "before" its volume's previous
// task finished, though the log created it after). One clock stamps what
// this leader proposes (the cluster keeps its stamps from going back along
// the log, cluster.Versioned.Stamp); a follower's clock running ahead must
// not carry every later stamp with it. Nothing else in the command
// changes.
func restamp(cmds []forwarded, now int64) ([][]byte, error) {
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		if c.cmd.Now == now {
			out[i] = c.raw
			continue
		}
		c.cmd.Now = now
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.cmd)
		if err != nil {
			return nil, fmt.Errorf("restamp a forwarded command: %w", err)
		}
		out[i] = b
	}
	return out, nil
}
