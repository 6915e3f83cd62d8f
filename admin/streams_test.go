package admin_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestStreamsPerConnectionCapped: one client connection holds at most
// rpc.MaxStreamsPerConn calls at once on an admin: with the connection
// full of worker sessions that have not said hello yet (their hello
// deadline an hour away, so a slow machine cannot end them first), one
// more call is held until its own deadline.
func TestStreamsPerConnectionCapped(t *testing.T) {
	n, addr := admintest.StartSingleAdmin(t)
	admin.SetHelloTimeout(n, time.Hour)
	client, ctx := sessionClient(t, addr)
	for i := 0; i < rpc.MaxStreamsPerConn; i++ {
		if _, err := client.Session(ctx); err != nil {
			t.Fatalf("session %d of %d: %v", i+1, rpc.MaxStreamsPerConn, err)
		}
	}
	octx, ocancel := context.WithTimeout(ctx, time.Second)
	defer ocancel()
	if _, err := client.Session(octx); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a call beyond %d streams on one connection: %v, want it held until its deadline", rpc.MaxStreamsPerConn, err)
	}
}

// TestSilentSessionsEndAtHelloDeadline: worker sessions that never say
// hello are ended at the hello deadline with DeadlineExceeded, which frees
// their streams: a connection they filled takes a new call again.
func TestSilentSessionsEndAtHelloDeadline(t *testing.T) {
	n, addr := admintest.StartSingleAdmin(t)
	admin.SetHelloTimeout(n, 2*time.Second)
	client, ctx := sessionClient(t, addr)
	silent := make([]pb.WorkerService_SessionClient, rpc.MaxStreamsPerConn)
	for i := range silent {
		var err error
		if silent[i], err = client.Session(ctx); err != nil {
			t.Fatalf("session %d of %d: %v", i+1, rpc.MaxStreamsPerConn, err)
		}
	}
	for i, s := range silent {
		if _, err := s.Recv(); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("session %d without a hello ended with %v, want DeadlineExceeded", i+1, err)
		}
	}
	if _, err := client.Session(ctx); err != nil {
		t.Fatalf("a call once the silent sessions were ended: %v", err)
	}
}

// sessionClient is a plaintext worker-service client of the admin at addr
// and a context for its calls, both ended with the test.
func sessionClient(t *testing.T, addr string) (pb.WorkerServiceClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return pb.NewWorkerServiceClient(conn), ctx
}
