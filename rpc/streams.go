package rpc

import (
	"context"
	"sync/atomic"
	"time"
)

// Caps and deadlines on streams: what a client that opens streams and then
// says nothing can hold on a node.
const (
	// MaxStreamsPerConn caps the concurrent calls (HTTP/2 streams) of one
	// client connection to an admin's gRPC server (grpc.MaxConcurrentStreams).
	// A worker holds one session stream; the forwarders between admins
	// multiplex their calls on one connection and queue beyond it.
	MaxStreamsPerConn = 256
	// DefaultMaxWatches caps the WatchCapacity streams one node serves at
	// once: each re-projects its volumes and servers on every change.
	DefaultMaxWatches = 64
	// DefaultHelloTimeout is how long a worker session may take to send its
	// hello before the stream is ended.
	DefaultHelloTimeout = 10 * time.Second
	// DefaultRestoreIdle is how long a restore stream may go without a
	// message before it is abandoned, its temporary file removed and the
	// node's one restore slot freed.
	DefaultRestoreIdle = 30 * time.Second
)

// StreamLimits are a node's caps and deadlines on streams.
type StreamLimits struct {
	// MaxWatches caps concurrent WatchCapacity streams (0: none allowed).
	MaxWatches int
	// HelloTimeout bounds the wait for a worker session's hello.
	HelloTimeout time.Duration
	// RestoreIdle bounds the wait for each message of a restore stream.
	RestoreIdle time.Duration
}

// DefaultStreamLimits are the limits of a production node.
func DefaultStreamLimits() StreamLimits {
	return StreamLimits{MaxWatches: DefaultMaxWatches, HelloTimeout: DefaultHelloTimeout, RestoreIdle: DefaultRestoreIdle}
}

// SetStreamLimits replaces the node's caps and deadlines on streams
// (DefaultStreamLimits until then). Call it before serving.
func (s *Server) SetStreamLimits(l StreamLimits) { s.streams = l }

// slots counts streams held against a cap.
type slots struct{ n atomic.Int64 }

// take holds a slot if fewer than limit are held.
func (c *slots) take(limit int) bool {
	if c.n.Add(1) > int64(limit) {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *slots) release() { c.n.Add(-1) }

// recvWithin calls recv, giving up after d with timeout (d <= 0: waits as
// long as recv does). recv runs in a goroutine of its own: a gRPC Recv
// cannot be interrupted, so after a timeout the caller must end the stream
// (return from its handler, which ends the pending Recv) and not call
// recv again.
func recvWithin[T any](ctx context.Context, d time.Duration, recv func() (T, error), timeout error) (T, error) {
	if d <= 0 {
		return recv()
	}
	type result struct {
		m   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := recv()
		ch <- result{m, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-t.C:
		var zero T
		return zero, timeout
	case <-ctx.Done():
		var zero T
		return zero, toStatus(ctx.Err())
	}
}
