package integration

// TestRandomizedFaults: the randomized fault harness (docs/architecture.md
// §12.2), which checks the invariants of §9 under faults. Three real
// admin processes and three real worker processes run against a simulated
// SeaweedFS living in the test process, which keeps making maintenance work
// (garbage on volumes, full quiet volumes to erasure code, manual vacuum
// submissions). Round after round the harness injects one fault, lets the
// system run under it, and heals it: kill -9 and restart of the leader, of a
// follower or of a worker, a restart or an outage of the SeaweedFS master,
// SIGSTOP of an admin or a worker around and past its lease then SIGCONT,
// and raft partitions (the leader isolated from both followers, or one follower
// isolated), and, from other files, a volume server lost for good with or
// without a master restart while it is gone (faults_loss_test.go). Afterwards it heals everything, lets the work drain and checks:
//
//   - no two mutating volume-server operations of different task attempts
//     overlap on one volume (the simulator's operation log);
//   - no task ran twice for one detection: an attempt never issues an
//     operation after a later attempt (higher fence) of the same task has
//     issued its first, so the earlier attempt's rollback is complete before
//     the replacement starts; and no two tasks' operation spans on one
//     volume interleave (a second task for a volume runs only after the
//     first's last operation); and in the replicated state no two tasks of
//     one volume are active at the same time (reservation);
//   - no volume lost data, after every round and at the end, and at the end
//     every volume is held exactly as promised (faults_durability_test.go);
//   - every task is terminal;
//   - the three admins report the same state hash at the same index.
//
// GK_FAULT_SEED fixes the seed (printed either way), GK_FAULT_ROUNDS the
// number of rounds (default 200).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

const (
	// Worker liveness of the admins under test: short, so lease expiries
	// fit in a round.
	faultLease     = 1500 * time.Millisecond
	faultGrace     = 1000 * time.Millisecond
	faultHeartbeat = 300 * time.Millisecond
	// faultLeaderWait bounds the wait for a leader after a round healed.
	faultLeaderWait = 30 * time.Second
	// faultDrainTimeout bounds the wait, after the last round, for every
	// task to be terminal and the admins to agree.
	faultDrainTimeout = 3 * time.Minute
	// faultStepDown bounds how long an isolated leader may still call
	// itself leader: raft checks its leader lease (500 ms) every lease, so
	// up to about 1 s, plus slack for a loaded CI machine.
	faultStepDown = 2500 * time.Millisecond
)

type faultKind string

const (
	fkKillLeader    faultKind = "kill9-leader"
	fkKillFollower  faultKind = "kill9-follower"
	fkKillWorker    faultKind = "kill9-worker"
	fkMasterRestart faultKind = "master-restart"
	fkMasterOutage  faultKind = "master-outage"
	fkStopLeader    faultKind = "sigstop-leader"
	fkStopFollower  faultKind = "sigstop-follower"
	fkStopWorker    faultKind = "sigstop-worker"
	fkIsolateLeader faultKind = "partition-leader"
	fkIsolateFollow faultKind = "partition-follower"
	fkNone          faultKind = "none"
)

// faultWeights: how often each kind is drawn. The long kinds (SIGSTOP past
// a lease, leader isolation) are rarer so the whole run stays short.
var faultWeights = []struct {
	kind   faultKind
	weight int
}{
	{fkKillLeader, 12}, {fkKillFollower, 10}, {fkKillWorker, 14}, {fkMasterRestart, 8}, {fkMasterOutage, 8},
	{fkStopLeader, 5}, {fkStopFollower, 4}, {fkStopWorker, 7}, {fkIsolateLeader, 7}, {fkIsolateFollow, 7},
	{fkAdminWiped, 4},     // faults_boot_test.go
	{fkRollingUpgrade, 3}, // faults_versions_test.go
}

// overrideFaultWeights applies GK_FAULT_WEIGHT_<KIND> (the kind in capitals,
// '-' as '_': GK_FAULT_WEIGHT_ADMIN_WIPED=40) to every kind, to run mostly
// one fault while working on it (0 never draws it).
func overrideFaultWeights() error {
	for i, w := range faultWeights {
		name := "GK_FAULT_WEIGHT_" + strings.ToUpper(strings.ReplaceAll(string(w.kind), "-", "_"))
		n, err := envInt(name, uint64(w.weight))
		if err != nil {
			return err
		}
		faultWeights[i].weight = int(n)
	}
	return nil
}

// extraFaults are fault kinds defined in other files (faults_*_test.go),
// registered from their init with registerFault.
var extraFaults = map[faultKind]func(*faultRun){}

func registerFault(kind faultKind, weight int, run func(*faultRun)) {
	faultWeights = append(faultWeights, struct {
		kind   faultKind
		weight int
	}{kind, weight})
	extraFaults[kind] = run
}

// extraFinalChecks are final checks defined in other files: each returns
// how many things it checked and its violations.
var extraFinalChecks []struct {
	name  string
	check func(*faultRun) (int, []string)
}

func registerFinalCheck(name string, check func(*faultRun) (int, []string)) {
	extraFinalChecks = append(extraFinalChecks, struct {
		name  string
		check func(*faultRun) (int, []string)
	}{name, check})
}

// runResets run as a run starts: stats kept by other files begin empty
// (go test -count=2).
var runResets []func()

func registerRunReset(f func()) { runResets = append(runResets, f) }

