package rpc

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// fakeChanges is a change source the test fires by hand.
type fakeChanges struct {
	mu   sync.Mutex
	ch   chan struct{}
	done chan struct{}
}

func newFakeChanges() *fakeChanges {
	return &fakeChanges{ch: make(chan struct{}), done: make(chan struct{})}
}

func (f *fakeChanges) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

func (f *fakeChanges) Done() <-chan struct{} { return f.done }

func (f *fakeChanges) fire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.ch)
	f.ch = make(chan struct{})
}

// watchEnv is one Server without raft (WatchCapacity reads only the local
// FSM and topology), served on loopback, with commands applied by hand.
type watchEnv struct {
	t       *testing.T
	fsm     *fsm.FSM
	topo    *fixedTopology
	changes *fakeChanges
	client  pb.CapacityOracleClient
	index   uint64
	ended   chan error // what each WatchCapacity handler returned
}

func newWatchEnv(t *testing.T, setup ...func(*Server)) *watchEnv {
	t.Helper()
	e := &watchEnv{t: t, fsm: fsm.New(), topo: oracleTopology(100 * oracleMiB), changes: newFakeChanges(), ended: make(chan error, 10)}
	srv := NewServer(nil, e.fsm, "", nil)
	t.Cleanup(srv.Close)
	for _, f := range setup {
		f(srv) // before serving
	}
	srv.SetTopology(e.topo)
	srv.SetChanges(e.changes)
	g := grpc.NewServer(grpc.ChainStreamInterceptor(func(s any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(s, ss)
		e.ended <- err
		return err
	}))
	e.client = serveOracle(t, g, srv)
	return e
}

