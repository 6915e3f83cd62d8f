package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

func TestLockGate(t *testing.T) {
	down := errors.New("connection refused")
	now := time.Unix(1_700_000_000, 0)
	within, past := now.Add(time.Second), now.Add(-time.Millisecond)
	for _, tc := range []struct {
		name           string
		lock           seaweed.LockState
		shell          OtherLock
		detect, assign bool
		paused         []string // substrings of Gate.Paused ("" when not paused)
	}{
		{name: "ours", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within}, detect: true, assign: true},
		{name: "ours, but no renewal confirmed within the lease (a process pause)", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: past},
			paused: []string{"no renewal confirmed"}},
		{name: "ours from a new master leader, the old one's leases not yet lapsed", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within, From: within},
			paused: []string{"new master leader", "previous leader's leases"}},
		{name: "ours from a new master leader, past From", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within, From: past}, detect: true, assign: true},
		{name: "master down, lock was ours from a new master leader before From", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockOurs, Err: down, Until: within, From: within},
			paused: []string{"does not answer"}},
		{name: "ours, token lost", lock: seaweed.LockState{Status: seaweed.LockLost, Holder: "groundskeeper a1"},
			paused: []string{"ours, token lost", "waiting for the lease to lapse"}},
		{name: "master down, token lost", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockLost, Holder: "groundskeeper a1", Err: down},
			paused: []string{"token lost", "does not answer"}},
		{name: "weed admin holds it", lock: seaweed.LockState{Status: seaweed.LockOther, Holder: "admin-server"},
			paused: []string{`"admin-server"`, "held by"}},
		{name: "holder not named", lock: seaweed.LockState{Status: seaweed.LockOther},
			paused: []string{"another client"}},
		{name: "a former leader's lease not yet run out", lock: seaweed.LockState{Status: seaweed.LockOther, Holder: "groundskeeper a2"},
			paused: []string{`"groundskeeper a2"`}},
		{name: "no answer yet", lock: seaweed.LockState{Status: seaweed.LockUnknown},
			paused: []string{"waiting for"}},
		{name: "master down, lock was ours, within its lease", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockOurs, Err: down, Until: within},
			assign: true, paused: []string{"detection paused"}},
		{name: "master down, lock was ours, past its lease", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockOurs, Err: down, Until: past},
			paused: []string{"does not answer", "lease of its last renewal has run out"}},
		{name: "master down, lock was held elsewhere", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockOther, Holder: "admin-server", Err: down},
			paused: []string{`"admin-server"`, "does not answer"}},
		{name: "ours, shell lock held by weed admin running a job", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within},
			shell: OtherLock{Held: true, Holder: "admin-plugin"}, paused: []string{`"shell"`, `"admin-plugin"`}},
		{name: "shell lock held, its holder not named", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within},
			shell: OtherLock{Held: true}, paused: []string{`"shell"`, "another client"}},
		{name: "shell lock held, master down since, lock was ours", lock: seaweed.LockState{Status: seaweed.LockUnknown, Last: seaweed.LockOurs, Err: down, Until: within},
			shell: OtherLock{Held: true, Holder: "shell", Err: down}, paused: []string{`"shell"`, "detection paused"}},
		{name: "shell lock free, the last ask failed", lock: seaweed.LockState{Status: seaweed.LockOurs, Holder: "groundskeeper a1", Until: within},
			shell: OtherLock{Err: down}, detect: true, assign: true},
		{name: "both held elsewhere", lock: seaweed.LockState{Status: seaweed.LockOther, Holder: "admin-server"},
			shell: OtherLock{Held: true, Holder: "admin-plugin"}, paused: []string{`"admin-plugin"`, `"admin-server"`}},
		{name: "master down from the start", lock: seaweed.LockState{Status: seaweed.LockUnknown, Err: down},
			paused: []string{"waiting for"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := LockGate(tc.lock, tc.shell, now)
			if g.Detect != tc.detect || g.Assign != tc.assign {
				t.Errorf("LockGate(%+v) detect %v assign %v; want %v %v", tc.lock, g.Detect, g.Assign, tc.detect, tc.assign)
			}
			if (g.Paused == "") != (len(tc.paused) == 0) || !contains(g.Paused, tc.paused...) {
				t.Errorf("LockGate(%+v).Paused = %q; want it to mention %q", tc.lock, g.Paused, tc.paused)
			}
		})
	}
}

