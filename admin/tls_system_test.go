package admin_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestTLSSystem: three admins and a worker over mutual TLS form a cluster,
// do real work, and forward between followers and the leader; each role
// gets exactly what the table gives it, refusals are PermissionDenied
// naming the role needed, and a worker cannot speak for another id.
func TestTLSSystem(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(3))
	s.EnableTLS()
	vol := s.AddOn(admintest.GarbageSpec, 0)
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.WaitConnected("w1")
	done := s.WaitTask(vol, "vacuum completed over TLS", func(tk *fsmpb.Task) bool {
		return tk.State == fsmpb.TaskState_TASK_STATE_COMPLETED
	})
	if done.WorkerId != "w1" {
		t.Errorf("task done by %q, want w1", done.WorkerId)
	}

	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	leader := s.WaitLeader()
	follower := (leader + 1) % 3
	addr := s.Cfgs[follower].GRPCAddr // through a follower: forwarding runs TLS too
	as := func(role certs.Role, name string) *grpc.ClientConn { return s.ConnAs(addr, role, name) }
	submit := &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 4242}

	// Allowed calls may meet an election on this loaded machine: retry
	// those (Unavailable) until the deadline; refusals come before any
	// forwarding and need no retry.
	retry := func(call func() error) error {
		for {
			err := call()
			if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var st *pb.StatusResponse
	err := retry(func() (err error) {
		st, err = pb.NewAdminClient(as(certs.RoleReader, "rita")).Status(ctx, &pb.StatusRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("reader status: %v", err)
	}
	if !st.Tls || st.Insecure {
		t.Errorf("status says tls=%v insecure=%v, want tls and not insecure", st.Tls, st.Insecure)
	}
	if err := retry(func() error {
		_, err := pb.NewAdminClient(as(certs.RoleReader, "rita")).ListTasks(ctx, &pb.ListTasksRequest{})
		return err
	}); err != nil {
		t.Errorf("reader list tasks: %v", err)
	}
	wantDenied := func(what string, err error, role string) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "needs role "+role) {
			t.Errorf("%s: %v; want PermissionDenied naming role %s", what, err, role)
		}
	}
	_, err = pb.NewAdminClient(as(certs.RoleReader, "rita")).SubmitTask(ctx, submit)
	wantDenied("reader submit", err, "operator")
	_, err = pb.NewAdminClient(as(certs.RoleReader, "rita")).RemovePeer(ctx, &pb.RemovePeerRequest{Id: s.Cfgs[leader].ID})
	wantDenied("reader peers remove", err, "operator")
	_, err = pb.NewAdminClient(as(certs.RoleWorker, "w1")).SubmitTask(ctx, submit)
	wantDenied("worker submit", err, "operator")
	_, err = pb.NewAdminClient(as(certs.RoleReader, "rita")).AddPeer(ctx, &pb.AddPeerRequest{Id: "phantom1", RaftAddr: "127.0.0.1:1"})
	wantDenied("reader peers add", err, "operator")
	_, err = pb.NewAdminClient(as(certs.RoleWorker, "w1")).CancelTask(ctx, &pb.CancelTaskRequest{Id: done.Id})
	wantDenied("worker cancel", err, "operator")
	_, err = pb.NewAdminClient(as(certs.RoleWorker, "w1")).Status(ctx, &pb.StatusRequest{})
	wantDenied("worker status", err, "reader")
	_, err = pb.NewInternalClient(as(certs.RoleOperator, "olga")).ApplyBatch(ctx, &pb.ApplyBatchRequest{Commands: [][]byte{{1}}})
	wantDenied("operator ApplyBatch", err, "admin")
	if err := retry(func() error {
		_, err := pb.NewAdminClient(as(certs.RoleOperator, "olga")).SubmitTask(ctx, submit)
		return err
	}); err != nil {
		t.Fatalf("operator submit through a follower: %v", err)
	}

	// A worker certificate opens a session only under its own id.
	hello := &pb.Hello{WorkerId: "w2", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: 1}
	lconn := s.ConnAs(s.Cfgs[leader].GRPCAddr, certs.RoleWorker, "w1")
	stream, err := pb.NewWorkerServiceClient(lconn).Session(ctx)
	if err == nil {
		err = stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: hello}})
		if err == nil {
			_, err = stream.Recv()
		}
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `cannot open a session as worker "w2"`) {
		t.Errorf("worker w1 opening a session as w2: %v; want PermissionDenied", err)
	}
	if s.Node(leader).Scheduler().Connected()["w2"] {
		t.Error("w2 is connected")
	}
	// An operator may not open a worker session at all.
	stream, err = pb.NewWorkerServiceClient(s.ConnAs(s.Cfgs[leader].GRPCAddr, certs.RoleOperator, "olga")).Session(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	wantDenied("operator session", err, "worker")

	// No client certificate, or one from another CA: no call gets through.
	otherDir := filepath.Join(t.TempDir(), "other")
	if _, err := certs.NewCA(otherDir); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Issue(otherDir, certs.RoleOperator, "mallory", nil, 0); err != nil {
		t.Fatal(err)
	}
	other, err := certs.Load(certs.IssuedFiles(otherDir, "mallory"), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	caOnly, err := certs.Load(certs.IssuedFiles(s.TLSDir(), "rita"), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noCert := caOnly.ClientConfig("127.0.0.1")
	noCert.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	refused := func() {
		for name, opt := range map[string]grpc.DialOption{
			"another CA":            rpc.ClientCredentials(other, certs.RoleAdmin),
			"no client certificate": grpc.WithTransportCredentials(credentials.NewTLS(noCert)),
			"plaintext":             rpc.ClientCredentials(nil),
		} {
			c, err := grpc.NewClient(addr, opt)
			if err != nil {
				t.Fatal(err)
			}
			cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
			_, err = pb.NewAdminClient(c).SubmitTask(cctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 999})
			ccancel()
			c.Close()
			if err == nil {
				t.Errorf("%s: a submit got through", name)
			}
		}
	}
	// The cluster is live (the operator's task waits for its volume, the
	// master retires completed changes): a background change may fall
	// between the two hashes, so the round is repeated until one is quiet.
	// A refused client's change would show in every round.
	var before, after string
	for range 5 {
		before = s.WaitHashes(0, 1, 2)
		refused()
		if after = s.WaitHashes(0, 1, 2); after == before {
			break
		}
	}
	if after != before {
		t.Errorf("refused clients changed the state in each of 5 rounds: hash %s, was %s", after, before)
	}
	s.Node(leader).FSM().Read(func(st *fsm.State) {
		if tasks := st.Tasks(fsm.TaskFilter{VolumeID: 999}); len(tasks) != 0 {
			t.Errorf("a refused client's submission is in the state: %v", tasks)
		}
	})
}
