package scheduler

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Applier proposes a command through raft on this (leader) node.
type Applier interface {
	Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error)
}

// StateReader reads the replicated state.
type StateReader interface {
	Read(fn func(s *fsm.State))
}

// Master is what the scheduler needs from the SeaweedFS master.
type Master interface {
	Topology(ctx context.Context) (*seaweed.Topology, error)
	// Addr is the master calls go to (the master leader as last found).
	Addr() seaweed.Address
	// Masters is every master given, as last seen.
	Masters() []seaweed.MasterStatus
	SetAutoVacuum(ctx context.Context, on bool) error
	NewAdminLock(client string) *seaweed.AdminLock
	LockHolder(ctx context.Context, name string) (holder string, held bool, err error)
}

// DefaultFailureCooldown is Config.FailureCooldown's default.
const DefaultFailureCooldown = 30 * time.Minute

// Config tunes the scheduler; zero values take the defaults in parentheses.
type Config struct {
	Thresholds     Thresholds
	DetectInterval time.Duration // 10s
	Lease          time.Duration // 10s: a worker silent this long is presumed gone...
	Grace          time.Duration // 5s: ...and its tasks are requeued after lease+grace
	Heartbeat      time.Duration // 2s: how often workers report
	MaxRetries     uint32        // 3
	// FailureCooldown keeps detection away from a volume whose task failed
	// or was cancelled this recently (30m), so a volume that cannot be
	// processed does not get a new doomed task every detection round, and
	// an operator's cancel is not undone by the next round. Manual
	// submissions and retries ignore it.
	FailureCooldown time.Duration
	// Retention bounds the finished tasks kept in the replicated state.
	Retention Retention
	// StuckAfter is how long a running task may go without progress (per type).
	// A type it does not list gets DefaultStuckAfter.
	StuckAfter map[fsmpb.TaskType]time.Duration // vacuum 10m, ec 30m, balance 30m, replicate 30m
	NodeID     string
	Logger     hclog.Logger
	// VerifyLeader, if set, confirms by a round of contact with a quorum
	// that this node still leads. Heartbeats are acknowledged only after a
	// verification that started after they arrived (see leadershipCheck).
	VerifyLeader func(ctx context.Context) error
	// Now is the clock (tests replace it).
	Now func() time.Time
	// Observe, if set, is told of timed events for metrics: EventTaskCompleted
	// (a task's finished_at - started_at, by type, when this leader commits
	// its completion) and EventDetection (one detection round; typ is
	// unspecified). It must not block.
	Observe func(event string, typ fsmpb.TaskType, d time.Duration)
	// TestCrashDir is where the TEST-ONLY completion failpoint looks for
	// its arm file (testcrash.go): the admin's data directory, set by the
	// admin subcommand only (empty: the failpoint is off).
	TestCrashDir string
	// HoldShellLock makes the leader hold SeaweedFS's shell lock while any
	// attempt is assigned or running, as `weed admin` does around its jobs
	// (shellhold.go), so a `weed shell` user's `lock` waits for them.
	// ShellYield (2s) is how long the lock is left free after our release
	// before we take it again; ShellFairness (1m) how long it may be held
	// continuously before nothing new is assigned until a full release
	// (negative: never).
	HoldShellLock             bool
	ShellYield, ShellFairness time.Duration
}

// DefaultStuckAfter is the stuck limit of a task type Config.StuckAfter
// does not list: never 0, which would stop every attempt at once.
const DefaultStuckAfter = 30 * time.Minute

// Events passed to Config.Observe.
const (
	EventTaskCompleted = "task_completed"
	EventDetection     = "detection"
)

func (c *Config) defaults() {
	if c.Thresholds == (Thresholds{}) {
		c.Thresholds = DefaultThresholds()
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&c.DetectInterval, 10*time.Second)
	setDur(&c.Lease, 10*time.Second)
	setDur(&c.Grace, 5*time.Second)
	setDur(&c.Heartbeat, 2*time.Second)
	setDur(&c.FailureCooldown, DefaultFailureCooldown)
	setDur(&c.ShellYield, DefaultShellYield)
	if c.ShellFairness == 0 {
		c.ShellFairness = DefaultShellFairness
	}
	if c.Retention == (Retention{}) {
		c.Retention = DefaultRetention()
	}
	setDur(&c.Retention.ForgetWorkersAfter, DefaultRetention().ForgetWorkersAfter)
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	stuck := map[fsmpb.TaskType]time.Duration{
		fsmpb.TaskType_TASK_TYPE_VACUUM: 10 * time.Minute, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING: 30 * time.Minute,
		fsmpb.TaskType_TASK_TYPE_BALANCE: 30 * time.Minute, fsmpb.TaskType_TASK_TYPE_REPLICATE: 30 * time.Minute,
		fsmpb.TaskType_TASK_TYPE_EC_REBUILD: 30 * time.Minute, fsmpb.TaskType_TASK_TYPE_EC_BALANCE: 15 * time.Minute,
	}
	for k, v := range c.StuckAfter {
		stuck[k] = v
	}
	c.StuckAfter = stuck
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observe == nil {
		c.Observe = func(string, fsmpb.TaskType, time.Duration) {}
	}
}