// serveOracle serves srv's capacity oracle on g at a loopback port until the
// test ends, and returns a client of it.
func serveOracle(t *testing.T, g *grpc.Server, srv *Server, opts ...grpc.DialOption) pb.CapacityOracleClient {
	t.Helper()
	pb.RegisterCapacityOracleServer(g, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewCapacityOracleClient(conn)
}

func (e *watchEnv) apply(cmd *fsmpb.Command) *fsmpb.ApplyResult {
	e.t.Helper()
	e.index++
	b, err := fsm.Encode(int64(e.index), cmd)
	if err != nil {
		e.t.Fatal(err)
	}
	res := e.fsm.Apply(fsm.Entry{Index: e.index, Command: true, Data: b}).(*fsmpb.ApplyResult)
	if res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_NONE {
		e.t.Fatalf("apply %v: %s", cmd, res.Error)
	}
	return res
}

func (e *watchEnv) watch(ctx context.Context, req *pb.WatchCapacityRequest) pb.CapacityOracle_WatchCapacityClient {
	e.t.Helper()
	st, err := e.client.WatchCapacity(ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// next receives one update, failing after a deadline.
func next(t *testing.T, st pb.CapacityOracle_WatchCapacityClient) *pb.CapacityUpdate {
	t.Helper()
	type r struct {
		u   *pb.CapacityUpdate
		err error
	}
	ch := make(chan r, 1)
	go func() { u, err := st.Recv(); ch <- r{u, err} }()
	select {
	case got := <-ch:
		if got.err != nil {
			t.Fatalf("receive: %v", got.err)
		}
		return got.u
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return nil
}

func vol(u *pb.CapacityUpdate, id uint32) *pb.VolumeCapacity {
	for _, v := range u.Volumes {
		if v.VolumeId == id {
			return v
		}
	}
	return nil
}

func TestWatchCapacityValidation(t *testing.T) {
	e := newWatchEnv(t)
	many := make([]uint32, MaxOracleIDs+1)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	manyServers := make([]string, MaxOracleIDs+1)
	for i := range manyServers {
		manyServers[i] = "10.0.0.1:8080"
	}
	cases := []struct {
		name string
		req  *pb.WatchCapacityRequest
		want string
	}{
		{"empty", &pb.WatchCapacityRequest{}, "no volume ids or servers given"},
		{"too many volumes", &pb.WatchCapacityRequest{VolumeIds: many}, "at most 10000"},
		{"too many servers", &pb.WatchCapacityRequest{Servers: manyServers}, "at most 10000"},
		{"zero volume", &pb.WatchCapacityRequest{VolumeIds: []uint32{0}}, "greater than 0"},
		{"empty server", &pb.WatchCapacityRequest{Servers: []string{" "}}, "server name is empty"},
		{"unknown volume", &pb.WatchCapacityRequest{VolumeIds: []uint32{7, 99}}, "volume 99 is not in the master's topology"},
		{"unknown server", &pb.WatchCapacityRequest{Servers: []string{"10.0.0.9:8080"}}, "server 10.0.0.9:8080 is not in the master's topology"},
	}
	for _, c := range cases {
		st := e.watch(context.Background(), c.req)
		_, err := st.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("%s: got %v, want InvalidArgument mentioning %q", c.name, err, c.want)
		}
	}
}

func TestWatchCapacityPreconditions(t *testing.T) {
	f := fsm.New()
	srv := NewServer(nil, f, "", nil)
	defer srv.Close()
	c := serveOracle(t, grpc.NewServer(), srv)
	recvErr := func() error {
		st, err := c.WatchCapacity(context.Background(), &pb.WatchCapacityRequest{VolumeIds: []uint32{7}})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	wantCode(t, "no master", recvErr(), codes.FailedPrecondition)
	srv.SetTopology(&fixedTopology{})
	wantCode(t, "topology not fetched yet", recvErr(), codes.Unavailable)
	srv.SetTopology(oracleTopology(100 * oracleMiB))
	wantCode(t, "no change source", recvErr(), codes.FailedPrecondition)
}

// TestWatchCapacitySendsOnlyChanges: the first update holds everything;
// later ones only what changed, for commands and for a new topology, and a
// notification that changes nothing sends nothing.
func TestWatchCapacitySendsOnlyChanges(t *testing.T) {
	e := newWatchEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := e.watch(ctx, &pb.WatchCapacityRequest{VolumeIds: []uint32{7, 8, 7}, Servers: []string{"10.0.0.1:8080", "10.0.0.3:8080"}})

	first := next(t, st)
	if len(first.Volumes) != 2 || len(first.Servers) != 2 || first.TopologyAt == 0 {
		t.Fatalf("first update: %d volumes, %d servers, topology_at %d; want 2, 2 and a time", len(first.Volumes), len(first.Servers), first.TopologyAt)
	}
	if v := vol(first, 7); v == nil || v.ProjectedSize != 100*oracleMiB || len(v.Adjustments) != 0 {
		t.Fatalf("volume 7 first: %v", v)
	}

	// A vacuum of volume 7: only volume 7 and server 10.0.0.1 (holding a
	// replica) change; 10.0.0.3 and volume 8 stay as they were.
	e.apply(&fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7}}})
	e.changes.fire()
	u := next(t, st)
	if len(u.Volumes) != 1 || u.Volumes[0].VolumeId != 7 {
		t.Fatalf("after submit: volumes %v; want only volume 7", u.Volumes)
	}
	v := u.Volumes[0]
	if v.ProjectedSize != 70*oracleMiB || len(v.Adjustments) != 1 || v.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS || v.Adjustments[0].DeltaBytes != -30*oracleMiB {
		t.Fatalf("volume 7 after submit: %v", v)
	}
	if len(u.Servers) != 1 || u.Servers[0].Server != "10.0.0.1:8080" || u.Servers[0].Disks[0].Projected.VolumeBytes != 120*oracleMiB {
		t.Fatalf("servers after submit: %v; want only 10.0.0.1:8080 projected at 120 MiB", u.Servers)
	}
	if u.AppliedIndex != e.index {
		t.Fatalf("applied index %d, want %d", u.AppliedIndex, e.index)
	}

	// Nothing new for this node: no message. Then a new topology (the
	// master now says 90 MiB): volume 7 and server 10.0.0.1 again. Either
	// round may see the new topology; exactly one message results.
	e.changes.fire()
	e.topo.mu.Lock()
	fresh := oracleTopology(90 * oracleMiB)
	e.topo.topo, e.topo.at = fresh.topo, fresh.at.Add(time.Second)
	e.topo.mu.Unlock()
	e.changes.fire()
	u = next(t, st)
	if v := vol(u, 7); len(u.Volumes) != 1 || v == nil || v.MasterSize != 90*oracleMiB || v.ProjectedSize != 60*oracleMiB {
		t.Fatalf("after the new topology: %v (the notification that changed nothing must not send)", u.Volumes)
	}
	if u.TopologyAt != stamp(fresh.at.Add(time.Second)) {
		t.Fatalf("topology_at %d, want the new fetch time", u.TopologyAt)
	}
}

// TestWatchCapacityCoalesces: many commands applied while the watch waits
// (a slow client, a burst) give one update with the latest state.
func TestWatchCapacityCoalesces(t *testing.T) {
	e := newWatchEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := e.watch(ctx, &pb.WatchCapacityRequest{VolumeIds: []uint32{7}})
	next(t, st)
	var last uint64
	for i := 0; i < 50; i++ {
		res := e.apply(&fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7}}})
		last = res.Task.GetId()
		if i < 49 {
			e.apply(&fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: last, Reason: "burst"}}})
		}
	}
	e.changes.fire()
	u := next(t, st)
	v := vol(u, 7)
	if v == nil || len(v.Adjustments) != 1 || v.Adjustments[0].TaskId != last || u.AppliedIndex != e.index {
		t.Fatalf("after a burst of 99 commands: %v at index %d; want task %d's adjustment at index %d", v, u.AppliedIndex, last, e.index)
	}
}

