package seaweed

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A volume server does not know about groundskeeper's fence tokens: once a
// call reaches it, it runs. The only place to stop a worker whose leader may
// already have handed its task to another worker (its lease ran out while
// it was partitioned, or frozen by SIGSTOP, a VM pause, a long GC) is the
// worker itself, before each call leaves. A call guard is that check.

type callGuardKey struct{}

// WithCallGuard returns a context whose volume-server calls made through a
// VolumeClient (with it or any context derived from it, detached ones
// included) first run guard; if guard returns an error the call is not sent
// and fails with codes.Aborted and that error's message.
func WithCallGuard(ctx context.Context, guard func() error) context.Context {
	return context.WithValue(ctx, callGuardKey{}, guard)
}

// checkCallGuard runs ctx's call guard, if any.
func checkCallGuard(ctx context.Context, method string) error {
	g, _ := ctx.Value(callGuardKey{}).(func() error)
	if g == nil {
		return nil
	}
	if err := g(); err != nil {
		return status.Errorf(codes.Aborted, "%s not sent: %v", method, err)
	}
	return nil
}

func guardUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := checkCallGuard(ctx, shortName(method)); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func guardStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := checkCallGuard(ctx, shortName(method)); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

func shortName(method string) string {
	for i := len(method) - 1; i >= 0; i-- {
		if method[i] == '/' {
			return method[i+1:]
		}
	}
	return method
}