// syncApplier is fsmApplier for a running scheduler, whose rounds propose
// from several goroutines.
type syncApplier struct {
	mu sync.Mutex
	a  fsmApplier
}

func (s *syncApplier) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a.at = time.Now()
	return s.a.Apply(ctx, cmd)
}

// otherHolder holds the admin lock as `weed admin` does (its presence lock:
// lock "admin-server", client "admin-server", renewed every 4 s with the
// token of the last grant), straight through the master's gRPC API.
type otherHolder struct {
	t     *testing.T
	conn  *grpc.ClientConn
	c     master_pb.SeaweedClient
	stop  chan struct{}
	done  chan struct{}
	token int64
	ts    int64
	name  string
}

func holdAdminLock(t *testing.T, masterGRPC string, renewEvery time.Duration) *otherHolder {
	t.Helper()
	return holdLock(t, masterGRPC, seaweed.AdminLockName, "admin-server", renewEvery)
}

// holdLock holds the named lock as client, as SeaweedFS's exclusive_locks
// does (`weed shell`'s `lock`: "shell"; weed admin's jobs: "shell" as
// "admin-plugin").
func holdLock(t *testing.T, masterGRPC, name, client string, renewEvery time.Duration) *otherHolder {
	t.Helper()
	conn, err := grpc.NewClient(masterGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h := &otherHolder{t: t, conn: conn, c: master_pb.NewSeaweedClient(conn), stop: make(chan struct{}), done: make(chan struct{}), name: name}
	t.Cleanup(func() { h.crash(); conn.Close() })
	lease := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := h.c.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{PreviousToken: h.token, PreviousLockTime: h.ts,
			LockName: name, ClientName: client})
		if err == nil {
			h.token, h.ts = resp.Token, resp.LockTsNs
		}
		return err
	}
	if err := lease(); err != nil {
		t.Fatalf("take the %s lock as %s: %v", name, client, err)
	}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(renewEvery)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				if err := lease(); err != nil {
					t.Errorf("renew the other client's admin lock: %v", err)
					return
				}
			}
		}
	}()
	return h
}

// crash stops renewing without releasing: the lease runs out on the master.
func (h *otherHolder) crash() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// release stops renewing and releases the lock, as `weed admin` does on a
// clean shutdown.
func (h *otherHolder) release() {
	h.crash()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := h.c.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{PreviousToken: h.token, PreviousLockTime: h.ts, LockName: h.name}); err != nil {
		h.t.Fatalf("release the other client's admin lock: %v", err)
	}
}

// vacuumConfig: a leader that polls every 100 ms and vacuums volumes of
// 30 % garbage or more, and nothing else.
var vacuumConfig = Config{NodeID: "a1", DetectInterval: 100 * time.Millisecond, Lease: time.Hour,
	Thresholds: Thresholds{VacuumGarbage: 0.3, ECFullness: 0.95, ECQuietFor: time.Hour, ECMinSizeMB: 30, BalanceImbalance: 1e9}}

// garbageSpec: a volume half of whose bytes are deleted.
var garbageSpec = sim.VolumeSpec{Size: 4 << 20, FileCount: 400, DeletedBytes: 2 << 20, DeleteCount: 200}

// volumePair adds a volume of spec on each of c's first two servers.
func volumePair(t *testing.T, c *sim.Cluster, spec sim.VolumeSpec) (onFirst, onSecond uint32) {
	t.Helper()
	for i, vol := range []*uint32{&onFirst, &onSecond} {
		spec.Servers = []int{i}
		v, err := c.AddVolume(spec)
		if err != nil {
			t.Fatal(err)
		}
		*vol = v
	}
	return onFirst, onSecond
}