// TestWatchCapacityVacuumLifecycle: IN_PROGRESS, then COMMITTED_UNREPORTED
// once completed, then no adjustment once the master shows the new size.
func TestWatchCapacityVacuumLifecycle(t *testing.T) {
	e := newWatchEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := e.watch(ctx, &pb.WatchCapacityRequest{VolumeIds: []uint32{7}})
	next(t, st)
	step := func(what string, cmds ...*fsmpb.Command) *pb.VolumeCapacity {
		t.Helper()
		for _, c := range cmds {
			e.apply(c)
		}
		e.changes.fire()
		v := vol(next(t, st), 7)
		if v == nil {
			t.Fatalf("%s: no volume 7 in the update", what)
		}
		return v
	}
	sub := e.apply(&fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7}}})
	id := sub.Task.Id
	v := step("submitted")
	if len(v.Adjustments) != 1 || v.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS {
		t.Fatalf("submitted: %v", v)
	}
	asg := e.apply(&fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: id, WorkerId: "w1"}}})
	fence := asg.Task.Fence
	v = step("completed",
		&fsmpb.Command{Body: &fsmpb.Command_StartTask{StartTask: &fsmpb.StartTask{TaskId: id, Fence: fence}}},
		&fsmpb.Command{Body: &fsmpb.Command_CompleteTask{CompleteTask: &fsmpb.CompleteTask{TaskId: id, Fence: fence, Change: &fsmpb.CapacityChange{
			TaskId: id, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7, OldSize: 100 * oracleMiB, NewSize: 70 * oracleMiB}}}})
	if v.ProjectedSize != 70*oracleMiB || len(v.Adjustments) != 1 || v.Adjustments[0].Kind != pb.Adjustment_COMMITTED_UNREPORTED {
		t.Fatalf("completed: %v", v)
	}
	e.topo.mu.Lock()
	fresh := oracleTopology(70 * oracleMiB)
	e.topo.topo = fresh.topo
	e.topo.mu.Unlock()
	v = step("reported", &fsmpb.Command{Body: &fsmpb.Command_RetireCapacityChanges{RetireCapacityChanges: &fsmpb.RetireCapacityChanges{TaskIds: []uint64{id}}}})
	if v.MasterSize != 70*oracleMiB || v.ProjectedSize != 70*oracleMiB || len(v.Adjustments) != 0 {
		t.Fatalf("reported: %v", v)
	}
}

