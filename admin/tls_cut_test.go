package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestTLSWorkerSessionCutAtExpiry: a worker session on the leader, opened
// with a certificate that expires two seconds later, is cut
// (Unauthenticated) at the expiry and the leader forgets the worker,
// though the connection stays up and the worker keeps heartbeating.
func TestTLSWorkerSessionCutAtExpiry(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(3))
	s.EnableTLS()
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	now := time.Now()
	cert, err := certs.IssueBetween(s.TLSDir(), certs.RoleWorker, "wb", nil, now.Add(-time.Minute), now.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	src, err := certs.Load(certs.IssuedFiles(s.TLSDir(), "wb"), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Cfgs[leader].GRPCAddr, rpc.ClientCredentials(src, certs.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	stream, err := pb.NewWorkerServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hello := &pb.Hello{WorkerId: "wb", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: 1}
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetWelcome() == nil {
		t.Fatalf("hello with a valid certificate: %v, %v; want a welcome", first, err)
	}
	s.WaitConnected("wb")
	// Heartbeat until the stream ends, as a live worker would.
	hb := time.NewTicker(200 * time.Millisecond)
	defer hb.Stop()
	recvErr := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				recvErr <- err
				return
			}
		}
	}()
	for err = nil; err == nil; {
		select {
		case err = <-recvErr:
		case <-hb.C:
			_ = stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{}}})
		case <-ctx.Done():
			t.Fatal("the session outlived its certificate")
		}
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("session at its certificate's expiry: %v; want Unauthenticated saying it expired", err)
	}
	if time.Now().Before(cert.NotAfter) {
		t.Fatalf("cut at %s, before the expiry %s", time.Now(), cert.NotAfter)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "the leader to forget wb", func() bool {
		return !s.Node(leader).Scheduler().Connected()["wb"]
	})
}