// Maintenance.master_vacuum: the master's own periodic vacuum as we set it.
const (
	MasterVacuumOff    = "off"
	MasterVacuumOn     = "on"
	MasterVacuumNotSet = "not set yet"
	// MasterVacuumNotOurs: another process holds the admin lock and decides
	// it (our last switch stays in effect until it does).
	MasterVacuumNotOurs = "not ours to set"
)

// ErrNotRunning means the scheduler is not running here (not the leader).
var ErrNotRunning = errors.New("scheduler is not running on this node")

// Scheduler runs the leader's maintenance loops. Create it once per node;
// Run it each time the node becomes leader.
type Scheduler struct {
	cfg    Config
	apply  Applier
	state  StateReader
	master Master // nil: no SeaweedFS master configured
	log    hclog.Logger

	// owners serializes, per worker, every decision about which attempts
	// the worker owns with the proposal it leads to (see ownership).
	owners ownership

	mu         sync.Mutex
	running    bool
	started    time.Time
	sessions   map[string]*Session
	leadership *leadershipCheck
	// runCtx is the context of the current Run (leadership).
	runCtx context.Context
	// lastPrune is when maintain last pruned (only Run's goroutine uses it).
	lastPrune time.Time
	// policyPaused is whether the policy was paused at the last round
	// (only Run's goroutine uses it: notePolicy).
	policyPaused bool
	// windowErr is the last error opening the maintenance windows (under mu).
	windowErr string
	// lastSeen is the last time each worker was heard from (survives detach).
	lastSeen map[string]time.Time
	// progress is leader-local progress of running attempts, by task id.
	progress map[uint64]progressInfo
	// cancelling holds attempts told to stop, until they are released.
	cancelling map[uint64]cancelInfo
	// confirm holds attempts (task -> fence) that their workers' next
	// heartbeats must list, or they are requeued (see confirmRunning): after
	// a snapshot replaced the state while leading, the attempts the restored
	// state says are active; after a worker re-attached as its lease
	// expired, the attempts the expiry would have requeued.
	confirm map[uint64]uint64
	// view is what this leader knows of the SeaweedFS master (guarded by mu).
	view masterView
	// repairs tracks the volumes at reduced redundancy this term, as the
	// last detection round saw them (guarded by mu; see repair.go).
	repairs RepairTracker
	// extras: the volumes with copies beyond their placement (extras.go),
	// tracked as repairs are.
	extras RepairTracker
	kick   chan struct{}
	// restored is set (by the FSM's goroutine, so without s.mu) when a
	// snapshot replaced the state; the next round reconciles.
	restored atomic.Bool
	// beforeRecheck, if set, runs between a lease expiry's decision and its
	// re-check under the worker's ownership lock. Test-only: it widens the
	// window a hello can land in (see testRequeueDelayEnv).
	beforeRecheck func(ctx context.Context, worker string)
}

// testRequeueDelayEnv names a TEST-ONLY environment variable: a duration the
// leader sleeps between deciding that a worker's lease expired and
// re-checking it before requeueing (e.g. 300ms), so that the fault harness
// lands restarted workers' hellos in that window instead of almost never.
// Not for production: it only delays requeues. Deliberately undocumented
// for operators.
const testRequeueDelayEnv = "GROUNDSKEEPER_TEST_REQUEUE_DELAY"

type progressInfo struct {
	fence    uint64
	progress float64
	step     string
	at       time.Time
}

type cancelInfo struct {
	fence  uint64
	reason string
	retry  bool
	at     time.Time
	// sent is when the Cancel was last sent to the worker.
	sent time.Time
}

