package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Applier proposes a command through raft on this (leader) node.
type Applier interface {
	Apply(ctx context.Context, cmd *pb.Command) (*pb.ApplyResult, error)
}

// StateReader reads the replicated state.
type StateReader interface {
	Read(fn func(s *fsm.State))
}

// Master is what the scheduler needs from the SeaweedFS master.
type Master interface {
	Topology(ctx context.Context) (*seaweed.Topology, error)
	Addr() seaweed.Address
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
	StuckAfter map[pb.TaskType]time.Duration // vacuum 10m, ec 30m, balance 30m
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
	Observe func(event string, typ pb.TaskType, d time.Duration)
	// TestCrashDir is where the TEST-ONLY completion failpoint looks for
	// its arm file (testcrash.go): the node's data directory.
	TestCrashDir string
}

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
	if c.Retention == (Retention{}) {
		c.Retention = DefaultRetention()
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	stuck := map[pb.TaskType]time.Duration{
		pb.TaskType_TASK_TYPE_VACUUM: 10 * time.Minute, pb.TaskType_TASK_TYPE_ERASURE_CODING: 30 * time.Minute,
		pb.TaskType_TASK_TYPE_BALANCE: 30 * time.Minute,
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
		c.Observe = func(string, pb.TaskType, time.Duration) {}
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
	topo    *seaweed.Topology
	topoOK  bool
	topoErr error
	// trusted is the last topology trusted this term (complete); it plans
	// the work that may still go out while the master is unreachable or
	// refilling (see assignTopology).
	trusted *seaweed.Topology
	// refill judges whether a polled topology is complete enough to act on.
	refill    seaweed.RefillGuard
	vacuumOff *bool
	lock      *seaweed.AdminLock
	// shell is SeaweedFS's shell lock as last asked, and when.
	shell        OtherLock
	shellChecked time.Time
	// paused is the last Gate's reason, to log its changes once.
	paused   string
	lastPoll time.Time
	kick     chan struct{}
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
	s := &Scheduler{cfg: cfg, apply: apply, state: state, master: master, log: cfg.Logger,
		sessions: map[string]*Session{}, lastSeen: map[string]time.Time{}, progress: map[uint64]progressInfo{},
		cancelling: map[uint64]cancelInfo{}, confirm: map[uint64]uint64{}, kick: make(chan struct{}, 1), leadership: &leadershipCheck{verify: cfg.VerifyLeader}}
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
	s.topo, s.topoOK, s.topoErr, s.vacuumOff, s.trusted = nil, false, nil, nil, nil
	s.lock, s.paused, s.shell, s.shellChecked = nil, "", OtherLock{}, time.Time{}
	// A new leader has no baseline: it waits for two agreeing polls.
	s.refill = seaweed.RefillGuard{Agree: true}
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
		s.lock = lock
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
	off := s.vacuumOff != nil && *s.vacuumOff
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
	on := false
	s.vacuumOff = &on
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
	if !s.lastPoll.IsZero() {
		st.LastPoll = s.lastPoll.UnixNano()
	}
	switch {
	case s.topoErr != nil:
		st.MasterState, st.MasterError = "unreachable", s.topoErr.Error()
	case s.topo == nil:
		st.MasterState = "starting"
	case !s.topoOK:
		st.MasterState = "refilling"
	default:
		st.MasterState = "ok"
	}
	if s.topo != nil {
		st.Servers, st.Volumes = uint32(len(s.topo.Servers)), uint32(len(s.topo.Volumes))
	}
	if s.lock != nil {
		l := s.lock.State()
		st.AdminLockHeld, st.AdminLock, st.AdminLockHolder = l.OursAt(time.Now()), l.Status.String(), l.Holder
		if !l.Since.IsZero() {
			st.AdminLockSince = l.Since.UnixNano()
		}
		if l.Err != nil {
			st.AdminLockError = l.Err.Error()
		}
		if l.Status == seaweed.LockOurs && !st.AdminLockHeld {
			st.AdminLock, st.AdminLockError = seaweed.LockUnknown.String(), "no renewal confirmed within the lease"
		}
	}
	if s.shell.Held {
		st.ShellLockHolder = s.shell.Holder
		if st.ShellLockHolder == "" {
			st.ShellLockHolder = "(not named)"
		}
		st.ShellLockSince = s.shell.Since.UnixNano()
	}
	g := s.gate()
	st.Paused, st.DetectionPaused, st.AssignmentPaused = g.Paused, !g.Detect, !g.Assign
	st.MasterVacuumOff = s.vacuumOff != nil && *s.vacuumOff
	switch {
	case s.lock != nil && s.lock.State().Status == seaweed.LockOther:
		st.MasterVacuum, st.MasterVacuumOff = MasterVacuumNotOurs, false
	case s.vacuumOff == nil:
		st.MasterVacuum = MasterVacuumNotSet
	case *s.vacuumOff:
		st.MasterVacuum = MasterVacuumOff
	default:
		st.MasterVacuum = MasterVacuumOn
	}
	return st, true
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

func (s *Scheduler) propose(ctx context.Context, cmd *pb.Command) (*pb.ApplyResult, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.apply.Apply(cctx, cmd)
	if err != nil {
		return nil, err
	}
	return res, fsm.ResultError(res)
}

// detectLoop polls the master, retires reflected capacity changes, proposes
// detected work and keeps the master's own vacuum off while we vacuum, every
// DetectInterval. A change of the admin lock (changed) starts an assignment
// round at once (work resumes as soon as the lock is ours) and brings the
// next detection round forward, to no sooner than DetectInterval/2 after
// the last: a round reads the whole topology (tens of MB on a large
// cluster), and a flapping master can change the lock every second.
func (s *Scheduler) detectLoop(ctx context.Context, changed <-chan struct{}) {
	minGap := s.cfg.DetectInterval / 2
	next := time.NewTimer(0)
	defer next.Stop()
	var last, due time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			s.Kick()
			if at := last.Add(minGap); at.Before(due) {
				due = at
				next.Reset(time.Until(at))
			}
			continue
		case <-next.C:
		}
		last = time.Now()
		s.detectOnce(ctx)
		due = time.Now().Add(s.cfg.DetectInterval)
		next.Reset(s.cfg.DetectInterval)
	}
}

