package rpc

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// blockingWorkers is a worker service whose sessions wait in Recv, as a
// real session (and a restore) does between messages.
type blockingWorkers struct {
	pb.UnimplementedWorkerServiceServer
	ended chan error
}

func (b *blockingWorkers) Session(stream pb.WorkerService_SessionServer) error {
	for {
		if _, err := stream.Recv(); err != nil {
			b.ended <- err
			return err
		}
	}
}

// statusOnly answers Status.
type statusOnly struct{ pb.UnimplementedAdminServer }

func (statusOnly) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{}, nil
}

// tlsTestServer serves a blocking worker service and Status over mutual
// TLS with the authorization interceptors, as admin a1 of the CA in dir;
// its Source checks the files and peers every 50 ms.
func tlsTestServer(t *testing.T) (dir, addr string, workers *blockingWorkers) {
	t.Helper()
	dir, _ = testPKI(t)
	src, err := certs.Load(certs.IssuedFiles(dir, "a1"), certs.Options{CheckEvery: 50 * time.Millisecond, PeerCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(ServerCredentials(src), AuthzInterceptors(src, fakeMembers{ids: []string{"a1"}})...)...)
	workers = &blockingWorkers{ended: make(chan error, 4)}
	pb.RegisterWorkerServiceServer(srv, workers)
	pb.RegisterAdminServer(srv, statusOnly{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return dir, lis.Addr().String(), workers
}

// dialAs dials addr with the certificate name in dir.
func dialAs(t *testing.T, dir, addr, name string) *grpc.ClientConn {
	t.Helper()
	src, err := certs.Load(certs.IssuedFiles(dir, name), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, ClientCredentials(src, certs.RoleAdmin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// openSession opens a worker session and sends its hello; the server
// then waits in Recv.
func openSession(t *testing.T, ctx context.Context, conn *grpc.ClientConn, id string) pb.WorkerService_SessionClient {
	t.Helper()
	stream, err := pb.NewWorkerServiceClient(conn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: id}}}); err != nil {
		t.Fatal(err)
	}
	return stream
}

// TestStreamCutWhenCertificateExpires: a worker session opened with a
// certificate valid for two more seconds is cut, Unauthenticated, once it
// expires, though the server's handler waits in Recv; a unary call on a
// connection whose certificate expired is Unauthenticated.
func TestStreamCutWhenCertificateExpires(t *testing.T) {
	dir, addr, workers := tlsTestServer(t)
	now := time.Now()
	var notAfter time.Time // w1's, as encoded: to the second
	for _, c := range []struct {
		role certs.Role
		name string
	}{{certs.RoleWorker, "w1"}, {certs.RoleReader, "rita"}} {
		cert, err := certs.IssueBetween(dir, c.role, c.name, nil, now.Add(-time.Minute), now.Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if c.name == "w1" {
			notAfter = cert.NotAfter
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reader := pb.NewAdminClient(dialAs(t, dir, addr, "rita"))
	if _, err := reader.Status(ctx, &pb.StatusRequest{}); err != nil {
		t.Fatalf("status with a certificate valid for two more seconds: %v", err)
	}
	stream := openSession(t, ctx, dialAs(t, dir, addr, "w1"), "w1")
	_, err := stream.Recv()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("session at its certificate's expiry: %v; want Unauthenticated saying it expired", err)
	}
	if time.Now().Before(notAfter) {
		t.Fatalf("session cut at %s, before the certificate's expiry %s", time.Now(), notAfter)
	}
	select {
	case <-workers.ended:
	case <-ctx.Done():
		t.Fatal("the handler blocked in Recv did not end after the cut")
	}
	// Same connection, no new handshake: the call itself is refused.
	_, err = reader.Status(ctx, &pb.StatusRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("status after the certificate expired: %v; want Unauthenticated", err)
	}
}

// TestStreamCutWhenCAWithdrawn: replacing the server's CA file by another
// CA cuts the sessions of certificates of the old one, Unauthenticated,
// within the Source's check intervals.
func TestStreamCutWhenCAWithdrawn(t *testing.T) {
	dir, addr, _ := tlsTestServer(t)
	if _, err := certs.Issue(dir, certs.RoleWorker, "w2", nil, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := openSession(t, ctx, dialAs(t, dir, addr, "w2"), "w2")
	recvErr := make(chan error, 1)
	go func() { _, err := stream.Recv(); recvErr <- err }()
	select {
	case err := <-recvErr:
		t.Fatalf("session ended before the CA changed: %v", err)
	case <-time.After(300 * time.Millisecond): // several peer checks
	}
	other := t.TempDir()
	if _, err := certs.NewCA(other); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(other, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, certs.CAFile), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-recvErr:
	case <-ctx.Done():
		t.Fatal("session not cut 20 s after its CA was withdrawn")
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no longer verifies") {
		t.Fatalf("session after its CA was withdrawn: %v; want Unauthenticated saying the certificate no longer verifies", err)
	}
}