// TestWatchCapacityEnds: a client cancelling ends the handler; so does the
// node shutting down, with Unavailable; a volume that leaves the topology
// is reported missing once.
func TestWatchCapacityEnds(t *testing.T) {
	e := newWatchEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	st := e.watch(ctx, &pb.WatchCapacityRequest{VolumeIds: []uint32{7, 8}})
	next(t, st)
	cancel()
	select {
	case err := <-e.ended:
		wantCode(t, "handler after cancel", err, codes.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client cancelled")
	}

	st = e.watch(context.Background(), &pb.WatchCapacityRequest{VolumeIds: []uint32{7, 8}})
	next(t, st)
	e.topo.mu.Lock()
	e.topo.topo = oracleTopology(100 * oracleMiB).topo
	delete(e.topo.topo.Volumes, 8)
	e.topo.mu.Unlock()
	e.changes.fire()
	u := next(t, st)
	if len(u.Volumes) != 0 || len(u.MissingVolumeIds) != 1 || u.MissingVolumeIds[0] != 8 {
		t.Fatalf("after volume 8 left the topology: volumes %v, missing %v", u.Volumes, u.MissingVolumeIds)
	}
	close(e.changes.done)
	_, err := st.Recv()
	wantCode(t, "stream at shutdown", err, codes.Unavailable)
	if err := <-e.ended; status.Code(err) != codes.Unavailable {
		t.Fatalf("handler at shutdown returned %v", err)
	}
}

func TestChangeFeed(t *testing.T) {
	f := NewChangeFeed()
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any notification")
	default:
	}
	f.Notify()
	f.Notify()
	<-ch
	if f.Generation() != 2 {
		t.Fatalf("generation %d, want 2", f.Generation())
	}
	after := f.Changed()
	select {
	case <-after:
		t.Fatal("a channel taken after the notifications is already closed")
	default:
	}
	f.Close()
	f.Close()
	<-f.Done()
	f.Notify() // no panic after Close
}

// TestWatchCapacitySlowClient: with the real feed wired to the FSM's apply
// callback, a client that does not read blocks nothing: thousands of
// commands apply at once, and when the client reads again it catches up to
// the latest projection instead of every intermediate one.
func TestWatchCapacitySlowClient(t *testing.T) {
	e := newWatchEnv(t)
	feed := NewChangeFeed()
	e.fsm.OnApply(func(uint64) { feed.Notify() })
	srv := NewServer(nil, e.fsm, "", nil)
	t.Cleanup(srv.Close)
	srv.SetTopology(e.topo)
	srv.SetChanges(feed)
	client := serveOracle(t, grpc.NewServer(), srv, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Volumes 7 and 8 on 10.0.0.1, asked for many times over: large updates.
	ids := []uint32{7, 8}
	st, err := client.WatchCapacity(ctx, &pb.WatchCapacityRequest{VolumeIds: ids, Servers: []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	next(t, st)

	const n = 3000
	applied := make(chan time.Duration, 1)
	go func() {
		begin := time.Now()
		var last uint64
		for i := 0; i < n; i++ {
			vol := uint32(7 + i%2)
			res := e.apply(&fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vol}}})
			last = res.Task.GetId()
			if i < n-2 {
				e.apply(&fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: last, Reason: "churn"}}})
			}
		}
		applied <- time.Since(begin)
	}()
	select {
	case d := <-applied:
		t.Logf("%d commands applied in %s while the client did not read", 2*n-2, d)
	case <-time.After(30 * time.Second):
		t.Fatal("applying commands blocked behind a client that does not read")
	}
	final := e.index
	received := 1
	for {
		u := next(t, st)
		received++
		if u.AppliedIndex == final {
			if v := vol(u, 7); v != nil && (len(v.Adjustments) != 1 || v.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS) {
				t.Fatalf("volume 7 at the end: %v", v)
			}
			break
		}
		if u.AppliedIndex > final {
			t.Fatalf("update at index %d beyond the last applied %d", u.AppliedIndex, final)
		}
	}
	if received > n {
		t.Fatalf("%d updates for %d commands: intermediate states were queued, not skipped", received, 2*n-2)
	}
	t.Logf("%d updates for %d commands", received, 2*n-2)
}