// gate is what the admin lock allows now (everything without a master),
// logging when that changes. Call with s.mu held.
func (s *Scheduler) gate() Gate {
	if s.lock == nil {
		return Gate{Detect: true, Assign: true}
	}
	g := LockGate(s.lock.State(), s.shell, time.Now())
	if g.Paused != s.paused {
		if g.Paused != "" {
			s.log.Warn("maintenance paused", "why", g.Paused, "detect", g.Detect, "assign", g.Assign)
		} else {
			s.log.Info("maintenance resumed: the admin lock is ours and the shell lock free", "lock", seaweed.AdminLockName)
		}
		s.paused = g.Paused
	}
	return g
}

// checkShell asks the master who holds SeaweedFS's shell lock. A failed ask
// keeps the last answer. Call without s.mu.
func (s *Scheduler) checkShell(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	holder, held, err := s.master.LockHolder(cctx, seaweed.ShellLockName)
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shellChecked = time.Now()
	if err != nil {
		if s.shell.Err == nil {
			s.log.Warn("cannot ask the master who holds the shell lock", "error", err)
		}
		s.shell.Err = err
		return
	}
	if held != s.shell.Held || holder != s.shell.Holder || s.shell.Since.IsZero() {
		if held {
			s.log.Warn("SeaweedFS's shell lock is held: maintenance pauses", "holder", holder)
		} else if s.shell.Held {
			s.log.Info("SeaweedFS's shell lock is free again", "was", s.shell.Holder)
		}
		s.shell = OtherLock{Held: held, Holder: holder, Since: s.cfg.Now()}
		return
	}
	s.shell.Err = nil
}