// roundHooks run after every round (its fault healed), defined in other
// files and registered from their init with registerRoundHook.
var roundHooks []func(*faultRun)

func registerRoundHook(h func(*faultRun)) { roundHooks = append(roundHooks, h) }

// faultAdmin is one admin process with its own loopback IP.
type faultAdmin struct {
	*node
	ip        string
	raftBind  string
	proxy     *raftProxy
	argv      []string
	conn      *grpc.ClientConn
	stopped   bool // SIGSTOPped by the harness
	restarted int
}

type faultWorker struct {
	*node
	argv    []string
	stopped bool
}

// faultRun is the state of one randomized run.
type faultRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	began   time.Time
	sim     *sim.Cluster
	parts   *partitions
	admins  []*faultAdmin
	workers []*faultWorker
	addrs   string

	logMu  sync.Mutex
	events []string

	roundsByKind map[faultKind]int
	round        int
	// windows are the rounds' fault intervals (inject to heal).
	windows []faultWindow
	// retired are the volumes the work generator retired
	// (faults_workmix_test.go).
	retired retiredLog
	// roundVols are the volumes rounds added for themselves
	// (faults_roundvols_test.go).
	roundVols roundVolumes
}

type faultWindow struct {
	kind     faultKind
	from, to time.Time
}

func (r *faultRun) note(format string, args ...any) {
	msg := fmt.Sprintf("%s %7.2fs r%03d ", time.Now().UTC().Format("15:04:05.000"), time.Since(r.began).Seconds(), r.round) + fmt.Sprintf(format, args...)
	r.logMu.Lock()
	r.events = append(r.events, msg)
	r.logMu.Unlock()
	if testing.Verbose() {
		r.t.Log("FAULT " + msg)
	}
}

// fail stops the run with the evidence: the seed, the round, the last
// fault events, and the tail of every process log.
func (r *faultRun) fail(format string, args ...any) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (GK_FAULT_SEED=%d), round %d: ", r.seed, r.seed, r.round)
	fmt.Fprintf(&b, format, args...)
	r.logMu.Lock()
	ev := r.events
	if len(ev) > 30 {
		ev = ev[len(ev)-30:]
	}
	fmt.Fprintf(&b, "\n--- last fault events ---\n%s", strings.Join(ev, "\n"))
	r.logMu.Unlock()
	for _, a := range r.admins {
		fmt.Fprintf(&b, "\n--- %s log tail (%s) ---\n%s", a.ID, a.LogPath, a.logTail(25))
	}
	for _, w := range r.workers {
		fmt.Fprintf(&b, "\n--- %s log tail (%s) ---\n%s", w.ID, w.LogPath, w.logTail(25))
	}
	if dir, err := r.keepEvidence(); err != nil {
		fmt.Fprintf(&b, "\n(could not keep the logs: %v)", err)
	} else {
		fmt.Fprintf(&b, "\n--- whole logs, fault events and op log kept in %s ---", dir)
	}
	r.t.Fatal(b.String())
}

// keepEvidence copies every process log, the fault events and the op log
// to a directory the test's cleanup does not remove.
func (r *faultRun) keepEvidence() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("gk-faults-seed%d-", r.seed))
	if err != nil {
		return "", err
	}
	var nodes []*node
	for _, a := range r.admins {
		nodes = append(nodes, a.node)
	}
	for _, w := range r.workers {
		nodes = append(nodes, w.node)
	}
	for _, n := range nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			return dir, fmt.Errorf("read %s: %w", n.LogPath, err)
		}
		if err := os.WriteFile(filepath.Join(dir, n.ID+".log"), b, 0o644); err != nil {
			return dir, err
		}
	}
	r.logMu.Lock()
	events := strings.Join(r.events, "\n") + "\n"
	r.logMu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "faults.log"), []byte(events), 0o644); err != nil {
		return dir, err
	}
	var ops strings.Builder
	for _, o := range r.sim.OpLog() {
		fmt.Fprintf(&ops, "%s err=%q\n", o, o.Err)
	}
	return dir, os.WriteFile(filepath.Join(dir, "oplog.txt"), []byte(ops.String()), 0o644)
}

func envInt(name string, def uint64) (uint64, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	return n, nil
}

func TestRandomizedFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three admins and three workers through hundreds of faults")
	}
	seed, err := envInt("GK_FAULT_SEED", uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	rounds, err := envInt("GK_FAULT_ROUNDS", 200)
	if err != nil {
		t.Fatal(err)
	}
	if err := overrideFaultWeights(); err != nil {
		t.Fatal(err)
	}
	for _, reset := range runResets {
		reset()
	}
	fmt.Printf("fault harness: seed %d, %d rounds (reproduce with GK_FAULT_SEED=%d GK_FAULT_ROUNDS=%d)\n", seed, rounds, seed, rounds)
	t.Logf("seed %d, %d rounds", seed, rounds)
	r := &faultRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), began: time.Now(),
		parts: newPartitions(), roundsByKind: map[faultKind]int{}}
	r.startSim()
	r.startAdmins()
	r.startWorkers(3)
	t.Cleanup(func() {
		// Stopped processes must be continued to die of SIGKILL promptly.
		for _, a := range r.admins {
			if a.running() {
				_ = a.signal(syscall.SIGCONT)
			}
		}
		for _, w := range r.workers {
			if w.running() {
				_ = w.signal(syscall.SIGCONT)
			}
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	var genWG sync.WaitGroup
	genWG.Add(1)
	go func() { defer genWG.Done(); r.generateWork(ctx) }()
	defer func() { cancel(); genWG.Wait() }()

	r.waitLeader()
	r.waitSomeTaskRunning()
	for r.round = 1; r.round <= int(rounds); r.round++ {
		kind := r.upgradeDue(r.pickKind(), int(rounds))
		r.roundsByKind[kind]++
		from := time.Now()
		r.runRound(kind)
		r.windows = append(r.windows, faultWindow{kind: kind, from: from, to: time.Now()})
		r.endRoundVolumes()
		r.checkProcesses()
		for _, h := range roundHooks {
			h(r)
		}
		r.waitLeader()
	}
	r.round = 0
	cancel()
	genWG.Wait()
	r.healAll()
	r.note("all healed; draining")
	r.waitLossesRepaired()
	r.finalChecks()
}

// ---------------------------------------------------------------------------
// Set-up.

func (r *faultRun) startSim() {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.VolumeSizeLimitMB, cfg.MaxVolumesPerServer = 6, 100, 30
	// One machine per server, as in production: the 001 volumes below
	// may be balanced (never two copies on one machine).
	cfg.DistinctHosts = true
	cfg.MasterRefillDelay = 800 * time.Millisecond
	// Several masters, so the master leader can die (faults_masterleader_test.go).
	cfg.Masters, cfg.MasterElectionDelay = faultMasters, faultMasterElection
	cfg.AdminLockDuration = 3 * time.Second
	// Slow enough that a round's fault finds calls in flight.
	cfg.CompactDuration, cfg.CopyDuration, cfg.EcGenerateDuration, cfg.EcCopyDuration = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	// Plus a second per 100 MB: copying or encoding a full volume takes
	// long enough for a fault to land inside it (faults_workmix_test.go).
	cfg.IOBytesPerSecond = 100 << 20
	cfg.Seed = int64(r.seed)
	c, err := sim.New(cfg)
	if err != nil {
		r.t.Fatalf("start the simulated SeaweedFS: %v", err)
	}
	r.t.Cleanup(func() { c.Close() })
	r.sim = c
	dayAgo := time.Now().Add(-24 * time.Hour).Unix()
	// Regular volumes on all but the last server (so there is something to
	// balance), and full quiet ones to erasure code; all with two replicas
	// (001), so a server lost for good (faults_loss_test.go) leaves another
	// copy of each to repair from.
	// Without the losses (faultLosses), some volumes have one copy, as
	// before they existed.
	if _, err := c.AddVolumesFunc(24, func(i int, s *sim.VolumeSpec) {
		s.ReplicaPlacement = 1
		s.Servers = []int{i % 5, (i + 1) % 5}
		if !faultLosses && i%4 != 3 {
			s.ReplicaPlacement, s.Servers = 0, []int{i % 5}
		}
	}, sim.VolumeSpec{Size: 30 << 20, FileCount: 300}); err != nil {
		r.t.Fatalf("seed volumes: %v", err)
	}
	if _, err := c.AddVolumesFunc(3, func(i int, s *sim.VolumeSpec) {
		s.ReplicaPlacement, s.Servers = 1, []int{i % 5, (i + 1) % 5}
		if !faultLosses {
			s.ReplicaPlacement, s.Servers = 0, []int{i % 5}
		}
	},
		sim.VolumeSpec{Size: 98 << 20, FileCount: 900, ModifiedAt: dayAgo}); err != nil {
		r.t.Fatalf("seed full volumes: %v", err)
	}
}

func (r *faultRun) startAdmins() {
	dir := r.t.TempDir()
	var peers []string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("a%d", i)
		ip := fmt.Sprintf("127.0.0.%d", 10+i)
		raftBind, err := testutil.FreeAddrOn(ip)
		if err != nil {
			r.t.Skipf("cannot listen on the loopback address %s (needed for partitions): %v", ip, err)
		}
		grpcAddr, err := testutil.FreeAddrOn(ip)
		if err != nil {
			r.t.Fatalf("pick a gRPC port on %s: %v", ip, err)
		}
		proxy, err := startRaftProxy(raftBind, ip, r.parts)
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(proxy.close)
		a := &faultAdmin{
			node: &node{ID: id, GRPCAddr: grpcAddr, RaftAddr: proxy.addr(), DataDir: filepath.Join(dir, id, "data"), LogPath: filepath.Join(dir, id+".log"),
				Env: adminTestEnv},
			ip:       ip,
			raftBind: raftBind,
			proxy:    proxy,
		}
		peers = append(peers, id+"="+proxy.addr())
		r.admins = append(r.admins, a)
	}
	r.t.Cleanup(r.parts.closeAll)
	var addrs []string
	for _, a := range r.admins {
		a.argv = []string{"admin", "--id", a.ID, "--data-dir", a.DataDir,
			"--raft-addr", a.raftBind, "--raft-advertise", a.RaftAddr, "--grpc-addr", a.GRPCAddr,
			"--peers", strings.Join(peers, ","), "--bootstrap",
			"--master", r.masterList(),
			"--detect-interval", "1s",
			"--ec-quiet-for", "1h", "--ec-min-size-mb", "30",
			// Shard moves only past a skew of 8 shards between servers:
			// at the default 2, moves evening servers' EC shard counts
			// (the generator's retirements and hot servers skew them
			// all the time) were 57% of the tasks (seed
			// 1796315355912720500), 50% at 5, and erasure codings and
			// balance moves, the work issue 16 wants a fifth each of,
			// fell below it.
			"--ec-balance-skew", "8",
			"--worker-lease", faultLease.String(), "--worker-grace", faultGrace.String(), "--worker-heartbeat", faultHeartbeat.String(),
		}
		if faultLosses {
			a.argv = append(a.argv, "--repair-after", faultRepairAfter.String())
		}
		conn, err := grpc.NewClient(a.GRPCAddr, operatorDial(r.t))
		if err != nil {
			r.t.Fatalf("dial %s: %v", a.GRPCAddr, err)
		}
		a.conn = conn
		r.t.Cleanup(func() { conn.Close() })
		addrs = append(addrs, a.GRPCAddr)
	}
	r.addrs = strings.Join(addrs, ",")
	r.t.Cleanup(func() {
		for _, a := range r.admins {
			if a.running() {
				_ = a.signal(syscall.SIGCONT)
				_ = a.signal(syscall.SIGKILL)
				a.waitExit(r.t)
			}
		}
	})
	for _, a := range r.admins {
		a.startArgs(r.t, a.argv...)
	}
}

func (r *faultRun) startWorkers(n int) {
	dir := r.t.TempDir()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("w%d", i)
		w := &faultWorker{node: &node{ID: id, DataDir: filepath.Join(dir, id, "data"), LogPath: filepath.Join(dir, id+".log")}}
		w.argv = []string{"worker", "--id", id, "--admin", r.addrs, "--data-dir", w.DataDir, "--max-concurrent", "2"}
		r.workers = append(r.workers, w)
	}
	r.t.Cleanup(func() {
		for _, w := range r.workers {
			if w.running() {
				_ = w.signal(syscall.SIGCONT)
				_ = w.signal(syscall.SIGKILL)
				w.waitExit(r.t)
			}
		}
	})
	for _, w := range r.workers {
		w.startArgs(r.t, w.argv...)
	}
}