// newLeader builds a scheduler of cfg against master, applying to an
// FSM of its own; it does not run it.
func newLeader(master *seaweed.Master, cfg Config) (*Scheduler, *fsm.FSM) {
	f := fsm.New()
	return New(cfg, &syncApplier{a: fsmApplier{f: f}}, f, master), f
}

// addVacuumWorker connects a vacuum worker "w1" (4 slots) to s; what s
// sends it waits in the session's out channel.
func addVacuumWorker(s *Scheduler) *Session {
	sess := &Session{id: "w1", caps: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, max: 4,
		out: make(chan *pb.AdminMessage, 16), done: make(chan struct{})}
	s.mu.Lock()
	s.sessions["w1"], s.lastSeen["w1"] = sess, time.Now()
	s.mu.Unlock()
	return sess
}

// runScheduler runs s until the test ends, or until stop.
func runScheduler(t *testing.T, s *Scheduler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Run(ctx) }()
	stop = func() { cancel(); <-stopped }
	t.Cleanup(stop)
	return stop
}

// submitManualVacuum submits a vacuum of vol as an operator does.
func submitManualVacuum(t *testing.T, s *Scheduler, vol uint32) {
	t.Helper()
	if _, err := s.propose(context.Background(), fsm.SubmitCmd(&fsmpb.SubmitTask{
		Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vol, Origin: "manual"})); err != nil {
		t.Fatal(err)
	}
}

// waitFivePolls waits for five polls of a complete topology during which
// cond held, the state named by held: five rounds that would each have
// detected and assigned.
func waitFivePolls(t *testing.T, s *Scheduler, held string, cond func(*pb.Maintenance) bool) {
	t.Helper()
	var polls []int64
	testutil.Eventually(t, 20*time.Second, "five polls of a complete topology with "+held, func() (bool, string) {
		st, ok := s.Status()
		if !ok || !cond(st) {
			return false, st.String()
		}
		if len(polls) == 0 || polls[len(polls)-1] != st.LastPoll {
			polls = append(polls, st.LastPoll)
		}
		return len(polls) >= 5, st.String()
	})
}

// taskStates returns the state of each volume's task in f.
func taskStates(f *fsm.FSM) map[uint32]fsmpb.TaskState {
	byVol := map[uint32]fsmpb.TaskState{}
	f.Read(func(st *fsm.State) {
		for _, tk := range st.Tasks(fsm.TaskFilter{}) {
			byVol[tk.VolumeId] = tk.State
		}
	})
	return byVol
}