// refreshShell asks about the shell lock again before assigning, unless it
// was asked within the last second or the master does not answer (then
// the last answer stands, and the admin lock's lease bounds how long).
func (s *Scheduler) refreshShell(ctx context.Context) {
	s.mu.Lock()
	skip := s.master == nil || s.topoErr != nil || time.Since(s.shellChecked) < time.Second
	s.mu.Unlock()
	if !skip {
		s.checkShell(ctx)
	}
}

func (s *Scheduler) detectOnce(ctx context.Context) {
	begin := time.Now()
	defer func() {
		if ctx.Err() == nil {
			s.cfg.Observe(EventDetection, pb.TaskType_TASK_TYPE_UNSPECIFIED, time.Since(begin))
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	topo, err := s.master.Topology(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		s.checkShell(ctx)
	}
	s.mu.Lock()
	s.lastPoll = s.cfg.Now()
	if err != nil {
		if s.topoErr == nil {
			s.log.Warn("master unreachable: detection paused, running tasks continue", "error", err)
		}
		s.topoErr, s.topoOK = err, false
		s.mu.Unlock()
		return
	}
	if s.topoErr != nil {
		s.log.Info("master reachable again")
	}
	s.topoErr = nil
	s.topo, s.topoOK = topo, s.trustTopology(topo)
	if s.topoOK {
		s.trusted = topo
	}
	ok := s.topoOK
	vacuumWorkers := false
	for _, sess := range s.sessions {
		vacuumWorkers = vacuumWorkers || sess.can(pb.TaskType_TASK_TYPE_VACUUM)
	}
	detect := s.gate().Detect
	lock := s.lock.State()
	if lock.Status == seaweed.LockOther {
		// Whoever holds the admin lock now decides the master's vacuum
		// (our last switch stays in effect until it does).
		s.vacuumOff = nil
	}
	s.mu.Unlock()
	// The master's vacuum is ours to switch while the admin lock is (the
	// master keeps a by-plugin switch only while the lock is held), whether
	// or not the shell lock pauses detection.
	if lock.OursAt(time.Now()) {
		if err := s.master.SetAutoVacuum(ctx, !vacuumWorkers); err != nil {
			s.log.Warn("could not switch the master's automatic vacuum", "off", vacuumWorkers, "error", err)
		} else {
			s.mu.Lock()
			if s.vacuumOff == nil || *s.vacuumOff != vacuumWorkers {
				s.log.Info("master automatic vacuum", "off", vacuumWorkers)
			}
			s.vacuumOff = &vacuumWorkers
			s.mu.Unlock()
		}
	}
	if !detect {
		// Another process holds a lock (or the admin lock is not known to
		// be ours): nothing is detected. Capacity changes of our finished
		// work are still retired.
		if ok {
			s.reconcile(ctx, topo)
		}
		return
	}
	if !ok {
		return
	}
	s.reconcile(ctx, topo)
	s.detect(ctx, topo)
	s.Kick()
}

// trustTopology decides whether a topology is complete enough to act on: a
// drop in servers (a master restarting, volume servers re-registering) is
// trusted only once it has held, unchanged, for three polls; an empty one
// never is. Call with s.mu held.
func (s *Scheduler) trustTopology(t *seaweed.Topology) bool {
	n, expected := len(t.Servers), s.refill.Expected()
	switch s.refill.Trust(n) {
	case seaweed.Trusted:
		return true
	case seaweed.Smaller:
		s.log.Info("accepting a smaller topology", "servers", n, "was", expected)
		return true
	case seaweed.Waiting:
		s.log.Info("waiting for a stable topology before detecting", "servers", n)
	default:
		if expected > 0 {
			s.log.Info("topology is refilling: detection paused", "servers", n, "expected", expected)
		}
	}
	return false
}

func (s *Scheduler) reconcile(ctx context.Context, topo *seaweed.Topology) {
	var retire []uint64
	s.state.Read(func(st *fsm.State) {
		for _, c := range st.CapacityChanges() {
			if Reflected(c, topo) {
				retire = append(retire, c.TaskId)
			}
		}
	})
	if len(retire) == 0 {
		return
	}
	if _, err := s.propose(ctx, &pb.Command{Body: &pb.Command_RetireCapacityChanges{RetireCapacityChanges: &pb.RetireCapacityChanges{TaskIds: retire}}}); err != nil {
		s.log.Warn("retire capacity changes", "error", err)
		return
	}
	s.log.Info("master reflects completed work", "retired", len(retire))
}

func (s *Scheduler) detect(ctx context.Context, topo *seaweed.Topology) {
	var busyVols map[uint32]bool
	var moves []ActiveMove
	cooldown := s.cfg.Now().Add(-s.cfg.FailureCooldown).UnixNano()
	s.state.Read(func(st *fsm.State) {
		busyVols = map[uint32]bool{}
		// A task that failed, or that an operator cancelled, keeps detection
		// off its volume for the cooldown; operators' own submissions and
		// retries are not held back.
		for _, t := range st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_FAILED, pb.TaskState_TASK_STATE_CANCELLED}}) {
			if t.FinishedAt >= cooldown {
				busyVols[t.VolumeId] = true
			}
		}
		for _, t := range st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_PENDING, pb.TaskState_TASK_STATE_ASSIGNED, pb.TaskState_TASK_STATE_RUNNING}}) {
			busyVols[t.VolumeId] = true
			if t.Type == pb.TaskType_TASK_TYPE_BALANCE {
				moves = append(moves, ActiveMove{Source: t.Source, Target: t.Target})
			}
		}
		for _, c := range st.CapacityChanges() {
			busyVols[c.VolumeId] = true
		}
	})
	props := Detect(topo, func(v uint32) bool { return busyVols[v] }, moves, s.cfg.Thresholds, s.cfg.Now())
	for _, p := range props {
		res, err := s.propose(ctx, &pb.Command{Body: &pb.Command_SubmitTask{SubmitTask: &pb.SubmitTask{
			Type: p.Type, VolumeId: p.VolumeID, Collection: p.Collection, Source: p.Source, Target: p.Target,
			Priority: p.Priority, Origin: "detector",
		}}})
		if err != nil {
			if errors.Is(err, fsm.ErrVolumeBusy) {
				continue
			}
			s.log.Warn("propose detected task", "type", fsm.TypeName(p.Type), "volume", p.VolumeID, "error", err)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if !res.Existing {
			s.log.Info("detected", "task", res.Task.Id, "type", fsm.TypeName(p.Type), "volume", p.VolumeID, "why", p.Reason)
		}
	}
}

