package rpc

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
)

// TestWatchCap: a node serves at most MaxWatches capacity watches at once;
// the next is refused with ResourceExhausted in one sentence, and ending
// one watch frees its slot for another.
func TestWatchCap(t *testing.T) {
	const limit = 3
	e := newWatchEnv(t, func(s *Server) {
		l := DefaultStreamLimits()
		l.MaxWatches = limit
		s.SetStreamLimits(l)
	})
	req := &pb.WatchCapacityRequest{VolumeIds: []uint32{7}}
	var cancels []context.CancelFunc
	for i := 0; i < limit; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cancels = append(cancels, cancel)
		next(t, e.watch(ctx, req)) // the first update: the slot is held
	}
	over := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := e.watch(ctx, req).Recv()
		return err
	}
	err := over()
	wantCode(t, "watch beyond the cap", err, codes.ResourceExhausted)
	wantMessage(t, "watch beyond the cap", err, "limit of 3 capacity watches")
	if err := <-e.ended; status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the refused watch's handler returned %v", err)
	}

	cancels[0]()
	select {
	case err := <-e.ended:
		wantCode(t, "the cancelled watch", err, codes.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled watch's handler did not return within 10s")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if u := next(t, e.watch(ctx, req)); vol(u, 7) == nil {
		t.Fatalf("the watch that took the freed slot got %v", u)
	}
	wantCode(t, "watch beyond the cap again", over(), codes.ResourceExhausted)
}