// TestPausedWhileAdminLockHeldElsewhere: a leader that finds SeaweedFS's
// admin lock held by another process (a `weed admin`) detects nothing and
// assigns nothing, manual tasks included, and says so in its status; once
// the other process releases the lock, or its lease runs out after it died,
// the leader takes the lock and the work goes out.
func TestPausedWhileAdminLockHeldElsewhere(t *testing.T) {
	for _, ends := range []string{"released", "expired"} {
		t.Run(ends, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Servers, cfg.AdminLockDuration, cfg.MasterRefillDelay = 2, 2*time.Second, 100*time.Millisecond
			c := simtest.Start(t, cfg)
			detected, manual := volumePair(t, c, garbageSpec)
			other := holdAdminLock(t, c.MasterServerAddress().GRPC, 500*time.Millisecond)

			s, f := newLeader(simtest.Master(t, c), vacuumConfig)
			submitManualVacuum(t, s, manual)
			sess := addVacuumWorker(s)
			runScheduler(t, s)

			// Several polls of a complete topology while the lock is held
			// elsewhere: each would have detected and assigned.
			waitFivePolls(t, s, "the admin lock held elsewhere", func(st *pb.Maintenance) bool {
				return st.MasterState == "ok" && st.AdminLock == "held elsewhere"
			})
			st, _ := s.Status()
			if st.AdminLockHeld || st.AdminLockHolder != "admin-server" || st.AdminLockSince == 0 ||
				!st.DetectionPaused || !st.AssignmentPaused || !contains(st.Paused, `"admin-server"`) {
				t.Errorf("status while another process holds the lock: %v; want held elsewhere by admin-server, since set, both paused", st)
			}
			var tasks []*fsmpb.Task
			f.Read(func(st *fsm.State) { tasks = st.Tasks(fsm.TaskFilter{}) })
			if len(tasks) != 1 || tasks[0].State != fsmpb.TaskState_TASK_STATE_PENDING {
				t.Fatalf("tasks while another process holds the admin lock: %v; want only the manual one, pending", tasks)
			}
			if len(sess.out) != 0 {
				t.Fatalf("%d messages sent to the worker while another process holds the admin lock; want none", len(sess.out))
			}
			if holder, held := c.AdminLock(seaweed.AdminLockName); !held || holder != "admin-server" {
				t.Fatalf("the master says the lock is held %v by %q; want the other process to keep it", held, holder)
			}

			if ends == "released" {
				other.release()
			} else {
				other.crash()
			}
			testutil.Eventually(t, 20*time.Second, "the detected and the manual vacuum assigned once the lock is ours", func() (bool, string) {
				byVol := taskStates(f)
				ok := byVol[detected] == fsmpb.TaskState_TASK_STATE_ASSIGNED && byVol[manual] == fsmpb.TaskState_TASK_STATE_ASSIGNED
				return ok, fmt.Sprint(byVol)
			})
			st, _ = s.Status()
			if !st.AdminLockHeld || st.AdminLock != "ours" || st.AdminLockHolder != "groundskeeper a1" || st.Paused != "" || st.DetectionPaused || st.AssignmentPaused {
				t.Errorf("status once the lock is ours: %v", st)
			}
			if holder, held := c.AdminLock(seaweed.AdminLockName); !held || holder != "groundskeeper a1" {
				t.Errorf("the master says the lock is held %v by %q; want groundskeeper a1", held, holder)
			}
			if len(sess.out) != 2 {
				t.Errorf("%d messages sent to the worker; want the two assignments", len(sess.out))
			}
		})
	}
}

// TestAssignmentStopsWhenTheLockLeaseRunsOut: with the master gone (as our
// --master losing its election: another master leader, where a `weed admin`
// may take the lock) vacuums already detected still go out while the lease
// of our last confirmed renewal runs, and not after it: once it has run out
// another process may hold the lock on a master we do not reach.
func TestAssignmentStopsWhenTheLockLeaseRunsOut(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers = 2 // the lease: 10 s, as SeaweedFS
	c := simtest.Start(t, cfg)
	early, late := volumePair(t, c, sim.VolumeSpec{Size: 4 << 20, FileCount: 400})
	s, f := newLeader(simtest.Master(t, c), vacuumConfig)
	addVacuumWorker(s)
	runScheduler(t, s)
	testutil.Eventually(t, 20*time.Second, "the lock ours and a complete topology", func() (bool, string) {
		st, ok := s.Status()
		return ok && st.AdminLockHeld && st.MasterState == "ok" && st.Volumes == 2, st.String()
	})
	state := func(vol uint32) fsmpb.TaskState {
		var tasks []*fsmpb.Task
		f.Read(func(st *fsm.State) { tasks = st.Tasks(fsm.TaskFilter{VolumeID: vol}) })
		if len(tasks) != 1 {
			return fsmpb.TaskState_TASK_STATE_UNSPECIFIED
		}
		return tasks[0].State
	}

	c.StopMaster()
	submitManualVacuum(t, s, early)
	testutil.Eventually(t, 20*time.Second, "a vacuum assigned during the outage, within the lease", func() (bool, string) {
		var tk []*fsmpb.Task
		f.Read(func(st *fsm.State) { tk = st.Tasks(fsm.TaskFilter{VolumeID: early}) })
		return state(early) == fsmpb.TaskState_TASK_STATE_ASSIGNED, fmt.Sprint(tk)
	})
	testutil.Eventually(t, 20*time.Second, "assignment paused once the lease of the last renewal has run out", func() (bool, string) {
		st, _ := s.Status()
		return st.AssignmentPaused && !st.AdminLockHeld && contains(st.Paused, "run out"), st.String()
	})
	submitManualVacuum(t, s, late)
	s.Kick()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if st := state(late); st != fsmpb.TaskState_TASK_STATE_PENDING {
			t.Fatalf("a vacuum submitted after the lease ran out is %v; want it pending", st)
		}
	}
}