// maintain runs one round of lease checks, stuck checks and assignment.
func (s *Scheduler) maintain(ctx context.Context) {
	now := s.cfg.Now()
	var active []*pb.Task
	s.state.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_ASSIGNED, pb.TaskState_TASK_STATE_RUNNING}})
	})
	s.noteRestored()
	s.expireLeases(ctx, active, now)
	s.cancelRequested(active, now)
	s.checkStuck(active, now)
	if now.Sub(s.lastPrune) >= pruneEvery {
		s.lastPrune = now
		s.prune(ctx, now)
	}
	// The pending queue can be long (a master outage, no workers): read it
	// only when something could be assigned, not on every kick.
	if !s.mayAssign(active) {
		return
	}
	var pending []*pb.Task
	unreported := map[uint32]bool{}
	s.state.Read(func(st *fsm.State) {
		pending = st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_PENDING}})
		for _, c := range st.CapacityChanges() {
			// Only changes of placement: a vacuum leaves the replicas where
			// they are (and its change may stay unretired for long while
			// users keep writing and deleting).
			if c.Type == pb.TaskType_TASK_TYPE_BALANCE || c.Type == pb.TaskType_TASK_TYPE_ERASURE_CODING {
				unreported[c.VolumeId] = true
			}
		}
	})
	s.assign(ctx, active, waitForMaster(pending, unreported), now)
}