// ---------------------------------------------------------------------------
// Observation.

// status asks one admin for its own status (nil if it does not answer).
func (r *faultRun) status(a *faultAdmin, timeout time.Duration) *pb.StatusResponse {
	if a.stopped || !a.running() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := pb.NewAdminClient(a.conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil
	}
	return st
}

// transport describes what the running admins report of their transport
// ("mutual TLS" when every one that answers runs it), and a problem when
// one runs plaintext or none answers: the harness runs mutual TLS
// (pki_test.go), and a run that silently fell back to plaintext would not
// test it.
func (r *faultRun) transport() (string, string) {
	var plain []string
	answered := 0
	for _, a := range r.admins {
		st := r.status(a, 5*time.Second)
		if st == nil {
			continue
		}
		answered++
		if !st.GetTls() {
			plain = append(plain, a.ID)
		}
	}
	switch {
	case answered == 0:
		return "unknown (no admin answered)", "transport: no admin answered a status request at the end"
	case len(plain) > 0:
		msg := "PLAINTEXT on " + strings.Join(plain, ",")
		return msg, "transport: " + msg + ", want mutual TLS"
	}
	return "mutual TLS", ""
}

// leader returns the admin that calls itself leader in the highest term, if any.
func (r *faultRun) leader() *faultAdmin {
	var best *faultAdmin
	var term uint64
	for _, a := range r.admins {
		st := r.status(a, time.Second)
		if st != nil && st.State == "leader" && st.Term >= term {
			best, term = a, st.Term
		}
	}
	return best
}

// waitLeader polls until a majority agrees on a leader that calls itself one.
func (r *faultRun) waitLeader() *faultAdmin {
	deadline := time.Now().Add(faultLeaderWait)
	last := ""
	for {
		votes := map[string]int{}
		var self *faultAdmin
		for _, a := range r.admins {
			st := r.status(a, time.Second)
			if st == nil {
				continue
			}
			if st.LeaderId != "" {
				votes[st.LeaderId]++
			}
			if st.State == "leader" {
				self = a
			}
		}
		if self != nil && votes[self.ID] >= 2 {
			return self
		}
		last = fmt.Sprintf("leader votes %v", votes)
		if time.Now().After(deadline) {
			r.fail("no leader %s after the round healed (%s)", faultLeaderWait, last)
		}
		time.Sleep(pollEvery)
	}
}