// TestPausedWhileShellLockHeld: weed admin runs its jobs, and `weed shell`
// users their commands, under SeaweedFS's shell lock, not admin-server:
// while anybody holds it the leader (holding admin-server) detects and
// assigns nothing, and says who holds it; once it is released the work goes
// out.
func TestPausedWhileShellLockHeld(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.MasterRefillDelay = 2, 100*time.Millisecond
	c := simtest.Start(t, cfg)
	detected, manual := volumePair(t, c, garbageSpec)
	shell := holdLock(t, c.MasterServerAddress().GRPC, seaweed.ShellLockName, "admin-plugin", 500*time.Millisecond)

	s, f := newLeader(simtest.Master(t, c), vacuumConfig)
	submitManualVacuum(t, s, manual)
	sess := addVacuumWorker(s)
	runScheduler(t, s)

	// Several polls of a complete topology with the admin lock ours and
	// the shell lock held: each would have detected and assigned.
	waitFivePolls(t, s, "the admin lock ours", func(st *pb.Maintenance) bool {
		return st.MasterState == "ok" && st.AdminLockHeld && st.Volumes == 2
	})
	var tasks []*fsmpb.Task
	f.Read(func(st *fsm.State) { tasks = st.Tasks(fsm.TaskFilter{}) })
	if len(tasks) != 1 || tasks[0].State != fsmpb.TaskState_TASK_STATE_PENDING || len(sess.out) != 0 {
		t.Fatalf("tasks while the shell lock is held: %v, %d messages to the worker; want only the manual one, pending, none", tasks, len(sess.out))
	}
	st, _ := s.Status()
	if st.ShellLockHolder != "admin-plugin" || st.ShellLockSince == 0 || !st.DetectionPaused || !st.AssignmentPaused || !contains(st.Paused, `"shell"`, `"admin-plugin"`) {
		t.Errorf("status while the shell lock is held: %v; want its holder, since, both paused", st)
	}

	shell.release()
	testutil.Eventually(t, 20*time.Second, "the detected and the manual vacuum assigned once the shell lock is free", func() (bool, string) {
		byVol := taskStates(f)
		return byVol[detected] == fsmpb.TaskState_TASK_STATE_ASSIGNED && byVol[manual] == fsmpb.TaskState_TASK_STATE_ASSIGNED, fmt.Sprint(byVol)
	})
	if st, _ := s.Status(); st.ShellLockHolder != "" || st.Paused != "" {
		t.Errorf("status once the shell lock is free: %v", st)
	}
}

// startLeader runs a scheduler with a vacuum worker's session against the
// simulated master and waits for it to hold the admin lock with the
// master's own vacuum switched off.
func startLeader(t *testing.T, c *sim.Cluster) (s *Scheduler, stop func()) {
	t.Helper()
	s, _ = newLeader(simtest.Master(t, c), Config{NodeID: "a1", DetectInterval: 100 * time.Millisecond, Lease: time.Hour})
	addVacuumWorker(s)
	stop = runScheduler(t, s)
	testutil.Eventually(t, 20*time.Second, "the lock ours and the master's vacuum off", func() (bool, string) {
		st, ok := s.Status()
		_, byPlugin := c.VacuumDisabled()
		return ok && st.AdminLockHeld && st.MasterVacuumOff && byPlugin, st.String()
	})
	return s, stop
}