// serveLoopback serves what register adds on a loopback port until the
// test ends, and returns a connection to it.
func serveLoopback(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	g := grpc.NewServer()
	register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// countSessions counts the hellos that reach the scheduler, and refuses them.
type countSessions struct{ attached atomic.Int32 }

func (c *countSessions) Attach(context.Context, *pb.Hello) (*scheduler.Session, *pb.Welcome, error) {
	c.attached.Add(1)
	return nil, nil, errors.New("refused by the test")
}
func (c *countSessions) Dispatch(context.Context, *scheduler.Session, *pb.WorkerMessage) error {
	return nil
}
func (c *countSessions) Detach(*scheduler.Session) {}

// TestHelloDeadline: a worker session that sends no hello within the
// server's HelloTimeout is ended with DeadlineExceeded and registers
// nothing; one whose hello comes in time reaches the scheduler.
func TestHelloDeadline(t *testing.T) {
	const wait = 300 * time.Millisecond
	srv := NewServer(nil, fsm.New(), "", nil)
	t.Cleanup(srv.Close)
	l := DefaultStreamLimits()
	l.HelloTimeout = wait
	srv.SetStreamLimits(l)
	sessions := &countSessions{}
	conn := serveLoopback(t, func(g *grpc.Server) { pb.RegisterWorkerServiceServer(g, NewWorkerServer(srv, sessions)) })
	client := pb.NewWorkerServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	began := time.Now()
	silent, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = silent.Recv()
	took := time.Since(began)
	wantCode(t, "a session without a hello", err, codes.DeadlineExceeded)
	wantMessage(t, "a session without a hello", err, "hello within 300ms")
	if took < wait || took > 10*time.Second {
		t.Errorf("the silent session ended after %s; the deadline is %s", took, wait)
	}
	if n := sessions.attached.Load(); n != 0 {
		t.Fatalf("a session without a hello reached the scheduler %d times", n)
	}

	prompt, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := prompt.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: &pb.Hello{WorkerId: "w1", MaxConcurrent: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, err = prompt.Recv()
	wantMessage(t, "a session with a hello", err, "refused by the test")
	if n := sessions.attached.Load(); n != 1 {
		t.Fatalf("a prompt hello reached the scheduler %d times, want 1", n)
	}
}

// TestRestoreStall: a restore stream that stops sending is abandoned after
// the server's RestoreIdle with DeadlineExceeded; until then it holds the
// node's one restore slot, afterwards its temporary file is gone and
// another restore can start.
func TestRestoreStall(t *testing.T) {
	const idle = 2 * time.Second
	dir := t.TempDir()
	srv := NewServer(nil, fsm.New(), "", nil)
	t.Cleanup(srv.Close)
	srv.SetSpoolDir(dir)
	l := DefaultStreamLimits()
	l.RestoreIdle = idle
	srv.SetStreamLimits(l)
	conn := serveLoopback(t, func(g *grpc.Server) { pb.RegisterAdminServer(g, srv) })
	client := pb.NewAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spooled := func() []string {
		left, _ := filepath.Glob(filepath.Join(dir, restoreSpoolPattern))
		return left
	}

	data := []byte("the first bytes of a snapshot that never ends")
	hdr := &pb.SnapshotHeader{FormatVersion: SnapshotFormatVersion, Size: 1 << 20, Sha256: sum(data), Index: 5, Term: 1}
	stalled, err := client.RestoreSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := stalled.Send(hdrChunk(hdr)); err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(dataChunk(data)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled restore to hold the slot and spool", func() bool { return srv.restoring() && len(spooled()) == 1 })
	// That it holds the slot meanwhile: TestStalledRestoreHoldsTheSlot,
	// whose idle limit no slow machine reaches.

	var resp pb.RestoreSnapshotResponse
	err = stalled.RecvMsg(&resp)
	took := time.Since(began)
	wantCode(t, "the stalled restore", err, codes.DeadlineExceeded)
	wantMessage(t, "the stalled restore", err, "sent nothing for 2s")
	if took < idle || took > 20*time.Second {
		t.Errorf("the stalled restore ended after %s; its idle limit is %s", took, idle)
	}
	// The handler's cleanup ran before its status was sent.
	if srv.restoring() {
		t.Error("the abandoned restore still holds the restore slot")
	}
	if left := spooled(); len(left) > 0 {
		t.Errorf("the abandoned restore left %v", left)
	}

	// The slot is free: the next restore gets as far as checking its header.
	up, err := client.RestoreSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = up.Send(hdrChunk(with(hdr, func(h *pb.SnapshotHeader) { h.FormatVersion = 99 })))
	_, err = up.CloseAndRecv()
	wantCode(t, "a restore after the stalled one", err, codes.InvalidArgument)
	wantMessage(t, "a restore after the stalled one", err, "format version 99")
}

// TestStalledRestoreHoldsTheSlot: while a stalled restore is within its
// idle limit it holds the node's one restore slot: another restore is
// refused with ResourceExhausted. The limit is an hour, so however slow
// the machine, the stall cannot end before the second restore is tried.
func TestStalledRestoreHoldsTheSlot(t *testing.T) {
	dir := t.TempDir()
	srv := NewServer(nil, fsm.New(), "", nil)
	t.Cleanup(srv.Close)
	srv.SetSpoolDir(dir)
	l := DefaultStreamLimits()
	l.RestoreIdle = time.Hour
	srv.SetStreamLimits(l)
	conn := serveLoopback(t, func(g *grpc.Server) { pb.RegisterAdminServer(g, srv) })
	client := pb.NewAdminClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	data := []byte("the first bytes of a snapshot that never ends")
	hdr := &pb.SnapshotHeader{FormatVersion: SnapshotFormatVersion, Size: 1 << 20, Sha256: sum(data), Index: 5, Term: 1}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stalled, err := client.RestoreSnapshot(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(hdrChunk(hdr)); err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(dataChunk(data)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled restore to hold the slot", srv.restoring)
	up, err := client.RestoreSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = up.Send(hdrChunk(hdr))
	_, err = up.CloseAndRecv()
	wantCode(t, "a restore while one is stalled", err, codes.ResourceExhausted)
	scancel()
	waitFor(t, "the cancelled restore to free the slot", func() bool { return !srv.restoring() })
}