// waitForMaster leaves out the pending tasks whose volume has a completed
// move or erasure coding the master does not show yet: planned now, from a
// topology from before that change, their attempt would act on replicas
// that are gone. They are planned once the master
// reflects the change and it is retired. (Detection already skips such
// volumes; manual submissions and retries do not go through detection.)
func waitForMaster(pending []*pb.Task, unreported map[uint32]bool) []*pb.Task {
	if len(unreported) == 0 {
		return pending
	}
	out := pending[:0:0]
	for _, t := range pending {
		if !unreported[t.VolumeId] {
			out = append(out, t)
		}
	}
	return out
}

// mayAssign reports whether the admin lock allows assigning (see LockGate),
// and a topology to plan from (see assignTopology) and a connected worker
// with a free slot exist, without which assign has nothing to do.
func (s *Scheduler) mayAssign(active []*pb.Task) bool {
	running := map[string]int{}
	for _, t := range active {
		running[t.WorkerId]++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gate().Assign {
		return false
	}
	if topo, _ := s.assignTopology(); topo == nil {
		return false
	}
	for _, sess := range s.sessions {
		if running[sess.id] < sess.max {
			return true
		}
	}
	return false
}

// expireLeases requeues the attempts of workers silent for lease+grace. A
// new leader first gives every worker one lease+grace to reconnect.
func (s *Scheduler) expireLeases(ctx context.Context, active []*pb.Task, now time.Time) {
	limit := s.cfg.Lease + s.cfg.Grace
	s.mu.Lock()
	if now.Sub(s.started) < limit {
		s.mu.Unlock()
		return
	}
	var expired []*pb.Task
	for _, t := range active {
		seen, ok := s.lastSeen[t.WorkerId]
		if _, conn := s.sessions[t.WorkerId]; conn && ok && now.Sub(seen) < limit {
			continue
		}
		if !ok {
			seen = s.started
		}
		if now.Sub(seen) >= limit && now.Sub(time.Unix(0, t.AssignedAt)) >= limit {
			expired = append(expired, t)
		}
	}
	for id, sess := range s.sessions {
		if now.Sub(s.lastSeen[id]) >= limit {
			s.log.Warn("worker lease expired", "worker", id)
			sess.close()
			delete(s.sessions, id)
		}
	}
	s.mu.Unlock()
	byWorker := map[string][]*pb.Task{}
	var workers []string
	for _, t := range expired {
		if _, ok := byWorker[t.WorkerId]; !ok {
			workers = append(workers, t.WorkerId)
		}
		byWorker[t.WorkerId] = append(byWorker[t.WorkerId], t)
	}
	for _, w := range workers {
		s.requeueExpired(ctx, w, byWorker[w], limit)
	}
}

// requeueExpired requeues a silent worker's attempts while holding the
// worker's ownership lock, having checked again under it that the worker is
// still silent, by the same rule as the decision: heard from within
// lease+grace, connected or not (a worker whose stream broke after an
// acknowledged heartbeat may still roll back under its lease guard until
// then). A hello (or heartbeat) that got in since the decision re-attached
// the attempts; one that comes after finds the requeues committed and is
// told to drop them (see ownership). Re-attached, they must still be listed
// by the worker's next heartbeat, or they are requeued then (confirmRunning):
// a worker restarted with a wiped data dir does not run them, and nothing
// else would requeue them before they count as stuck. Not at once: an
// attempt its hello did not list may have ended, its outcome re-sent after
// the hello and before that heartbeat.
func (s *Scheduler) requeueExpired(ctx context.Context, worker string, tasks []*pb.Task, limit time.Duration) {
	if s.beforeRecheck != nil {
		s.beforeRecheck(ctx, worker)
	}
	unlock, err := s.owners.lock(ctx, worker)
	if err != nil {
		return // leadership lost
	}
	defer unlock()
	s.mu.Lock()
	seen, ok := s.lastSeen[worker]
	alive := ok && s.cfg.Now().Sub(seen) < limit
	if alive {
		for _, t := range tasks {
			s.confirm[t.Id] = t.Fence
		}
	}
	s.mu.Unlock()
	if alive {
		s.log.Info("worker re-attached as its lease expired: its attempts stay its own if its next heartbeat lists them", "worker", worker, "attempts", len(tasks))
		return
	}
	// Proposed together, so the lock is held for about one commit.
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A failed proposal is retried by the next tick.
			_ = s.requeue(ctx, t, t.Fence, fmt.Sprintf("worker %s stopped responding", t.WorkerId), false)
		}()
	}
	wg.Wait()
}

