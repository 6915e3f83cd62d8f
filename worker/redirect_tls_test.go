package worker

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// redirectingAdmin answers every hello with a redirect to leaderAddr
// naming the leader *leaderID, and counts the hellos.
type redirectingAdmin struct {
	pb.UnimplementedWorkerServiceServer
	leaderAddr string
	leaderID   atomic.Pointer[string]
	hellos     atomic.Int64
}

func (a *redirectingAdmin) Session(stream pb.WorkerService_SessionServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	a.hellos.Add(1)
	return stream.Send(&pb.AdminMessage{Body: &pb.AdminMessage_Redirect{Redirect: &pb.Redirect{LeaderId: *a.leaderID.Load(), LeaderGrpcAddr: a.leaderAddr}}})
}

// serveTLS serves svc over mutual TLS with src on a loopback port.
func serveTLS(t *testing.T, src *certs.Source, svc pb.WorkerServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(src.ServerCredentials()))
	pb.RegisterWorkerServiceServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestTLSRedirectNeedsTheNamedLeader: under TLS a worker follows an
// admin's redirect only to a server whose certificate is the admin the
// redirect names. Admin a1 says the leader is a3 at an address where a2
// answers: the worker does not open a session there and goes back to its
// admins; told the leader is a2, it follows.
func TestTLSRedirectNeedsTheNamedLeader(t *testing.T) {
	load := newTestCA(t)
	a2 := &redirectingAdmin{leaderAddr: "127.0.0.1:1"} // counts who reaches it
	empty := ""
	a2.leaderID.Store(&empty)
	a1 := &redirectingAdmin{leaderAddr: serveTLS(t, load(certs.RoleAdmin, "a2"), a2)}
	wrong := "a3"
	a1.leaderID.Store(&wrong)
	a1Addr := serveTLS(t, load(certs.RoleAdmin, "a1"), a1)

	w, err := New(Config{ID: "w1", Admins: []string{a1Addr}, DataDir: t.TempDir(), MaxConcurrent: 1, TLS: load(certs.RoleWorker, "w1"),
		Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
		Executors:    map[fsmpb.TaskType]Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: statsExecutor{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	defer func() { cancel(); wg.Wait(); w.Close() }()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s", what)
			}
			time.Sleep(20 * time.Millisecond) // poll interval; the deadline bounds the wait
		}
	}
	// Three redirects to "a3" followed (or not) in turn.
	waitUntil("the worker back at a1 three times", func() bool { return a1.hellos.Load() >= 3 })
	if n := a2.hellos.Load(); n != 0 {
		t.Fatalf("the worker said hello to a2 %d times, redirected there as to leader a3", n)
	}
	right := "a2"
	a1.leaderID.Store(&right)
	waitUntil("the worker follows a redirect naming a2", func() bool { return a2.hellos.Load() > 0 })
}
