package seaweed_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
)

func TestParseMasters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string // HTTP addresses
		wantErr string
	}{
		{in: "m1:9333", want: []string{"m1:9333"}},
		{in: " m1:9333 , m2:9334.19444,m3:9335", want: []string{"m1:9333", "m2:9334", "m3:9335"}},
		{in: "m1:9333,,m2:9333", wantErr: "entry 2"},
		{in: "m1:9333,", wantErr: "entry 2"},
		{in: "", wantErr: "entry 1"},
		{in: "m1:9333,m1:9333", wantErr: "given twice"},
		{in: "m1:9333,m1:9333.19999", wantErr: "given twice"},
		{in: "m1:9333.20000,m1:9334.20000", wantErr: "given twice"},
		{in: "m1:9333,m2", wantErr: "not host:port"},
	} {
		got, err := seaweed.ParseMasters(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMasters(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseMasters(%q): %v", tc.in, err)
			continue
		}
		var http []string
		for _, a := range got {
			http = append(http, a.HTTP)
		}
		if fmt.Sprint(http) != fmt.Sprint(tc.want) {
			t.Errorf("ParseMasters(%q) = %v, want %v", tc.in, http, tc.want)
		}
	}
	if _, err := seaweed.DialMaster("m1:9333,m1:9333"); err == nil || !strings.HasPrefix(err.Error(), "--master: ") {
		t.Errorf("DialMaster with a duplicate: %v, want a --master error", err)
	}
}

// fakeMasters is a SeaweedFS master cluster: one leader (or none), the
// others refusing leader-only calls as SeaweedFS's followers do. The admin
// lock lives in each master's memory, as in SeaweedFS.
type fakeMasters struct {
	mu      sync.Mutex
	leader  int    // -1: none
	name    string // what GetMasterConfiguration names the leader; "" the leader's address
	addrs   []string
	servers []*grpc.Server
	locks   []string // client holding the admin lock on each master
	hung    []bool   // masters that answer nothing (a vanished machine)
	lists   []int    // VolumeList answers per master
	// vacuumGate, if set, holds EnableVacuum calls until it is closed.
	vacuumGate chan struct{}
	vacuumIn   chan int // master i received an EnableVacuum
}

type fakeMaster struct {
	master_pb.UnimplementedSeaweedServer
	f *fakeMasters
	i int
}

var errNotLeader = errors.New("raft.Server: Not current leader")

func newFakeMasters(t *testing.T, n, leader int) *fakeMasters {
	t.Helper()
	f := &fakeMasters{leader: leader, locks: make([]string, n), lists: make([]int, n), hung: make([]bool, n)}
	for i := 0; i < n; i++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := lis.Addr().(*net.TCPAddr).Port
		srv := grpc.NewServer()
		master_pb.RegisterSeaweedServer(srv, &fakeMaster{f: f, i: i})
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		f.addrs = append(f.addrs, fmt.Sprintf("127.0.0.1:%d.%d", port, port))
		f.servers = append(f.servers, srv)
	}
	return f
}

func (f *fakeMasters) list(order ...int) string {
	var s []string
	for _, i := range order {
		s = append(s, f.addrs[i])
	}
	return strings.Join(s, ",")
}

func (f *fakeMasters) setLeader(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = i
}

func (f *fakeMasters) kill(i int) { f.servers[i].Stop() }

func (f *fakeMasters) lockHolder(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locks[i]
}

// hang makes master i answer nothing until the caller gives up.
func (f *fakeMasters) hang(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hung[i] = true
}