// cancelRequested tells workers to stop the attempts of tasks an operator
// cancelled. The task stays active (its volume reserved) until the worker
// reports the attempt stopped, or its lease expires; either ends it
// cancelled. The request is replicated, so a new leader picks it up here.
func (s *Scheduler) cancelRequested(active []*pb.Task, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range active {
		if !t.CancelRequested {
			continue
		}
		if ci, ok := s.cancelling[t.Id]; ok && ci.fence == t.Fence {
			if ci.retry {
				// A stuck cancel already asked the worker to stop: make its
				// end final instead of a retry.
				ci.retry, ci.reason = false, t.CancelReason
				s.cancelling[t.Id] = ci
			}
			continue
		}
		s.log.Info("cancelling task on request: stopping its attempt", "task", t.Id, "worker", t.WorkerId, "reason", t.CancelReason)
		s.cancelling[t.Id] = cancelInfo{fence: t.Fence, reason: t.CancelReason, at: now, sent: now}
		if sess, ok := s.sessions[t.WorkerId]; ok {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: t.Id, Fence: t.Fence, Reason: t.CancelReason}}})
		}
	}
}

// StateRestored is told by the FSM that a snapshot replaced the state (it
// runs on raft's FSM goroutine, so it only flags it). While this node leads,
// the next round drops the leader-local knowledge of attempts, which no
// longer matches the state, and has the attempts the restored state holds
// active confirmed by their workers' next heartbeats (see confirmRunning).
func (s *Scheduler) StateRestored() {
	s.restored.Store(true)
	s.Kick()
}

// noteRestored, after a restore, resets what the leader knows of attempts
// and records which must be confirmed. It reads the state itself: a round's
// earlier read may predate the restore.
func (s *Scheduler) noteRestored() {
	if !s.restored.Swap(false) {
		return
	}
	s.log.Warn("the replicated state was replaced by a snapshot: reconciling running attempts with workers")
	var active []*pb.Task
	s.state.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_ASSIGNED, pb.TaskState_TASK_STATE_RUNNING}})
	})
	confirm := map[uint64]uint64{}
	for _, t := range active {
		confirm[t.Id] = t.Fence
	}
	s.mu.Lock()
	s.progress, s.cancelling, s.confirm = map[uint64]progressInfo{}, map[uint64]cancelInfo{}, confirm
	s.mu.Unlock()
}

// checkStuck tells workers to stop attempts that made no progress for too long.
func (s *Scheduler) checkStuck(active []*pb.Task, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range active {
		if _, ok := s.cancelling[t.Id]; ok {
			continue
		}
		p, ok := s.progress[t.Id]
		if !ok || p.fence != t.Fence {
			s.progress[t.Id] = progressInfo{fence: t.Fence, at: now}
			continue
		}
		if now.Sub(p.at) < s.cfg.StuckAfter[t.Type] {
			continue
		}
		reason := fmt.Sprintf("stuck: no progress for %s in step %q", now.Sub(p.at).Truncate(time.Second), p.step)
		s.log.Warn("task stuck, cancelling its attempt", "task", t.Id, "worker", t.WorkerId, "reason", reason)
		s.cancelling[t.Id] = cancelInfo{fence: t.Fence, reason: reason, retry: true, at: now, sent: now}
		if sess, ok := s.sessions[t.WorkerId]; ok {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: t.Id, Fence: t.Fence, Reason: reason}}})
		}
	}
}

