package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Client calls the Admin service through any of several admin addresses,
// moving on to the next one when a node is down or has no leader yet.
type Client struct {
	addrs []string
	conns []*grpc.ClientConn
	next  int
}

// ErrUnreachable means no admin address answered at all.
var ErrUnreachable = errors.New("no admin answered")

// Dial prepares connections to every address; nothing is contacted yet.
// Without options the connections are plaintext; pass
// ClientCredentials(src, certs.RoleAdmin) for mutual TLS (later options
// override earlier ones).
func Dial(addrs []string, opts ...grpc.DialOption) (*Client, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no admin address given")
	}
	c := &Client{addrs: addrs}
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), CallLimits()}, opts...)...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("admin address %q: %w", a, err)
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// unreachable reports whether err means nothing listens at the address.
func unreachable(err error) bool {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.Unavailable {
		return false
	}
	m := s.Message()
	// Only gRPC's own client-side failures; a server's message about another
	// node (e.g. a failed forward) never starts like this.
	return strings.HasPrefix(m, "connection error") || strings.HasPrefix(m, "name resolver error") ||
		strings.Contains(m, "produced zero addresses")
}

// retryable reports whether another address or a later try may succeed.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted:
		return true
	}
	return false
}

// Do runs call against the admin addresses in turn until it succeeds, fails
// with an error no other node would change, or ctx ends. Each try gets at
// most perTry.
func Do[T any](ctx context.Context, c *Client, perTry time.Duration, call func(ctx context.Context, a pb.AdminClient) (T, error)) (T, error) {
	return DoConn(ctx, c, perTry, func(ctx context.Context, conn grpc.ClientConnInterface) (T, error) {
		return call(ctx, pb.NewAdminClient(conn))
	})
}

// DoOracle is Do for the CapacityOracle service.
func DoOracle[T any](ctx context.Context, c *Client, perTry time.Duration, call func(ctx context.Context, o pb.CapacityOracleClient) (T, error)) (T, error) {
	return DoConn(ctx, c, perTry, func(ctx context.Context, conn grpc.ClientConnInterface) (T, error) {
		return call(ctx, pb.NewCapacityOracleClient(conn))
	})
}

// DoConn is Do for any service of the admin nodes: call gets the connection.
func DoConn[T any](ctx context.Context, c *Client, perTry time.Duration, call func(ctx context.Context, conn grpc.ClientConnInterface) (T, error)) (T, error) {
	var zero T
	var lastErr error
	deadRounds := 0
	for round := 0; ; round++ {
		allDead := true
		for range c.conns {
			i := c.next
			tctx, cancel := context.WithTimeout(ctx, perTry)
			out, err := call(tctx, c.conns[i])
			cancel()
			if err == nil {
				return out, nil
			}
			if ctx.Err() != nil {
				if lastErr == nil {
					lastErr = err
				}
				return zero, fmt.Errorf("%w (last error: %s)", ctx.Err(), describe(lastErr))
			}
			if !retryable(err) && status.Code(err) != codes.DeadlineExceeded {
				return zero, err
			}
			if !unreachable(err) {
				allDead = false
			}
			lastErr = err
			c.next = (c.next + 1) % len(c.conns)
		}
		if allDead {
			deadRounds++
			if deadRounds >= 3 {
				return zero, fmt.Errorf("%w: nothing is listening at %s", ErrUnreachable, strings.Join(c.addrs, ", "))
			}
		} else {
			deadRounds = 0
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%w (last error: %s)", ctx.Err(), describe(lastErr))
		case <-time.After(backoff(round)):
		}
	}
}

func backoff(round int) time.Duration {
	d := 50 * time.Millisecond << min(round, 4)
	return min(d, 500*time.Millisecond)
}

func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