// wait blocks a hung master's call until its caller gives up.
func (m *fakeMaster) wait(ctx context.Context) error {
	m.f.mu.Lock()
	hung := m.f.hung[m.i]
	m.f.mu.Unlock()
	if hung {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (m *fakeMaster) leads() bool {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	return m.f.leader == m.i
}

func (m *fakeMaster) GetMasterConfiguration(ctx context.Context, _ *master_pb.GetMasterConfigurationRequest) (*master_pb.GetMasterConfigurationResponse, error) {
	if err := m.wait(ctx); err != nil {
		return nil, err
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	resp := &master_pb.GetMasterConfigurationResponse{}
	if m.f.leader >= 0 {
		resp.Leader = m.f.name
		if resp.Leader == "" {
			resp.Leader, _, _ = strings.Cut(m.f.addrs[m.f.leader], ".")
		}
	}
	return resp, nil
}

func (m *fakeMaster) VolumeList(ctx context.Context, _ *master_pb.VolumeListRequest) (*master_pb.VolumeListResponse, error) {
	if err := m.wait(ctx); err != nil {
		return nil, err
	}
	if !m.leads() {
		return nil, errNotLeader
	}
	m.f.mu.Lock()
	m.f.lists[m.i]++
	m.f.mu.Unlock()
	return &master_pb.VolumeListResponse{TopologyInfo: &master_pb.TopologyInfo{}}, nil
}

func (m *fakeMaster) GetAdminLockStatus(ctx context.Context, _ *master_pb.GetAdminLockStatusRequest) (*master_pb.GetAdminLockStatusResponse, error) {
	if err := m.wait(ctx); err != nil {
		return nil, err
	}
	if !m.leads() {
		return nil, errNotLeader
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	return &master_pb.GetAdminLockStatusResponse{IsLocked: m.f.locks[m.i] != "", ClientName: m.f.locks[m.i]}, nil
}

func (m *fakeMaster) LeaseAdminToken(_ context.Context, req *master_pb.LeaseAdminTokenRequest) (*master_pb.LeaseAdminTokenResponse, error) {
	if !m.leads() {
		return nil, errNotLeader
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	if h := m.f.locks[m.i]; h != "" && h != req.ClientName {
		return nil, fmt.Errorf("already locked by %s: ", h)
	}
	m.f.locks[m.i] = req.ClientName
	return &master_pb.LeaseAdminTokenResponse{Token: 1, LockTsNs: 1}, nil
}

func (m *fakeMaster) ReleaseAdminToken(context.Context, *master_pb.ReleaseAdminTokenRequest) (*master_pb.ReleaseAdminTokenResponse, error) {
	if !m.leads() {
		return nil, errNotLeader
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.locks[m.i] = ""
	return &master_pb.ReleaseAdminTokenResponse{}, nil
}

func states(m *seaweed.Master) string {
	var s []string
	for _, st := range m.Masters() {
		s = append(s, st.State)
	}
	return strings.Join(s, ",")
}

func TestMasterFollowsLeader(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 1)
	// A follower first: the leader is found all the same.
	m := dialFake(t, f.list(0, 1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("topology with master 1 leading: %v", err)
	}
	if got := m.Addr().String(); got != f.addrs[1] {
		t.Errorf("Addr = %s, want the leader %s", got, f.addrs[1])
	}
	if got := states(m); got != "follower,leader,follower" {
		t.Errorf("states = %s", got)
	}

	// The leader steps down and stays up: its refusal moves us on.
	f.setLeader(2)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("topology after the leader moved to master 2: %v", err)
	}
	if got := states(m); got != "follower,follower,leader" {
		t.Errorf("states = %s", got)
	}

	// The leader dies: the next call finds the new one.
	f.kill(2)
	f.setLeader(0)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("topology after master 2 died and master 0 leads: %v", err)
	}
	if got := states(m); got != "leader,follower,unreachable" {
		t.Errorf("states = %s", got)
	}
	if got := m.Masters()[2].Err; got == "" {
		t.Error("the dead master has no error")
	}

	// Nobody leads: calls fail, naming every master's state.
	f.setLeader(-1)
	_, err := m.Topology(ctx)
	if !errors.Is(err, seaweed.ErrNoMasterLeader) {
		t.Fatalf("topology with no leader: %v, want ErrNoMasterLeader", err)
	}
	for _, a := range f.addrs {
		host, _, _ := strings.Cut(a, ".")
		if !strings.Contains(err.Error(), host) {
			t.Errorf("error %q does not name master %s", err, host)
		}
	}

	// A leader again: maintenance resumes without help.
	f.setLeader(1)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("topology with master 1 leading again: %v", err)
	}
	if got := m.Addr().String(); got != f.addrs[1] {
		t.Errorf("Addr = %s, want %s", got, f.addrs[1])
	}
}

// The masters name their leader by a name not in our list (a host name
// we were given as an IP): every master that answers is tried.
func TestMasterLeaderNamedOtherwise(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 2)
	f.name = "master-c.example:9333"
	m := dialFake(t, f.list(0, 1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Topology(ctx); err != nil {
		t.Fatal(err)
	}
	if got := states(m); got != "follower,follower,leader" {
		t.Errorf("states = %s", got)
	}
	if got := m.Masters()[0].Leader; got != f.name {
		t.Errorf("master 0 names %q as leader, want %q", got, f.name)
	}
}

// A single master is called whatever it answers, as before lists.
func TestMasterSingleFollower(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 2, 1)
	m := dialFake(t, f.list(0))
	_, err := m.Topology(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Not current leader") {
		t.Fatalf("topology from a lone follower: %v, want its refusal", err)
	}
	if got := states(m); got != "follower" {
		t.Errorf("states = %s", got)
	}
}

// The admin lock lives in the master leader's memory: after the leader
// dies it is taken anew on the next one.
func TestAdminLockFollowsLeader(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m, lock := keepFakeLock(t, f)
	waitLockWithin(t, lock, 20*time.Second, "the lock on master 0", func(seaweed.LockState) bool {
		return f.lockHolder(0) == "gk" && lock.State().Status == seaweed.LockOurs
	})
	f.kill(0)
	f.setLeader(2)
	waitLockWithin(t, lock, 20*time.Second, "the lock on master 2", func(seaweed.LockState) bool {
		return f.lockHolder(2) == "gk" && lock.State().Status == seaweed.LockOurs
	})
	if got := states(m); got != "unreachable,follower,leader" {
		t.Errorf("states = %s", got)
	}
	if h, held, err := m.LockHolder(context.Background(), seaweed.AdminLockName); err != nil || !held || h != "gk" {
		t.Errorf("LockHolder = %q, %v, %v", h, held, err)
	}
}

// Concurrent callers while the leader moves: no races, and once it has
// settled every caller reaches it.
func TestMasterConcurrentCallers(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m := dialFake(t, f.list(0, 1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for round := 0; round < 6; round++ {
		f.setLeader(round % 3)
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.Topology(ctx); err != nil {
					errs <- err
				}
				_ = m.Masters()
				_ = m.Addr()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d (master %d leads): %v", round, round%3, err)
		}
		if got := m.Addr().String(); got != f.addrs[round%3] {
			t.Errorf("round %d: Addr = %s, want %s", round, got, f.addrs[round%3])
		}
	}
}

// The master leader's machine vanishes: calls to it hang rather than being
// refused. The call that times out gives it up, and the next one finds the
// new leader without waiting on it again.
func TestMasterLeaderHangs(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m := dialFake(t, f.list(0, 1, 2))
	if _, err := m.Topology(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.hang(0)
	f.setLeader(1)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := m.Topology(ctx)
	cancel()
	if err == nil {
		t.Fatal("topology from a hung leader succeeded")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Topology(ctx); err != nil {
		t.Fatalf("topology once master 1 leads: %v", err)
	}
	if got := states(m); got != "unreachable,leader,follower" {
		t.Errorf("states = %s", got)
	}
}

// setLock makes client hold the admin lock on master i (another process
// taking it there, as `weed admin` does on a new master leader).
func (f *fakeMasters) setLock(i int, client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locks[i] = client
}

// The admin lock lives in one master leader's memory: once we follow
// another master leader, the lease the old one granted counts for nothing
// (the new one never granted it, and another process may already hold it
// there), whatever its time left. It counts again only once the new leader
// grants it; here another client holds it there, so it never does.
func TestAdminLockLeaseEndsWithItsMasterLeader(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m, lock := keepFakeLock(t, f)
	waitLockWithin(t, lock, 20*time.Second, "the lock to be ours", func(seaweed.LockState) bool { return lock.State().OursAt(time.Now()) })
	deadline := time.Now().Add(20 * time.Second)
	// Master 0 steps down (and stays up); weed admin takes the lock on
	// master 1 before our next renewal; a topology poll finds master 1.
	f.setLeader(1)
	f.setLock(1, "weed-admin")
	if _, err := m.Topology(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := lock.State(); st.OursAt(time.Now()) {
		t.Fatalf("lock still ours after the master leader moved to one that never granted it: %+v", st)
	}
	if held, _ := lock.Held(); held {
		t.Fatal("Held() true after the master leader moved")
	}
	// The keeper asks the new leader and learns who holds it there.
	for st := lock.State(); st.Status != seaweed.LockOther || st.Holder != "weed-admin"; st = lock.State() {
		if time.Now().After(deadline) {
			t.Fatalf("lock state %+v, want held elsewhere by weed-admin", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A new master leader starts with no locks: it grants ours at once, while
// a process that held the lock (or the shell lock) on the old one may
// still believe it does until its next renewal reaches the new leader, and
// the new leader answers "shell lock not held" until then. A lock granted
// after a master leader change therefore counts as ours only once
// SeaweedFS's lease (10 s) has run since we moved: every lease the old
// leader granted has lapsed, and its holders have renewed on the new one.
func TestAdminLockWaitsOutTheOldLeadersLeases(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m, lock := keepFakeLock(t, f)
	waitLockWithin(t, lock, 20*time.Second, "the lock to be ours on the first master leader", func(seaweed.LockState) bool { return lock.State().OursAt(time.Now()) })
	deadline := time.Now().Add(20 * time.Second)
	f.setLeader(1)
	moved := time.Now()
	if _, err := m.Topology(context.Background()); err != nil {
		t.Fatal(err)
	}
	for f.lockHolder(1) != "gk" || lock.State().Status != seaweed.LockOurs {
		if time.Now().After(deadline) {
			t.Fatalf("the lock never granted by the new master leader: %+v", lock.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := lock.State()
	if now := time.Now(); st.OursAt(now) && now.Sub(moved) < 8*time.Second {
		t.Fatalf("a grant %s after the master leader moved counts as ours: %+v", now.Sub(moved), st)
	}
	if st.From.Before(moved.Add(9*time.Second)) || st.OursAt(st.From.Add(-time.Millisecond)) {
		t.Errorf("From = %s after the move, want about 10 s; state %+v", st.From.Sub(moved), st)
	}
	// Renewed on the new leader, it counts from then on.
	waitLockWithin(t, lock, 30*time.Second, "the lock to count as ours on the new master leader", func(seaweed.LockState) bool { return lock.State().OursAt(time.Now()) })
	if d := time.Since(moved); d < 9*time.Second {
		t.Errorf("the lock counted as ours %s after the move", d)
	}
}

// EnableVacuum is accepted by every master, follower or not, as in
// SeaweedFS.
func (m *fakeMaster) EnableVacuum(ctx context.Context, _ *master_pb.EnableVacuumRequest) (*master_pb.EnableVacuumResponse, error) {
	m.f.mu.Lock()
	gate, in := m.f.vacuumGate, m.f.vacuumIn
	m.f.mu.Unlock()
	if in != nil {
		in <- m.i
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &master_pb.EnableVacuumResponse{}, nil
}

// A vacuum switch answered by a master that has meanwhile stepped down
// (followers accept it) does not make us follow that master again after a
// concurrent call found the new leader: only leader-only calls say who
// leads.
func TestMasterVacuumSwitchDoesNotConfirmALeader(t *testing.T) {
	t.Parallel()
	f := newFakeMasters(t, 3, 0)
	m := dialFake(t, f.list(0, 1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Topology(ctx); err != nil {
		t.Fatal(err)
	}
	gate, in := make(chan struct{}), make(chan int, 1)
	f.mu.Lock()
	f.vacuumGate, f.vacuumIn = gate, in
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- m.SetAutoVacuum(ctx, true) }()
	if got := <-in; got != 0 {
		t.Fatalf("vacuum switch sent to master %d, want 0", got)
	}
	// Master 0 steps down while the switch is in flight; a poll finds 1.
	f.setLeader(1)
	if _, err := m.Topology(ctx); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := m.Addr().String(); got != f.addrs[1] {
		t.Errorf("after a follower accepted the vacuum switch, Addr = %s, want the leader %s", got, f.addrs[1])
	}
	if got := states(m); got != "follower,leader,follower" {
		t.Errorf("states = %s", got)
	}
}

// keepFakeLock dials the fake masters 0, 1 and 2 and keeps the admin lock
// as "gk" on them until the test ends.
func keepFakeLock(t *testing.T, f *fakeMasters) (*seaweed.Master, *seaweed.AdminLock) {
	t.Helper()
	m := dialFake(t, f.list(0, 1, 2))
	lock := m.NewAdminLock("gk")
	runLock(t, lock)
	return m, lock
}

// dialFake dials the masters of list, closed when the test ends.
func dialFake(t *testing.T, list string) *seaweed.Master {
	t.Helper()
	m, err := seaweed.DialMaster(list)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
