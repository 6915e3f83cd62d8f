package seaweed

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A volume server does not know about groundskeeper's fence tokens: once a
// call reaches it, it runs. The only place to stop a worker whose leader may
// already have handed its task to another worker (its lease ran out while
// it was partitioned, or frozen by SIGSTOP, a VM pause, a long GC) is the
// worker itself, before each call leaves and while it runs. A call guard is
// that check.

type callGuardKey struct{}

// guardMark starts the message of every call a guard refused or cancelled.
const guardMark = "lease guard: "

// GuardRefused reports whether err (or an error it wraps the text of) is a
// call a guard refused or cancelled: the attempt was stopped because its
// worker may have lost the task, not because the step failed.
func GuardRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), guardMark)
}

// CallGuard says whether a call may be made now. It returns until when the
// permission holds (zero: no limit; a call still running then is checked
// again, and cancelled if the guard now refuses), or an error to refuse.
type CallGuard func() (until time.Time, err error)

// WithCallGuard returns a context whose volume-server calls made through a
// VolumeClient (with it or any context derived from it, detached ones
// included) are guarded: a refused call is not sent and fails with
// codes.Aborted and the guard's message; a call still running when its
// permission lapses is cancelled (the server sees the cancellation; a
// server that cannot stop the work midway finishes it, so the leader's
// grace must cover the longest such call).
func WithCallGuard(ctx context.Context, guard CallGuard) context.Context {
	return context.WithValue(ctx, callGuardKey{}, guard)
}

// guardCall checks ctx's guard, if any, and returns the context to make the
// call with and the function to call once the call is over.
func guardCall(ctx context.Context, method string) (context.Context, func(), error) {
	g, _ := ctx.Value(callGuardKey{}).(CallGuard)
	if g == nil {
		return ctx, func() {}, nil
	}
	until, err := g()
	if err != nil {
		return nil, nil, status.Errorf(codes.Aborted, "%s%s not sent: %v", guardMark, method, err)
	}
	if until.IsZero() {
		return ctx, func() {}, nil
	}
	cctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		for {
			t := time.NewTimer(time.Until(until))
			select {
			case <-stop:
				t.Stop()
				return
			case <-cctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			var err error
			if until, err = g(); err != nil {
				cancel(status.Errorf(codes.Aborted, "%s%s cancelled: %v", guardMark, method, err))
				return
			}
			if until.IsZero() {
				select {
				case <-stop:
				case <-cctx.Done():
				}
				return
			}
		}
	}()
	var once sync.Once
	return cctx, func() {
		once.Do(func() {
			close(stop)
			cancel(nil)
		})
	}, nil
}

// abortedCause turns a call failed by a guard's cancellation into the
// guard's Aborted error.
func abortedCause(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return err
}

func guardUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	gctx, done, err := guardCall(ctx, shortName(method))
	if err != nil {
		return err
	}
	defer done()
	return abortedCause(gctx, invoker(gctx, method, req, reply, cc, opts...))
}

func guardStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	gctx, done, err := guardCall(ctx, shortName(method))
	if err != nil {
		return nil, err
	}
	s, err := streamer(gctx, desc, cc, method, opts...)
	if err != nil {
		done()
		return nil, abortedCause(gctx, err)
	}
	return &guardedStream{ClientStream: s, ctx: gctx, done: done}, nil
}

// guardedStream releases its guard's watchdog when the stream ends.
type guardedStream struct {
	grpc.ClientStream
	ctx  context.Context
	done func()
}

func (s *guardedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		err = abortedCause(s.ctx, err)
		s.done()
	}
	return err
}

func shortName(method string) string {
	for i := len(method) - 1; i >= 0; i-- {
		if method[i] == '/' {
			return method[i+1:]
		}
	}
	return method
}