// assign hands ready tasks to workers with free slots.
func (s *Scheduler) assign(ctx context.Context, active, pending []*pb.Task, now time.Time) {
	ready := Ready(pending, now)
	if len(ready) == 0 {
		return
	}
	s.refreshShell(ctx)
	s.mu.Lock()
	topo, topoOK := s.assignTopology()
	if !s.gate().Assign {
		topo = nil
	}
	running := map[string]int{}
	for _, t := range active {
		running[t.WorkerId]++
	}
	var loads []WorkerLoad
	for _, sess := range s.sessions {
		loads = append(loads, WorkerLoad{ID: sess.id, Capabilities: sess.caps, MaxConcurrent: sess.max, Running: running[sess.id]})
	}
	s.mu.Unlock()
	sort.Slice(loads, func(i, j int) bool { return loads[i].ID < loads[j].ID })
	if len(loads) == 0 || topo == nil {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, t := range ready {
		if ctx.Err() != nil {
			break
		}
		if !topoOK && NeedsMaster(t.Type) {
			continue
		}
		id, ok := PickWorker(t.Type, loads)
		if !ok {
			continue
		}
		for i := range loads {
			if loads[i].ID == id {
				loads[i].Running++
			}
		}
		spec, planErr := PlanSpec(t, topo, s.cfg.Thresholds)
		wg.Add(1)
		sem <- struct{}{}
		go func(t *pb.Task, worker string, spec *pb.TaskSpec, planErr error) {
			defer wg.Done()
			defer func() { <-sem }()
			s.assignOne(ctx, t, worker, spec, planErr)
		}(t, id, spec, planErr)
	}
	wg.Wait()
}

// assignTopology is the topology assignments are planned from, and whether
// the master answers with a complete one right now. While it is unreachable
// or refilling, tasks already detected that need no master (vacuum: volume
// servers only) still go out, planned from the last complete topology of
// this term (DESIGN.md section 4: workers talk to volume servers directly;
// only detection pauses); a leader that never saw one assigns nothing. Call
// with s.mu held.
func (s *Scheduler) assignTopology() (*seaweed.Topology, bool) {
	if s.topoOK {
		return s.topo, true
	}
	return s.trusted, false
}

// schedulerWorker is the worker id under which the leader itself fails a
// task that cannot be planned (assigned -> failed is the legal path).
const schedulerWorker = "(scheduler)"

func (s *Scheduler) assignOne(ctx context.Context, t *pb.Task, worker string, spec *pb.TaskSpec, planErr error) {
	var done *AlreadyDone
	if errors.As(planErr, &done) {
		s.completeDone(ctx, t, done)
		return
	}
	if planErr != nil {
		worker = schedulerWorker
	}
	assign := &pb.AssignTask{TaskId: t.Id, WorkerId: worker}
	if planErr == nil {
		assign.Servers, assign.Move = SpecServers(spec), SpecMove(spec)
	}
	res, err := s.propose(ctx, &pb.Command{Body: &pb.Command_AssignTask{AssignTask: assign}})
	if err != nil {
		if !errors.Is(err, fsm.ErrIllegalTransition) {
			s.log.Warn("assign", "task", t.Id, "worker", worker, "error", err)
		}
		return
	}
	if errors.Is(planErr, ErrPlanWait) {
		// Retryable: the attempt is requeued with backoff (and fails once
		// the retries are spent); nothing was sent to a worker.
		reason := strings.TrimPrefix(planErr.Error(), ErrPlanWait.Error()+": ")
		if err := s.finishAttempt(ctx, res.Task, res.Task.Fence, reason, true); err != nil {
			s.log.Warn("requeue unplannable task", "task", t.Id, "error", err)
		}
		return
	}
	if planErr != nil {
		reason := planErr.Error()
		if _, err := s.propose(ctx, &pb.Command{Body: &pb.Command_FailTask{FailTask: &pb.FailTask{TaskId: t.Id, Fence: res.Task.Fence, Error: trimPlan(reason)}}}); err != nil {
			s.log.Warn("fail unplannable task", "task", t.Id, "error", err)
		} else {
			s.log.Warn("task failed", "task", t.Id, "reason", trimPlan(reason))
		}
		return
	}
	spec.Task = res.Task
	s.mu.Lock()
	sess, ok := s.sessions[worker]
	s.progress[t.Id] = progressInfo{fence: res.Task.Fence, at: s.cfg.Now()}
	s.mu.Unlock()
	if ok {
		sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Assign{Assign: &pb.Assign{Spec: spec}}})
	}
	s.log.Debug("assigned", "task", t.Id, "worker", worker, "fence", res.Task.Fence)
}