// waitLeaderFor is leader() polled for up to timeout (nil if none).
func (r *faultRun) waitLeaderFor(timeout time.Duration) *faultAdmin {
	deadline := time.Now().Add(timeout)
	for {
		if l := r.leader(); l != nil {
			return l
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(pollEvery)
	}
}

func (r *faultRun) listTasks() ([]*fsmpb.Task, error) {
	var lastErr error
	for _, a := range r.admins {
		if a.stopped || !a.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		tasks, _, err := rpc.ListAllTasks(ctx, pb.NewAdminClient(a.conn), &pb.ListTasksRequest{Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE, PageSize: rpc.DefaultTaskPageSize})
		cancel()
		if err == nil {
			return tasks, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("list tasks: %w", lastErr)
}

func (r *faultRun) waitSomeTaskRunning() {
	deadline := time.Now().Add(faultLeaderWait)
	for {
		tasks, err := r.listTasks()
		if err == nil {
			for _, tk := range tasks {
				if tk.State == fsmpb.TaskState_TASK_STATE_RUNNING {
					r.note("first task running: %d (%s of volume %d)", tk.Id, typeNames[tk.Type], tk.VolumeId)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			r.fail("no task started running within %s (%d tasks, err %v)", faultLeaderWait, len(tasks), err)
		}
		time.Sleep(pollEvery)
	}
}

// checkProcesses fails the run if a process the harness did not kill has
// exited.
func (r *faultRun) checkProcesses() {
	for _, a := range r.admins {
		if !a.running() {
			r.fail("admin %s exited on its own: %v", a.ID, a.exitState())
		}
	}
	for _, w := range r.workers {
		if !w.running() {
			r.fail("worker %s exited on its own: %v", w.ID, w.exitState())
		}
	}
}

// exitState is how the process ended (nil while it runs).
func (n *node) exitState() *os.ProcessState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// ---------------------------------------------------------------------------
// Faults.

func (r *faultRun) pickKind() faultKind {
	total := 0
	for _, w := range faultWeights {
		total += w.weight
	}
	n := r.rng.IntN(total)
	for _, w := range faultWeights {
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	return fkNone
}

// hold draws how long a fault lasts, in [lo, hi).
func (r *faultRun) hold(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

func (r *faultRun) followers(leader *faultAdmin) []*faultAdmin {
	var out []*faultAdmin
	for _, a := range r.admins {
		if a != leader {
			out = append(out, a)
		}
	}
	return out
}

func (r *faultRun) runRound(kind faultKind) {
	var leader *faultAdmin
	switch kind {
	case fkKillLeader, fkKillFollower, fkStopLeader, fkStopFollower, fkIsolateLeader, fkIsolateFollow, fkAdminWiped:
		leader = r.waitLeaderFor(faultLeaderWait)
		if leader == nil {
			r.fail("no leader to pick a %s victim from", kind)
		}
	}
	pickFollower := func() *faultAdmin {
		fs := r.followers(leader)
		return fs[r.rng.IntN(len(fs))]
	}
	switch kind {
	case fkAdminWiped:
		r.wipeFollower(leader)
	case fkKillLeader, fkKillFollower:
		victim := leader
		if kind == fkKillFollower {
			victim = pickFollower()
		}
		d := r.hold(150*time.Millisecond, 900*time.Millisecond)
		r.note("%s: kill -9 %s for %s", kind, victim.ID, d)
		victim.kill9(r.t)
		time.Sleep(d) // the fault's duration
		victim.startArgs(r.t, victim.argv...)
		victim.restarted++
	case fkKillWorker:
		w := r.workers[r.rng.IntN(len(r.workers))]
		d := r.hold(100*time.Millisecond, 1000*time.Millisecond)
		r.note("%s: kill -9 %s for %s", kind, w.ID, d)
		w.kill9(r.t)
		time.Sleep(d)
		w.startArgs(r.t, w.argv...)
	case fkMasterRestart:
		r.note("%s: restart the SeaweedFS master", kind)
		if err := r.sim.RestartMaster(); err != nil {
			r.fail("restart the simulated master: %v", err)
		}
		time.Sleep(r.hold(300*time.Millisecond, 1000*time.Millisecond))
	case fkMasterOutage:
		d := r.hold(500*time.Millisecond, 2000*time.Millisecond)
		r.note("%s: SeaweedFS master down for %s", kind, d)
		r.sim.StopMaster()
		time.Sleep(d)
		if err := r.sim.StartMaster(); err != nil {
			r.fail("start the simulated master: %v", err)
		}
	case fkStopLeader, fkStopFollower:
		victim := leader
		if kind == fkStopFollower {
			victim = pickFollower()
		}
		// Mostly past the workers' lease and raft's election timeout,
		// sometimes just short of them.
		d := r.hold(faultLease-500*time.Millisecond, faultLease+faultGrace+500*time.Millisecond)
		r.note("%s: SIGSTOP %s for %s", kind, victim.ID, d)
		if err := victim.signal(syscall.SIGSTOP); err != nil {
			r.fail("SIGSTOP %s: %v", victim.ID, err)
		}
		victim.stopped = true
		time.Sleep(d)
		if err := victim.signal(syscall.SIGCONT); err != nil {
			r.fail("SIGCONT %s: %v", victim.ID, err)
		}
		victim.stopped = false
	case fkStopWorker:
		w := r.workers[r.rng.IntN(len(r.workers))]
		// From just short of the lease (nothing happens), through the grace
		// (the worker must stop and roll back its attempts itself, before
		// the leader requeues them), to past lease + grace (the leader
		// requeues them meanwhile: the worker must not touch them again).
		d := r.hold(faultLease-300*time.Millisecond, faultLease+faultGrace+1000*time.Millisecond)
		r.note("%s: SIGSTOP %s for %s", kind, w.ID, d)
		if err := w.signal(syscall.SIGSTOP); err != nil {
			r.fail("SIGSTOP %s: %v", w.ID, err)
		}
		w.stopped = true
		time.Sleep(d)
		if err := w.signal(syscall.SIGCONT); err != nil {
			r.fail("SIGCONT %s: %v", w.ID, err)
		}
		w.stopped = false
	case fkIsolateLeader:
		fs := r.followers(leader)
		d := r.hold(2200*time.Millisecond, 3000*time.Millisecond)
		r.note("%s: cut %s off from %s and %s for %s", kind, leader.ID, fs[0].ID, fs[1].ID, d)
		cutAt := time.Now()
		r.parts.cutPair(leader.ip, fs[0].ip)
		r.parts.cutPair(leader.ip, fs[1].ip)
		// The isolated leader must step down within its leader lease.
		steppedDown := false
		for time.Since(cutAt) < faultStepDown {
			if st := r.status(leader, 500*time.Millisecond); st != nil && st.State != "leader" {
				steppedDown = true
				r.note("%s stepped down %s after the cut", leader.ID, time.Since(cutAt).Round(time.Millisecond))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !steppedDown {
			// No status answer in time is not an answer: on a loaded
			// machine a Status call can miss its 500 ms for seconds. The
			// node's own log says when raft left the leader state.
			if at, ok := leftLeaderAt(leader.LogPath, cutAt); ok && at.Sub(cutAt) < faultStepDown {
				steppedDown = true
				r.note("%s stepped down %s after the cut (from its log: its status did not answer in time)", leader.ID, at.Sub(cutAt).Round(time.Millisecond))
			}
		}
		if !steppedDown {
			r.fail("isolated leader %s still calls itself leader %s after the partition", leader.ID, faultStepDown)
		}
		if rest := d - time.Since(cutAt); rest > 0 {
			time.Sleep(rest)
		}
		if nl := r.leader(); nl != nil && nl != leader {
			r.note("the majority elected %s during the partition", nl.ID)
		}
		r.parts.heal()
	case fkRollingUpgrade:
		r.rollingUpgrade()
	case fkIsolateFollow:
		f := pickFollower()
		d := r.hold(800*time.Millisecond, 2000*time.Millisecond)
		var others []string
		for _, a := range r.admins {
			if a != f {
				others = append(others, a.ID)
				r.parts.cutPair(f.ip, a.ip)
			}
		}
		r.note("%s: cut %s off from %s for %s", kind, f.ID, strings.Join(others, ","), d)
		time.Sleep(d)
		r.parts.heal()
	default:
		if run := extraFaults[kind]; run != nil {
			run(r)
		}
	}
}

// healAll lifts every fault: partitions healed, stopped processes
// continued, the master up, every process running.
func (r *faultRun) healAll() {
	r.parts.heal()
	for _, a := range r.admins {
		if a.stopped {
			_ = a.signal(syscall.SIGCONT)
			a.stopped = false
		}
		if !a.running() {
			a.startArgs(r.t, a.argv...)
		}
	}
	for _, w := range r.workers {
		if w.stopped {
			_ = w.signal(syscall.SIGCONT)
			w.stopped = false
		}
		if !w.running() {
			w.startArgs(r.t, w.argv...)
		}
	}
	if !r.sim.MasterUp() {
		if err := r.sim.StartMaster(); err != nil {
			r.fail("start the simulated master: %v", err)
		}
	}
}

// ---------------------------------------------------------------------------
// Final checks.

var terminalStates = map[fsmpb.TaskState]bool{
	fsmpb.TaskState_TASK_STATE_COMPLETED: true, fsmpb.TaskState_TASK_STATE_FAILED: true, fsmpb.TaskState_TASK_STATE_CANCELLED: true,
}

func (r *faultRun) finalChecks() {
	// Drain: every task terminal, and the set of tasks stable for a while
	// (detection may still find leftover garbage right after the last round).
	var tasks []*fsmpb.Task
	deadline := time.Now().Add(faultDrainTimeout)
	stableSince, lastCount := time.Time{}, -1
	for {
		ts, err := r.listTasks()
		if err == nil {
			open := 0
			for _, tk := range ts {
				if !terminalStates[tk.State] {
					open++
				}
			}
			if open == 0 && len(ts) == lastCount {
				if time.Since(stableSince) > 3*time.Second {
					tasks = ts
					break
				}
			} else {
				stableSince, lastCount = time.Now(), len(ts)
				if open != 0 {
					lastCount = -1
				}
			}
			tasks = ts
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	byState := map[string]int{}
	var open []*fsmpb.Task
	for _, tk := range tasks {
		byState[strings.TrimPrefix(strings.ToLower(tk.State.String()), "task_state_")]++
		if !terminalStates[tk.State] {
			open = append(open, tk)
		}
	}
	byType := map[string]int{}
	for _, tk := range tasks {
		byType[typeNames[tk.Type]]++
	}

	ops := r.sim.OpLog()
	overlaps := sim.FindOverlaps(ops)
	staleAttempts := findStaleAttempts(ops)
	interleaved := findInterleavedTasks(ops)
	concurrent := findConcurrentTasks(tasks)
	hashes, hashErr := r.waitEqualHashes()
	// Replicas a volume server unloaded (a commit without a finished
	// compaction: the volume is offline until the server restarts), and
	// replicas left read-only (informational: an interrupted EC or move
	// whose rollback was not allowed to run leaves its mark to the next
	// attempt).
	var unloaded []string
	readOnly := 0
	for _, srv := range r.sim.Servers() {
		for _, v := range srv.Volumes() {
			if v.Unloaded {
				unloaded = append(unloaded, fmt.Sprintf("volume %d on %s", v.ID, srv.ID()))
			}
			if v.ReadOnly {
				readOnly++
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "fault harness results (seed %d, %d rounds, %s)\n", r.seed, sumKinds(r.roundsByKind), time.Since(r.began).Round(time.Second))
	transport, transportProblem := r.transport()
	fmt.Fprintf(&b, "  transport: %s\n", transport)
	hit := roundsHittingWork(r.windows, ops)
	fmt.Fprintf(&b, "  rounds by fault kind (with volume operations in flight during the fault):\n")
	for _, w := range faultWeights {
		fmt.Fprintf(&b, "    %-20s %3d (%d)\n", w.kind, r.roundsByKind[w.kind], hit[w.kind])
	}
	fmt.Fprintf(&b, "  tasks: %d (%s) by state: %s\n", len(tasks), fmtCounts(byType), fmtCounts(byState))
	mixLine, mixWarning := taskMix(tasks, sumKinds(r.roundsByKind))
	fmt.Fprintf(&b, "  %s\n", mixLine)
	fmt.Fprintf(&b, "  %s\n", r.retired.summary(tasks))
	fmt.Fprintf(&b, "  %s\n", r.lossSummary(tasks))
	fmt.Fprintf(&b, "  %s\n", freeSlotsLine(r.sim.Servers(), tasks))
	b.WriteString(stepTable(r.windows, ops, tasks, r.roundsByKind))
	shown := 0
	for _, tk := range tasks {
		if tk.State == fsmpb.TaskState_TASK_STATE_FAILED && shown < 5 {
			shown++
			fmt.Fprintf(&b, "    failed: task %d (%s of volume %d, attempt %d): %s\n", tk.Id, typeNames[tk.Type], tk.VolumeId, tk.Attempt, tk.LastError)
		}
	}
	fmt.Fprintf(&b, "  mutating operations in the op log: %d\n", len(ops))
	fmt.Fprintf(&b, "  overlapping operations on a volume: %d\n", len(overlaps))
	fmt.Fprintf(&b, "  stale attempts (an operation after a later attempt of the task began): %d\n", len(staleAttempts))
	fmt.Fprintf(&b, "  tasks executing on one volume at once (interleaved op spans): %d\n", len(interleaved))
	fmt.Fprintf(&b, "  tasks active on one volume at once (replicated state): %d\n", len(concurrent))
	fmt.Fprintf(&b, "  replicas unloaded by a commit without a finished compaction: %d\n", len(unloaded))
	fmt.Fprintf(&b, "  replicas left read-only (informational): %d\n", readOnly)
	fmt.Fprintf(&b, "  tasks not terminal: %d\n", len(open))
	var extraProblems []string
	for _, x := range extraFinalChecks {
		n, ps := x.check(r)
		fmt.Fprintf(&b, "  %s: %d (of %d checked)\n", x.name, len(ps), n)
		for i, p := range ps {
			if i < 10 {
				extraProblems = append(extraProblems, x.name+": "+p)
			}
		}
	}
	fmt.Fprintf(&b, "  state hashes: %s\n", hashes)
	if mixWarning != "" {
		fmt.Fprintf(&b, "  %s\n", mixWarning)
	}
	fmt.Print(b.String())
	r.t.Log(b.String())

	var problems []string
	if transportProblem != "" {
		problems = append(problems, transportProblem)
	}
	for i, o := range overlaps {
		if i == 10 {
			break
		}
		problems = append(problems, "overlap: "+o.String()+"\n"+opExcerpt(ops, o.A.VolumeID, o.A.Start, o.B.End))
	}
	for i, s := range staleAttempts {
		if i == 10 {
			break
		}
		problems = append(problems, "stale attempt: "+s)
	}
	for i, s := range interleaved {
		if i == 10 {
			break
		}
		problems = append(problems, "interleaved tasks: "+s)
	}
	for i, s := range concurrent {
		if i == 10 {
			break
		}
		problems = append(problems, "concurrent tasks: "+s)
	}
	for i, u := range unloaded {
		if i == 10 {
			break
		}
		var vid uint32
		fmt.Sscanf(u, "volume %d", &vid)
		problems = append(problems, "unloaded: "+u+"\n"+opExcerpt(ops, vid, time.Time{}, time.Now()))
	}
	for i, tk := range open {
		if i == 10 {
			break
		}
		problems = append(problems, fmt.Sprintf("task not terminal after %s: %v", faultDrainTimeout, tk))
	}
	if hashErr != nil {
		problems = append(problems, hashErr.Error())
	}
	problems = append(problems, extraProblems...)
	if len(problems) > 0 {
		r.fail("%d kinds of violation:\n%s\n%s", len(problems), b.String(), strings.Join(problems, "\n"))
	}
	if os.Getenv("GK_FAULT_KEEP") != "" {
		dir, err := r.keepEvidence()
		if err != nil {
			r.t.Errorf("keep the logs: %v", err)
		}
		fmt.Printf("fault harness: logs, fault events and op log kept in %s\n", dir)
	}
}

// roundsHittingWork counts, by kind, the rounds during whose fault some
// mutating volume-server operation ran.
func roundsHittingWork(windows []faultWindow, ops []sim.Op) map[faultKind]int {
	out := map[faultKind]int{}
	for _, w := range windows {
		for _, o := range ops {
			if o.Start.Before(w.to) && o.End.After(w.from) {
				out[w.kind]++
				break
			}
		}
	}
	return out
}

func sumKinds(m map[faultKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// waitEqualHashes polls until the three admins report the same state index
// and returns their hashes; different hashes at one index are an error.
func (r *faultRun) waitEqualHashes() (string, error) {
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		var sts []*pb.StatusResponse
		for _, a := range r.admins {
			if st := r.status(a, 2*time.Second); st != nil {
				sts = append(sts, st)
			}
		}
		if len(sts) == 3 && sts[0].StateIndex == sts[1].StateIndex && sts[1].StateIndex == sts[2].StateIndex {
			var parts []string
			for _, st := range sts {
				parts = append(parts, fmt.Sprintf("%s=%.16s@%d", st.NodeId, st.StateHash, st.StateIndex))
			}
			desc := strings.Join(parts, " ")
			if sts[0].StateHash != sts[1].StateHash || sts[1].StateHash != sts[2].StateHash {
				return desc, fmt.Errorf("the admins' states differ at index %d: %s", sts[0].StateIndex, desc)
			}
			return desc, nil
		}
		var parts []string
		for _, st := range sts {
			parts = append(parts, fmt.Sprintf("%s@%d", st.NodeId, st.StateIndex))
		}
		last = strings.Join(parts, " ")
		if time.Now().After(deadline) {
			return last, fmt.Errorf("the three admins never reported one state index within %s: %s", waitTimeout, last)
		}
		time.Sleep(pollEvery)
	}
}

type span struct {
	first, last sim.Op // by start, by end
	n           int
}

func (s *span) add(o sim.Op) {
	if s.n == 0 || o.Start.Before(s.first.Start) {
		s.first = o
	}
	if s.n == 0 || o.End.After(s.last.End) {
		s.last = o
	}
	s.n++
}

// findStaleAttempts: for every task, an attempt (fence) that issued an
// operation after a later attempt (higher fence) of the same task issued
// its first one. The earlier attempt's work, rollback included, must be
// over before its replacement begins.
func findStaleAttempts(ops []sim.Op) []string {
	byTask := map[string]map[string]*span{}
	for _, o := range ops {
		if o.TaskID == "" {
			continue
		}
		m := byTask[o.TaskID]
		if m == nil {
			m = map[string]*span{}
			byTask[o.TaskID] = m
		}
		s := m[o.Fence]
		if s == nil {
			s = &span{}
			m[o.Fence] = s
		}
		s.add(o)
	}
	var out []string
	for task, m := range byTask {
		fences := make([]string, 0, len(m))
		for f := range m {
			fences = append(fences, f)
		}
		sort.Slice(fences, func(i, j int) bool { return fenceNum(fences[i]) < fenceNum(fences[j]) })
		for i := 0; i < len(fences); i++ {
			for j := i + 1; j < len(fences); j++ {
				early, late := m[fences[i]], m[fences[j]]
				if early.last.End.After(late.first.Start) {
					out = append(out, fmt.Sprintf("task %s: attempt with fence %s ran %s after attempt with fence %s began with %s",
						task, fences[i], early.last, fences[j], late.first))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func fenceNum(f string) uint64 {
	n, _ := strconv.ParseUint(f, 10, 64)
	return n
}

// findInterleavedTasks: two different tasks whose operation spans on one
// volume (first operation's start to last operation's end) overlap.
func findInterleavedTasks(ops []sim.Op) []string {
	byVol := map[uint32]map[string]*span{}
	for _, o := range ops {
		key := o.TaskID
		if key == "" {
			key = "untagged"
		}
		m := byVol[o.VolumeID]
		if m == nil {
			m = map[string]*span{}
			byVol[o.VolumeID] = m
		}
		s := m[key]
		if s == nil {
			s = &span{}
			m[key] = s
		}
		s.add(o)
	}
	var out []string
	for vid, m := range byVol {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i := 0; i < len(keys); i++ {
			for j := i + 1; j < len(keys); j++ {
				a, b := m[keys[i]], m[keys[j]]
				if a.first.Start.Before(b.last.End) && b.first.Start.Before(a.last.End) {
					out = append(out, fmt.Sprintf("volume %d: task %s [%s .. %s] and task %s [%s .. %s]",
						vid, keys[i], a.first, a.last, keys[j], b.first, b.last))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// findConcurrentTasks: two tasks of one volume whose lives in the replicated
// state (created to finished) overlap: the reservation allows one active
// task per volume.
func findConcurrentTasks(tasks []*fsmpb.Task) []string {
	byVol := map[uint32][]*fsmpb.Task{}
	for _, tk := range tasks {
		byVol[tk.VolumeId] = append(byVol[tk.VolumeId], tk)
	}
	end := func(tk *fsmpb.Task) int64 {
		if tk.FinishedAt == 0 {
			return 1<<63 - 1
		}
		return tk.FinishedAt
	}
	var out []string
	for vid, list := range byVol {
		for i := 0; i < len(list); i++ {
			for j := i + 1; j < len(list); j++ {
				a, b := list[i], list[j]
				if a.CreatedAt < end(b) && b.CreatedAt < end(a) {
					out = append(out, fmt.Sprintf("volume %d: task %d (%s, %s) and task %d (%s, %s) were active together",
						vid, a.Id, typeNames[a.Type], a.State, b.Id, typeNames[b.Type], b.State))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// opExcerpt lists the operations on a volume around [from, to].
func opExcerpt(ops []sim.Op, vid uint32, from, to time.Time) string {
	var lines []string
	for _, o := range ops {
		if o.VolumeID == vid && o.End.After(from.Add(-2*time.Second)) && o.Start.Before(to.Add(2*time.Second)) {
			lines = append(lines, "    "+o.String())
		}
	}
	return strings.Join(lines, "\n")
}