// New creates a scheduler. master may be nil.
func New(cfg Config, apply Applier, state StateReader, master Master) *Scheduler {
	cfg.defaults()
	s := &Scheduler{cfg: cfg, apply: apply, state: state, master: master, log: cfg.Logger, view: masterView{log: cfg.Logger},
		sessions: map[string]*Session{}, lastSeen: map[string]time.Time{}, progress: map[uint64]progressInfo{},
		cancelling: map[uint64]cancelInfo{}, confirm: map[uint64]uint64{}, kick: make(chan struct{}, 1), leadership: &leadershipCheck{verify: cfg.VerifyLeader}}
	if cfg.TestCrashDir != "" {
		announceTestCrash()
	}
	if v := os.Getenv(testRequeueDelayEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			s.log.Warn("test-only delay before re-checking expired leases", "env", testRequeueDelayEnv, "delay", d)
			s.beforeRecheck = func(ctx context.Context, worker string) {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
	}
	return s
}

// Run performs the leader's duties until ctx ends (leadership lost).
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	s.running, s.started, s.runCtx = true, s.cfg.Now(), ctx
	s.restored.Store(false)
	s.view.shellClient = "groundskeeper " + s.cfg.NodeID
	s.view.reset()
	s.repairs = nil
	s.mu.Unlock()
	s.log.Info("scheduler started")
	var wg sync.WaitGroup
	var lock *seaweed.AdminLock
	// The lock keeper outlives ctx until the master's vacuum is given back
	// (see restoreVacuum), which must happen while the lock is ours.
	lockCtx, stopLock := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLock()
	lockDone := make(chan struct{})
	if s.master != nil {
		lock = s.master.NewAdminLock("groundskeeper " + s.cfg.NodeID)
		s.mu.Lock()
		s.view.lock = lock
		s.mu.Unlock()
		wg.Add(1)
		go func() { defer close(lockDone); lock.Run(lockCtx) }()
		go func() { defer wg.Done(); s.detectLoop(ctx, lock.Changed()) }()
	} else {
		close(lockDone)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		s.maintain(ctx)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-s.kick:
		}
	}
	wg.Wait()
	s.stopShellHold()
	if lock != nil {
		s.restoreVacuum(lock)
	}
	stopLock()
	<-lockDone
	s.mu.Lock()
	s.running = false
	for id, sess := range s.sessions {
		sess.close()
		delete(s.sessions, id)
	}
	s.progress, s.cancelling, s.lastSeen = map[uint64]progressInfo{}, map[uint64]cancelInfo{}, map[string]time.Time{}
	s.confirm = map[uint64]uint64{}
	s.mu.Unlock()
	s.log.Info("scheduler stopped")
}

// restoreVacuum, on a clean stop (leadership lost, shutdown), switches the
// master's own vacuum back on if we switched it off, before the admin lock
// is released: released first, the lock could go to another holder whose
// switch ours would then override. If the lock is not surely ours any more,
// its holder decides (and the master re-enables its vacuum by itself once
// nobody holds the lock).
func (s *Scheduler) restoreVacuum(lock *seaweed.AdminLock) {
	s.mu.Lock()
	off := s.view.vacuumIsOff()
	s.mu.Unlock()
	if !off {
		return
	}
	st := lock.State()
	if !time.Now().Before(st.Until) || (st.Status != seaweed.LockOurs && !(st.Status == seaweed.LockUnknown && st.Last == seaweed.LockOurs)) {
		s.log.Info("not switching the master's automatic vacuum back on: the admin lock is not surely ours", "lock", st.Status)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.master.SetAutoVacuum(ctx, true); err != nil {
		s.log.Warn("could not switch the master's automatic vacuum back on", "error", err)
		return
	}
	s.log.Info("master automatic vacuum switched back on")
	s.mu.Lock()
	s.view.vacuumSwitched(false)
	s.mu.Unlock()
}

// Status is the leader's maintenance view for operators; ok is false when
// the scheduler is not running here.
func (s *Scheduler) Status() (st *pb.Maintenance, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil, false
	}
	st = &pb.Maintenance{WorkersConnected: uint32(len(s.sessions))}
	if s.master == nil {
		st.MasterState = "not configured"
		return st, true
	}
	st.Master = s.master.Addr().String()
	for _, m := range s.master.Masters() {
		pm := &pb.SeaweedMaster{Address: m.Addr.String(), State: m.State, Leader: m.Leader, Error: m.Err}
		if !m.Seen.IsZero() {
			pm.Seen = m.Seen.UnixNano()
		}
		st.Masters = append(st.Masters, pm)
	}
	s.view.status(st, time.Now())
	r := s.repairs.Summary()
	st.VolumesUnderreplicated, st.EcVolumesMissingShards, st.VolumesUnrepairable = uint32(r.Underreplicated), uint32(r.ECMissingShards), uint32(r.Unrepairable)
	if !r.Oldest.IsZero() {
		st.OldestLoss = r.Oldest.UnixNano()
	}
	x := ExtraSummaryOf(s.extras)
	st.VolumesOverreplicated, st.EcVolumesDuplicateShards = uint32(x.Overreplicated), uint32(x.ECDuplicateShards)
	return st, true
}

// Repairs summarises the volumes at reduced redundancy as the last
// detection round saw them; ok is false when the scheduler is not running
// here.
func (s *Scheduler) Repairs() (r RepairSummary, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return RepairSummary{}, false
	}
	return s.repairs.Summary(), true
}

// Load reports the connected workers and their total slots; ok is false
// when the scheduler is not running here.
func (s *Scheduler) Load() (workers, slots int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return 0, 0, false
	}
	for _, sess := range s.sessions {
		slots += sess.max
	}
	return len(s.sessions), slots, true
}

// Kick asks for an assignment round soon.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Scheduler) propose(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.apply.Apply(cctx, cmd)
	if err != nil {
		return nil, err
	}
	return res, fsm.ResultError(res)
}
