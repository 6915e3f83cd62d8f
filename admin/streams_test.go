package admin_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestStreamsPerConnectionCapped: one client connection holds at most
// rpc.MaxStreamsPerConn calls at once on an admin; worker sessions that
// never say hello are ended after rpc.DefaultHelloTimeout, which frees
// their streams for new calls.
func TestStreamsPerConnectionCapped(t *testing.T) {
	_, addr := admintest.StartSingleAdmin(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewWorkerServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	began := time.Now()
	silent := make([]pb.WorkerService_SessionClient, rpc.MaxStreamsPerConn)
	for i := range silent {
		if silent[i], err = client.Session(ctx); err != nil {
			t.Fatalf("session %d of %d: %v", i+1, rpc.MaxStreamsPerConn, err)
		}
	}
	if time.Since(began) < rpc.DefaultHelloTimeout/2 {
		octx, ocancel := context.WithTimeout(ctx, time.Second)
		_, err := client.Session(octx)
		ocancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("a call beyond %d streams on one connection: %v, want it held until its deadline", rpc.MaxStreamsPerConn, err)
		}
	} else {
		t.Logf("opening the sessions took %s: the machine is too slow to try one more before their hello deadline", time.Since(began))
	}

	_, err = silent[0].Recv()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a session without a hello ended with %v, want DeadlineExceeded", err)
	}
	if _, err := client.Session(ctx); err != nil {
		t.Fatalf("a call once the silent sessions were ended: %v", err)
	}
}