// TestVacuumSwitchedBackOnBeforeRelease: a leader that stops (leadership
// lost, shutdown) switches the master's own vacuum back on, by plugin as it
// switched it off, while it still holds the admin lock, then releases it.
func TestVacuumSwitchedBackOnBeforeRelease(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers = 1
	c := simtest.Start(t, cfg)
	_, stop := startLeader(t, c)
	// Record the switch as the release reaches the master (the fault only
	// reports it; the release itself happens).
	var atRelease []bool
	c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "ReleaseAdminToken", FailNext: 1, After: true, OnFire: func() {
		_, byPlugin := c.VacuumDisabled()
		atRelease = append(atRelease, byPlugin)
	}})
	stop()
	if op, byPlugin := c.VacuumDisabled(); op || byPlugin {
		t.Fatalf("after the leader stopped the master's vacuum is disabled (by operator %v, by plugin %v); want it back on", op, byPlugin)
	}
	if len(atRelease) != 1 || atRelease[0] {
		t.Fatalf("the master's vacuum at the release, disabled by plugin: %v; want one release, after it was back on", atRelease)
	}
	if holder, held := c.AdminLock(seaweed.AdminLockName); held {
		t.Fatalf("the admin lock is still held by %q", holder)
	}
}

// TestVacuumNotOursWhileLockHeldElsewhere: once another process has taken
// the admin lock (our lease ran out), the master's vacuum is its to set:
// status says so instead of our last, stale, switch.
func TestVacuumNotOursWhileLockHeldElsewhere(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.AdminLockDuration = 1, 2*time.Second
	c := simtest.Start(t, cfg)
	s, _ := startLeader(t, c)
	// The simulated lease (2 s) runs out between our renewals (every 4 s):
	// weed admin takes the lock in that gap.
	conn, err := grpc.NewClient(c.MasterServerAddress().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	mc := master_pb.NewSeaweedClient(conn)
	var token, ts int64
	renew := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := mc.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{PreviousToken: token, PreviousLockTime: ts,
			LockName: seaweed.AdminLockName, ClientName: "admin-server"})
		if err == nil {
			token, ts = resp.Token, resp.LockTsNs
		}
		return err
	}
	testutil.Eventually(t, 20*time.Second, "weed admin to take the lock, then us to see it held elsewhere", func() (bool, string) {
		if err := renew(); err != nil {
			return false, err.Error()
		}
		st, _ := s.Status()
		return st.AdminLock == "held elsewhere", st.String()
	})
	st, _ := s.Status()
	if st.MasterVacuumOff || st.MasterVacuum != MasterVacuumNotOurs {
		t.Fatalf("status while another process holds the admin lock: vacuum off %v, %q; want not ours to set", st.MasterVacuumOff, st.MasterVacuum)
	}
}

// TestLockChangesDoNotFloodDetection: each change of the admin lock brings
// a detection round (a full topology read) forward, but no sooner than
// half a detection interval after the last, so a master flapping the lock
// every few milliseconds costs no extra reads within that half interval.
func TestLockChangesDoNotFloodDetection(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers = 1
	c := simtest.Start(t, cfg)
	const interval = 10 * time.Second
	master := simtest.Master(t, c)
	s, _ := newLeader(master, Config{NodeID: "a1", DetectInterval: interval})
	s.view.lock = master.NewAdminLock("groundskeeper a1")
	changed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.detectLoop(ctx, changed) }()
	t.Cleanup(func() { cancel(); <-done })
	reads := func() int { return c.CallCount("VolumeList") }
	testutil.Eventually(t, 10*time.Second, "the first detection round", func() (bool, string) { return reads() == 1, fmt.Sprint(reads()) })
	start := time.Now()

	// The lock flaps every 10 ms for a second.
	for end := start.Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		select {
		case changed <- struct{}{}:
		case <-time.After(time.Second):
			t.Fatal("the detection loop does not take lock changes")
		}
	}
	if n := reads(); n != 1 {
		t.Fatalf("%d topology reads within a second of flapping lock changes; want only the first round's", n)
	}
	// A change brings the next round forward to half an interval after
	// the last, well before the full interval.
	testutil.Eventually(t, interval, "a round brought forward by the lock changes", func() (bool, string) { return reads() == 2, fmt.Sprint(reads()) })
	if d := time.Since(start); d < interval/2-time.Second || d >= interval-time.Second {
		t.Fatalf("the round after the lock changes came %v after the first; want about %v", d, interval/2)
	}
}