// completeDone completes a retried task whose work an earlier attempt did
// (see AlreadyDone): the leader takes the attempt itself and commits the
// change the topology shows. A step that fails leaves the attempt with the
// leader's own pseudo-worker, whose lease then expires and requeues it.
func (s *Scheduler) completeDone(ctx context.Context, t *pb.Task, done *AlreadyDone) {
	res, err := s.propose(ctx, &pb.Command{Body: &pb.Command_AssignTask{AssignTask: &pb.AssignTask{TaskId: t.Id, WorkerId: schedulerWorker}}})
	if err != nil {
		if !errors.Is(err, fsm.ErrIllegalTransition) {
			s.log.Warn("assign a task found done", "task", t.Id, "error", err)
		}
		return
	}
	fence := res.Task.Fence
	if _, err := s.propose(ctx, &pb.Command{Body: &pb.Command_StartTask{StartTask: &pb.StartTask{TaskId: t.Id, Fence: fence}}}); err != nil {
		s.log.Warn("start a task found done", "task", t.Id, "error", err)
		return
	}
	if _, err := s.propose(ctx, &pb.Command{Body: &pb.Command_CompleteTask{CompleteTask: &pb.CompleteTask{TaskId: t.Id, Fence: fence, Change: done.Change}}}); err != nil {
		s.log.Warn("complete a task found done", "task", t.Id, "error", err)
		return
	}
	s.log.Info("task completed: an earlier attempt did the work", "task", t.Id, "detail", done.Error())
}

func trimPlan(s string) string {
	const p = "cannot plan task: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// requeue puts an attempt back to pending (fence-checked).
func (s *Scheduler) requeue(ctx context.Context, t *pb.Task, fence uint64, reason string, retry bool) error {
	var notBefore int64
	if retry {
		notBefore = s.cfg.Now().Add(Backoff(t.RetryCount + 1)).UnixNano()
	}
	res, err := s.propose(ctx, &pb.Command{Body: &pb.Command_RequeueTask{RequeueTask: &pb.RequeueTask{
		TaskId: t.Id, Fence: fence, Reason: reason, NotBefore: notBefore, CountAsRetry: retry,
	}}})
	if err == nil || isRefusal(err) {
		// Only once the outcome is known: a report re-sent after an unknown
		// outcome must still find the cancel it answers.
		s.mu.Lock()
		delete(s.progress, t.Id)
		delete(s.cancelling, t.Id)
		s.mu.Unlock()
	}
	if err != nil {
		if !errors.Is(err, fsm.ErrStaleFence) && !errors.Is(err, fsm.ErrIllegalTransition) {
			s.log.Warn("requeue", "task", t.Id, "error", err)
		}
		if isRefusal(err) {
			return nil
		}
		return fmt.Errorf("requeue task %d: %w", t.Id, err)
	}
	if res.Task.GetState() == pb.TaskState_TASK_STATE_CANCELLED {
		s.log.Info("task cancelled on request once its attempt stopped", "task", t.Id, "reason", reason)
	} else {
		s.log.Info("requeued", "task", t.Id, "reason", reason, "retry", retry)
	}
	s.Kick()
	return nil
}
