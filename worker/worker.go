package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/errtext"
	"github.com/groundskeeper-dev/groundskeeper/internal/ticker"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TaskMetadataKey is the gRPC metadata key a worker sets on every
// volume-server call of an attempt: "<task id>/<fence>".
const TaskMetadataKey = "gk-task"

// Config describes a worker.
type Config struct {
	ID            string
	Admins        []string
	DataDir       string
	Capabilities  []fsmpb.TaskType
	MaxConcurrent int
	Executors     map[fsmpb.TaskType]Executor
	Logger        hclog.Logger
	// Version is sent in the hello.
	Version string
	// TLS, when set, is the worker's mutual-TLS material (--tls-*): it
	// dials the admins presenting its certificate, whose name must be ID,
	// and accepts only admin certificates from the CA. nil is plaintext.
	TLS *certs.Source
}

// transport returns the credentials the worker dials admins with: under
// TLS any admin of the CA, or, with leader set (the leader an admin
// redirected us to), only the admin named leader. A redirect is an
// admin's word; the handshake makes sure the address it gave is the admin
// it named, not whatever admin, or former admin, answers there.
func (w *Worker) transport(leader string) grpc.DialOption {
	if w.cfg.TLS == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	if leader != "" {
		return grpc.WithTransportCredentials(w.cfg.TLS.ClientCredentialsFor(leader, certs.RoleAdmin))
	}
	return grpc.WithTransportCredentials(w.cfg.TLS.ClientCredentials(certs.RoleAdmin))
}

// Worker runs assignments from the leader.
type Worker struct {
	cfg     Config
	journal *Journal
	log     hclog.Logger

	mu sync.Mutex
	// attempts are the attempts this worker works on, by task id: running
	// ones, and journalled ones from before a restart being rolled back. An
	// attempt stays here until its outcome is in the outbox, so it is always
	// in one of the two (a cancel or a re-sent assignment never finds it in
	// neither).
	attempts map[uint64]*attempt
	// ended is signalled (with mu) whenever an attempt leaves attempts.
	ended *sync.Cond
	// restored are journalled attempts from before a restart, waiting for the
	// leader to say whether they are still ours.
	restored map[attemptKey]*Entry
	// outbox holds outcomes until the leader acknowledges them.
	outbox  map[attemptKey]*pb.WorkerMessage
	stream  pb.WorkerService_SessionClient
	sendMu  sync.Mutex
	lastAck time.Time
	lease   time.Duration
	// grace is the leader's grace after a lease (Welcome.grace_ms).
	grace time.Duration
	// leaseAnchor is when the worker sent the last heartbeat the leader
	// acknowledged: the leader heard from it at or after that, so it
	// requeues nothing of ours before leaseAnchor + lease + grace.
	// hbSent queues the send times of unacknowledged heartbeats of the
	// current session (acks come back in order).
	leaseAnchor time.Time
	hbSent      []time.Time
	hint        redirectHint
	next        int
	// stopping is set when Run's context ended: the worker is shutting down.
	stopping bool

	// finished counts reported outcomes: completed, failed, released.
	finished [3]atomic.Uint64
}

// Stats is a worker's current load and outcome counts, for metrics.
type Stats struct {
	Running, MaxConcurrent int
	// Connected is true while a session with the leader is up.
	Connected                   bool
	Completed, Failed, Released uint64
}

// Stats returns the worker's current load, connection and outcome counts.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	st := Stats{Running: len(w.attempts), MaxConcurrent: w.cfg.MaxConcurrent, Connected: w.stream != nil}
	w.mu.Unlock()
	st.Completed, st.Failed, st.Released = w.finished[0].Load(), w.finished[1].Load(), w.finished[2].Load()
	return st
}

type attempt struct {
	spec     *pb.TaskSpec
	ctx      context.Context
	cancel   context.CancelFunc
	step     string
	progress float64
	// released is set when the leader asked us to stop: report Released.
	released bool
	reason   string
	// superseded is set when the leader said the attempt is no longer
	// current: it must not touch SeaweedFS again, not even to roll back.
	superseded bool
	// restored: a journalled attempt from before a restart, being rolled
	// back (see rollbackRestored).
	restored bool
	// abort stops a restored attempt's rollback at once (set by
	// rollbackRestored, under w.mu): for a superseded cancel or a shutdown.
	abort context.CancelFunc
}

// New validates the configuration and opens the journal.
func New(cfg Config) (*Worker, error) {
	if cfg.ID == "" {
		return nil, errors.New("a worker id is required")
	}
	if len(cfg.Admins) == 0 {
		return nil, errors.New("at least one admin address is required")
	}
	if cfg.MaxConcurrent < 1 {
		return nil, fmt.Errorf("max concurrent %d must be at least 1", cfg.MaxConcurrent)
	}
	if len(cfg.Capabilities) == 0 {
		return nil, errors.New("at least one capability is required")
	}
	for _, c := range cfg.Capabilities {
		if cfg.Executors[c] == nil {
			return nil, fmt.Errorf("no executor for capability %s", fsm.TypeName(c))
		}
	}
	if cfg.TLS != nil {
		role, name, err := cfg.TLS.Identity()
		if err != nil {
			return nil, fmt.Errorf("worker certificate: %w", err)
		}
		if role != certs.RoleWorker || name != cfg.ID {
			return nil, fmt.Errorf("the certificate names %s %q but this is worker %q: issue it with --role worker --name %s", role, name, cfg.ID, cfg.ID)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	j, err := OpenJournal(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, journal: j, log: cfg.Logger, attempts: map[uint64]*attempt{}, restored: map[attemptKey]*Entry{},
		outbox: map[attemptKey]*pb.WorkerMessage{}}
	w.ended = sync.NewCond(&w.mu)
	entries, err := j.All()
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("read journal: %w", err)
	}
	for _, e := range entries {
		id := attemptKey{e.Spec.Task.Id, e.Spec.Task.Fence}
		switch {
		case e.Completed != nil:
			w.outbox[id] = &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: e.Completed}}
		case e.Failed != nil:
			w.outbox[id] = &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: e.Failed}}
		default:
			w.restored[id] = e
		}
	}
	if len(entries) > 0 {
		w.log.Info("journal holds attempts from before a restart", "unreported", len(w.outbox), "interrupted", len(w.restored))
	}
	return w, nil
}

// Close closes the journal. Call after Run returned.
func (w *Worker) Close() error { return w.journal.Close() }

// Run connects to the admins and works until ctx ends. Attempts still
// running when ctx ends are stopped and rolled back.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.watchLease(ctx) }()
	go func() { defer wg.Done(); w.flushJournal(ctx) }()
	conns := map[string]*grpc.ClientConn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	failures := 0
	for ctx.Err() == nil {
		addr, leader := w.pickAddr()
		key := addr
		if w.cfg.TLS != nil && leader != "" {
			key = addr + " as " + leader // checked for that admin's certificate
		}
		conn, ok := conns[key]
		if !ok {
			var err error
			conn, err = grpc.NewClient(addr, w.transport(leader),
				grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}))
			if err != nil {
				return fmt.Errorf("admin address %q: %w", addr, err)
			}
			conns[key] = conn
		}
		// This loop paces the attempts. Without the reset, a connection to
		// an admin that was down keeps failing at once in gRPC's own
		// reconnect backoff (1 s growing to 2 min) after the admin is back,
		// even when it is the new leader.
		conn.ResetConnectBackoff()
		redirected, welcomed, err := w.session(ctx, pb.NewWorkerServiceClient(conn), addr)
		if ctx.Err() != nil {
			break
		}
		if redirected {
			failures = 0
			continue
		}
		if welcomed || errors.Is(err, errNoLeaderYet) {
			// A session that was up ended (e.g. the leader died), or an
			// admin answered but knows no leader yet (an election is under
			// way): ask again soon, the new leader is moments away.
			failures = 0
		}
		failures++
		if leader != "" && !welcomed {
			w.log.Warn("did not reach the leader an admin redirected to", "leader", leader, "admin", addr, "error", err)
		} else {
			w.log.Debug("session ended", "admin", addr, "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(reconnectDelay(failures)):
		}
	}
	// Restored attempts' rollbacks stop at once, and are redone after the
	// restart (see rollbackRestored).
	w.mu.Lock()
	w.stopping = true
	for _, a := range w.attempts {
		if a.abort != nil {
			a.abort()
		}
	}
	w.mu.Unlock()
	w.stopAll("worker shutting down")
	wg.Wait()
	return nil
}

// redirectHint is where the last redirect sent us: the leader's gRPC
// address and its id, which its certificate must name under TLS.
type redirectHint struct{ addr, id string }

// errNoLeaderYet is an admin's answer while no leader is known to it.
var errNoLeaderYet = errors.New("admin knows no leader yet")

// reconnectDelay paces session attempts: quick at first, since a leader
// election takes a second or two, then up to a second apart while no admin
// answers at all.
func reconnectDelay(failures int) time.Duration {
	return min(time.Duration(failures)*100*time.Millisecond, time.Second)
}

// pickAddr returns the admin to try next: the leader of the last
// redirect, with its id, or the next of the configured admins (no id).
func (w *Worker) pickAddr() (addr, leader string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hint.addr != "" {
		h := w.hint
		w.hint = redirectHint{}
		return h.addr, h.id
	}
	a := w.cfg.Admins[w.next%len(w.cfg.Admins)]
	w.next++
	return a, ""
}

// session runs one stream; it reports whether the admin redirected us and
// whether it welcomed us (the session was up before it ended).
func (w *Worker) session(ctx context.Context, c pb.WorkerServiceClient, addr string) (redirected, welcomed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Session(sctx)
	if err != nil {
		return false, false, err
	}
	hello := &pb.Hello{WorkerId: w.cfg.ID, Capabilities: w.cfg.Capabilities, MaxConcurrent: uint32(w.cfg.MaxConcurrent),
		Running: w.running(), Version: w.cfg.Version}
	// The welcome does not renew the lease anchor: a leader that no longer
	// counts an attempt of ours as current says so in a Cancel queued behind
	// the welcome, and the first heartbeat ack comes after it. A process's
	// first hello sets it, though (see anchorFirstHello).
	w.anchorFirstHello(time.Now())
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: hello}}); err != nil {
		return false, false, err
	}
	// An admin that accepts the stream but does not answer (frozen by
	// SIGSTOP, a VM pause, overloaded) must not hold the worker: it has a
	// lease to re-attach its attempts within, and its finished attempts'
	// reports wait in its outbox meanwhile. Gone unanswered too long, the
	// hello is given up and the next admin is tried.
	answered := make(chan struct{})
	helloTimer := time.AfterFunc(w.helloTimeout(), func() {
		select {
		case <-answered:
		default:
			cancel()
		}
	})
	first, err := stream.Recv()
	close(answered)
	helloTimer.Stop()
	if err != nil {
		if ctx.Err() == nil && sctx.Err() != nil {
			return false, false, fmt.Errorf("%s did not answer the hello within %s: %w", addr, w.helloTimeout(), err)
		}
		return false, false, err
	}
	if r := first.GetRedirect(); r != nil {
		if r.LeaderGrpcAddr == "" {
			return false, false, fmt.Errorf("%s: %w", addr, errNoLeaderYet)
		}
		if w.cfg.TLS != nil && r.LeaderId == "" {
			// Nothing to check the leader's certificate against.
			return false, false, fmt.Errorf("%s redirected to %s without naming the leader: not followed", addr, r.LeaderGrpcAddr)
		}
		w.mu.Lock()
		w.hint = redirectHint{addr: r.LeaderGrpcAddr, id: r.LeaderId}
		w.mu.Unlock()
		return true, false, fmt.Errorf("%s is not the leader", addr)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return false, false, errors.New("admin answered hello with neither welcome nor redirect")
	}
	w.mu.Lock()
	w.stream, w.lastAck = stream, time.Now()
	w.lease = time.Duration(welcome.LeaseMs) * time.Millisecond
	w.grace = time.Duration(welcome.GraceMs) * time.Millisecond
	w.hbSent = nil
	pendingStarts := make([]*pb.WorkerMessage, 0, len(w.attempts))
	for id, a := range w.attempts {
		if a.restored {
			continue // its start is long committed, or never will be
		}
		pendingStarts = append(pendingStarts, &pb.WorkerMessage{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: id, Fence: a.spec.Task.Fence}}})
	}
	outbox := make([]*pb.WorkerMessage, 0, len(w.outbox))
	for _, m := range w.outbox {
		outbox = append(outbox, m)
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.stream == stream {
			w.stream = nil
		}
		w.mu.Unlock()
	}()
	w.log.Info("connected", "admin", addr, "leader", welcome.LeaderId)
	for _, m := range append(pendingStarts, outbox...) {
		w.send(m)
	}
	hb := time.Duration(welcome.HeartbeatMs) * time.Millisecond
	if hb <= 0 {
		hb = 2 * time.Second
	}
	w.sendHeartbeat(stream)
	go ticker.Every(sctx, hb, func() { w.sendHeartbeat(stream) })
	for {
		m, err := stream.Recv()
		if err != nil {
			return false, true, err
		}
		w.handle(ctx, m)
	}
}

// running lists attempts for hello and heartbeats: those running, and the
// journalled ones from before a restart, waiting for the leader's word or
// being rolled back. Heartbeats list them all, so the leader's
// reconciliation cancels any that is not the current attempt of its task,
// whenever it learns so (before acknowledging the heartbeat).
func (w *Worker) running() []*pb.RunningTask {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*pb.RunningTask
	for id, a := range w.attempts {
		step := a.step
		if a.restored {
			step = "rolling back after a worker restart"
		}
		out = append(out, &pb.RunningTask{TaskId: id, Fence: a.spec.Task.Fence, Step: step, Progress: a.progress})
	}
	for k := range w.restored {
		out = append(out, &pb.RunningTask{TaskId: k.id, Fence: k.fence, Step: "interrupted by a worker restart"})
	}
	return out
}

// helloTimeout bounds the wait for an admin's answer to a hello: 3 s, or
// half the lease of the last welcome if that is shorter.
func (w *Worker) helloTimeout() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := 3 * time.Second
	if w.lease > 0 && w.lease/2 < d {
		d = w.lease / 2
	}
	return d
}

// sendHeartbeat sends a heartbeat on stream, noting when, so its ack can
// move the lease anchor.
func (w *Worker) sendHeartbeat(stream pb.WorkerService_SessionClient) {
	hb := &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{Running: w.running()}}}
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	w.mu.Lock()
	if w.stream != stream {
		w.mu.Unlock()
		return
	}
	w.hbSent = append(w.hbSent, time.Now())
	w.mu.Unlock()
	_ = stream.Send(hb)
}

// callGuard is the check before (and during) every volume-server call of
// attempt a: refused once the leader said the attempt is no longer current,
// or once the leader may have requeued it (lease + grace after the send
// time of the last heartbeat it acknowledged; a fifth of the grace is kept
// as margin); a call still running then is cancelled. A worker frozen
// (SIGSTOP, a VM pause) or cut off past that point leaves the volume to the
// attempt that replaced it, its rollback included.
func (w *Worker) callGuard(a *attempt) seaweed.CallGuard {
	return func() (time.Time, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if a.superseded {
			return time.Time{}, fmt.Errorf("task %d attempt %d is no longer current", a.spec.Task.Id, a.spec.Task.Fence)
		}
		return w.leaseHeldLocked()
	}
}

// anchorFirstHello starts the lease anchor at a process's first hello: the
// leader hears from it no earlier, so nothing it assigns this process is
// requeued before then + lease + grace. Without it the anchor stays unset
// until the first heartbeat ack, and a worker frozen (SIGSTOP) right after
// receiving an assignment ran it on waking although the leader had given
// the task to another worker meanwhile (found by the fault harness).
func (w *Worker) anchorFirstHello(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.leaseAnchor.IsZero() {
		w.leaseAnchor = at
	}
}

// leaseHeldLocked (w.mu held) returns until when the leader cannot have
// requeued this worker's attempts, or an error once it may have.
func (w *Worker) leaseHeldLocked() (time.Time, error) {
	if w.lease <= 0 {
		return time.Time{}, nil
	}
	if w.leaseAnchor.IsZero() {
		// A first session, before its first ack: check again in a lease.
		return time.Now().Add(w.lease), nil
	}
	limit := w.lease + w.grace - w.grace/5
	until := w.leaseAnchor.Add(limit)
	if now := time.Now(); !now.Before(until) {
		return time.Time{}, fmt.Errorf("lease lost: the last heartbeat the leader acknowledged left %s ago (lease %s, grace %s)",
			now.Sub(w.leaseAnchor).Round(time.Millisecond), w.lease, w.grace)
	}
	return until, nil
}

func (w *Worker) send(m *pb.WorkerMessage) {
	w.mu.Lock()
	s := w.stream
	w.mu.Unlock()
	if s == nil {
		return
	}
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	_ = s.Send(m)
}

func (w *Worker) handle(ctx context.Context, m *pb.AdminMessage) {
	switch b := m.Body.(type) {
	case *pb.AdminMessage_HeartbeatAck:
		w.mu.Lock()
		w.lastAck = time.Now()
		if len(w.hbSent) > 0 {
			w.leaseAnchor = w.hbSent[0]
			w.hbSent = w.hbSent[1:]
		}
		// The leader answered our hello and this heartbeat, both listing
		// these, without cancelling them: they are still ours, but their
		// progress died with the old process. Roll back and report, so the
		// leader retries them. Being rolled back, they stay listed in
		// heartbeats until reported, so a leader that comes to see them as
		// superseded stops them.
		var rollbacks []*attempt
		for k, e := range w.restored {
			if _, busy := w.attempts[k.id]; busy {
				// Another attempt of the task runs here: this one is not
				// current, and the leader will say so (it stays listed).
				continue
			}
			delete(w.restored, k)
			rollbacks = append(rollbacks, w.newAttemptLocked(ctx, e.Spec, true))
		}
		w.mu.Unlock()
		for _, a := range rollbacks {
			go w.rollbackRestored(a)
		}
	case *pb.AdminMessage_Assign:
		w.start(ctx, b.Assign.Spec)
	case *pb.AdminMessage_Cancel:
		w.cancel(ctx, b.Cancel)
	case *pb.AdminMessage_Ack:
		w.mu.Lock()
		delete(w.outbox, attemptKey{b.Ack.TaskId, b.Ack.Fence})
		w.mu.Unlock()
		w.journal.Delete(b.Ack.TaskId, b.Ack.Fence)
	}
}

// attemptOf names the attempt an outcome reports on.
func attemptOf(m *pb.WorkerMessage) attemptKey {
	switch b := m.Body.(type) {
	case *pb.WorkerMessage_Completed:
		return attemptKey{b.Completed.TaskId, b.Completed.Fence}
	case *pb.WorkerMessage_Failed:
		return attemptKey{b.Failed.TaskId, b.Failed.Fence}
	case *pb.WorkerMessage_Released:
		return attemptKey{b.Released.TaskId, b.Released.Fence}
	}
	return attemptKey{}
}

// start journals an assignment and runs it.
func (w *Worker) start(ctx context.Context, spec *pb.TaskSpec) {
	t := spec.GetTask()
	if t == nil {
		return
	}
	w.mu.Lock()
	if a, ok := w.attempts[t.Id]; ok {
		w.mu.Unlock()
		if a.spec.Task.Fence != t.Fence {
			w.log.Warn("assignment for a task already running under another fence", "task", t.Id)
		}
		return
	}
	if out, ok := w.outbox[attemptKey{t.Id, t.Fence}]; ok {
		// Already ran this attempt; its outcome awaits acknowledgement.
		w.mu.Unlock()
		w.send(out)
		return
	}
	if _, ok := w.restored[attemptKey{t.Id, t.Fence}]; ok {
		// This very attempt was interrupted by a restart: it is rolled back
		// (or dropped) as a journalled one, never run again from the start.
		w.mu.Unlock()
		w.log.Warn("assignment of an attempt interrupted by a restart; it is rolled back, not run", "task", t.Id, "fence", t.Fence)
		return
	}
	ex := w.cfg.Executors[t.Type]
	full := len(w.attempts) >= w.cfg.MaxConcurrent
	w.mu.Unlock()
	if ex == nil || full {
		reason := "worker has no executor for " + fsm.TypeName(t.Type)
		if full {
			reason = "worker has no free slot"
		}
		w.report(&pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: t.Id, Fence: t.Fence, Error: reason, Step: "accept", Retryable: true, RolledBack: true}}}, spec)
		return
	}
	if err := w.journal.Put(&Entry{Spec: spec}); err != nil {
		w.log.Error("cannot journal assignment; refusing it", "task", t.Id, "error", err)
		w.report(&pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: t.Id, Fence: t.Fence, Error: err.Error(), Step: "journal", Retryable: true, RolledBack: true}}}, nil)
		return
	}
	w.mu.Lock()
	a := w.newAttemptLocked(ctx, spec, false)
	w.mu.Unlock()
	w.send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: t.Id, Fence: t.Fence}}})
	w.log.Info("running", "task", t.Id, "type", fsm.TypeName(t.Type), "volume", t.VolumeId, "attempt", t.Attempt)
	go w.execute(a, ex)
}

// newAttemptLocked (w.mu held) registers an attempt in attempts, with its
// context (a.ctx): cancelled by a.cancel, and every volume-server call
// checked by callGuard and tagged with the attempt.
func (w *Worker) newAttemptLocked(ctx context.Context, spec *pb.TaskSpec, restored bool) *attempt {
	t := spec.Task
	a := &attempt{spec: spec, restored: restored}
	a.ctx, a.cancel = context.WithCancel(seaweed.WithCallGuard(
		metadata.AppendToOutgoingContext(context.WithoutCancel(ctx), TaskMetadataKey, fmt.Sprintf("%d/%d", t.Id, t.Fence)),
		w.callGuard(a)))
	w.attempts[t.Id] = a
	return a
}

func (w *Worker) execute(a *attempt, ex Executor) {
	ctx, t := a.ctx, a.spec.Task
	report := func(step string, progress float64, checkpoint bool) {
		w.mu.Lock()
		a.step, a.progress = step, progress
		w.mu.Unlock()
		w.send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Progress{Progress: &pb.TaskProgress{TaskId: t.Id, Fence: t.Fence, Progress: progress, Step: step, Checkpoint: checkpoint}}})
	}
	change, err := ex.Execute(ctx, a.spec, report)
	a.cancel()
	w.mu.Lock()
	released, reason := a.released, a.reason
	w.mu.Unlock()
	var msg *pb.WorkerMessage
	switch {
	case err == nil:
		w.log.Info("completed", "task", t.Id)
		msg = &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: t.Id, Fence: t.Fence, Change: change}}}
	case released:
		f := asFailure(err)
		w.log.Info("stopped on the leader's request", "task", t.Id, "reason", reason, "rolled_back", f.RolledBack)
		msg = &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: t.Id, Fence: t.Fence, RolledBack: f.RolledBack, Error: f.Error()}}}
	default:
		f := asFailure(err)
		// Stopped by this worker (shutdown, lost contact) or by its call
		// guard (the lease lapsed mid-attempt): not the task's fault.
		interrupted := reason != "" || seaweed.GuardRefused(f.Err)
		if reason != "" {
			f.Err = fmt.Errorf("%s: %w", reason, f.Err)
		}
		if interrupted {
			f.Retryable = true
		}
		w.log.Warn("attempt failed", "task", t.Id, "step", f.Step, "error", f.Err, "retryable", f.Retryable, "rolled_back", f.RolledBack)
		msg = &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: t.Id, Fence: t.Fence, Error: f.Err.Error(), Step: f.Step,
			Retryable: f.Retryable, RolledBack: f.RolledBack, Interrupted: interrupted}}}
	}
	w.finish(a, msg)
}

// finish reports an attempt's outcome (see report) and only then drops the
// attempt from attempts, in one step with putting the outcome in the
// outbox: a cancel or a re-sent assignment arriving meanwhile finds the
// attempt in one of the two, never in neither (where a cancel was answered
// "not running here" ahead of the outcome, and a re-sent assignment ran the
// attempt a second time).
func (w *Worker) finish(a *attempt, msg *pb.WorkerMessage) {
	w.reportThen(msg, a.spec, func() {
		if w.attempts[a.spec.Task.Id] == a {
			delete(w.attempts, a.spec.Task.Id)
		}
		w.ended.Broadcast()
	})
}

func asFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Step: "execute", Err: err, Retryable: true}
}

// report journals an outcome (so a restart re-sends it) and sends it.
func (w *Worker) report(msg *pb.WorkerMessage, spec *pb.TaskSpec) { w.reportThen(msg, spec, nil) }

// reportThen is report, calling locked (with w.mu held) as the outcome
// enters the outbox.
func (w *Worker) reportThen(msg *pb.WorkerMessage, spec *pb.TaskSpec, locked func()) {
	var id uint64
	e := &Entry{Spec: spec}
	// An executor's error may name hundreds of servers: cut it to what the
	// leader accepts before it is journaled and sent, so the leader's
	// record matches the journal's (it would cut it anyway).
	switch b := msg.Body.(type) {
	case *pb.WorkerMessage_Completed:
		id, e.Completed = b.Completed.TaskId, b.Completed
		w.finished[0].Add(1)
	case *pb.WorkerMessage_Failed:
		b.Failed.Error = errtext.Truncate(b.Failed.Error, errtext.MaxLen)
		id, e.Failed = b.Failed.TaskId, b.Failed
		w.finished[1].Add(1)
	case *pb.WorkerMessage_Released:
		b.Released.Error = errtext.Truncate(b.Released.Error, errtext.MaxLen)
		id = b.Released.TaskId
		w.finished[2].Add(1)
	}
	if spec != nil && (e.Completed != nil || e.Failed != nil) {
		if err := w.journal.Put(e); err != nil {
			w.log.Error("journal outcome", "task", id, "error", err)
		}
	}
	w.mu.Lock()
	w.outbox[attemptOf(msg)] = msg
	if locked != nil {
		locked()
	}
	w.mu.Unlock()
	w.send(msg)
}

// cancel stops an attempt the leader no longer wants. A journalled attempt
// from before a restart that the leader still counts as current (a plain
// cancel, e.g. an operator's) is rolled back and then reported released; one
// it says is superseded, or an attempt unknown here, is released without
// touching SeaweedFS: the current attempt owns the volume now. An attempt
// that already ended is answered with its outcome.
func (w *Worker) cancel(ctx context.Context, c *pb.Cancel) {
	k := attemptKey{c.TaskId, c.Fence}
	w.mu.Lock()
	a, ok := w.attempts[c.TaskId]
	if ok && a.spec.Task.Fence == c.Fence {
		a.released, a.reason = true, c.Reason
		a.superseded = a.superseded || c.Superseded
		// A restored attempt's rollback is how it stops: only an attempt
		// that is no longer current must not even roll back.
		stop := !a.restored || a.superseded
		abort := a.abort
		w.mu.Unlock()
		if stop {
			a.cancel()
			if abort != nil {
				abort()
			}
		}
		return
	}
	if out, ok := w.outbox[k]; ok {
		// Ended, its outcome not yet acknowledged: that answers the cancel.
		w.mu.Unlock()
		w.send(out)
		return
	}
	e, wasRestored := w.restored[k]
	if wasRestored && !c.Superseded {
		if ok {
			// Another attempt of the task runs here, so the leader cannot
			// count this one as current: it will say so (it stays listed).
			w.mu.Unlock()
			w.log.Warn("cancel of a journalled attempt while another attempt of its task runs here; waiting for the leader's word", "task", c.TaskId, "fence", c.Fence)
			return
		}
		// Still the current attempt: what it may have left behind (read-only
		// replicas, stray shards) is undone before it is reported released.
		delete(w.restored, k)
		a := w.newAttemptLocked(ctx, e.Spec, true)
		a.released, a.reason = true, c.Reason
		w.mu.Unlock()
		w.log.Info("journalled attempt cancelled by the leader: rolling it back", "task", c.TaskId, "fence", c.Fence, "reason", c.Reason)
		go w.rollbackRestored(a)
		return
	}
	delete(w.restored, k)
	w.mu.Unlock()
	if wasRestored {
		w.log.Info("journalled attempt is no longer ours; leaving the volume to the current attempt", "task", c.TaskId, "reason", c.Reason)
	}
	w.journal.Delete(c.TaskId, c.Fence)
	w.send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: c.TaskId, Fence: c.Fence, RolledBack: false, Error: "not running here"}}})
}

// rollbackRestored rolls back a journalled attempt from before a restart
// and reports it. It runs as an attempt (listed in heartbeats, its calls
// guarded by the lease and stopped once the leader says it is superseded).
//
// Like an executor's own rollback it runs on a detached context bounded by
// rollbackTimeout: losing contact with the leader (watchLease) does not stop
// it half-way, the call guard does once the lease may be gone. A superseded
// cancel or the worker's shutdown stop it at once (a.abort). Stopped by the lease or a
// shutdown, no outcome is journalled: the attempt waits in restored again
// (and in the journal across a restart), to be rolled back once the leader
// still counts it as current, or dropped when it says it is superseded.
func (w *Worker) rollbackRestored(a *attempt) {
	t := a.spec.Task
	ex := w.cfg.Executors[t.Type]
	rctx, rcancel := detached(a.ctx, rollbackTimeout)
	defer rcancel()
	w.mu.Lock()
	a.abort = rcancel
	if a.superseded || w.stopping {
		rcancel()
	}
	w.mu.Unlock()
	var err error
	if ex != nil {
		err = ex.Rollback(rctx, a.spec)
	} else {
		err = fmt.Errorf("no executor for %s", fsm.TypeName(t.Type))
	}
	a.cancel()
	w.mu.Lock()
	released, superseded, stopping := a.released, a.superseded, w.stopping
	interrupted := err != nil && !superseded && (stopping || seaweed.GuardRefused(err))
	if interrupted {
		// Not an outcome: back to waiting for the leader's word.
		if w.attempts[t.Id] == a {
			delete(w.attempts, t.Id)
		}
		w.restored[attemptKey{t.Id, t.Fence}] = &Entry{Spec: a.spec}
		w.ended.Broadcast()
	}
	w.mu.Unlock()
	if interrupted {
		w.log.Warn("rollback of an attempt interrupted by a restart stopped before it finished; it stays journalled", "task", t.Id, "fence", t.Fence, "error", err, "shutting_down", stopping)
		return
	}
	w.log.Info("rolled back an attempt interrupted by a restart", "task", t.Id, "error", err, "superseded", superseded)
	var msg *pb.WorkerMessage
	if released {
		r := &pb.TaskReleased{TaskId: t.Id, Fence: t.Fence, RolledBack: err == nil, Error: "worker restarted during the attempt"}
		if err != nil {
			r.Error += "; rollback: " + err.Error()
		}
		msg = &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: r}}
	} else {
		// A rollback that kept copies holding acknowledged changes left
		// what only an operator resolves: a retry would meet it again, so
		// it is neither retryable nor an interruption (which the leader
		// requeues whatever Retryable says).
		kept := errors.Is(err, errPermanent)
		f := &pb.TaskFailed{TaskId: t.Id, Fence: t.Fence, Step: "restart", Error: "worker restarted during the attempt", Retryable: !kept, RolledBack: err == nil, Interrupted: !kept}
		if err != nil {
			f.Error += "; rollback: " + err.Error()
		}
		msg = &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: f}}
	}
	w.finish(a, msg)
}

// watchLease stops every attempt once the leader has not acknowledged a
// heartbeat for a whole lease: the leader requeues them after lease+grace,
// so they must be stopped (and rolled back) before then.
func (w *Worker) watchLease(ctx context.Context) {
	ticker.Every(ctx, 200*time.Millisecond, func() {
		w.mu.Lock()
		expired := w.lease > 0 && len(w.attempts) > 0 && time.Since(w.lastAck) > w.lease
		w.mu.Unlock()
		if expired {
			w.log.Warn("no word from the leader for a lease: stopping attempts")
			w.stopAll("lost contact with the leader")
		}
	})
}

func (w *Worker) stopAll(reason string) {
	w.mu.Lock()
	var cancels []context.CancelFunc
	for _, a := range w.attempts {
		if a.reason == "" {
			a.reason = reason
		}
		cancels = append(cancels, a.cancel)
	}
	w.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	// Wait for the attempts to finish rolling back.
	w.mu.Lock()
	for len(w.attempts) > 0 {
		w.ended.Wait()
	}
	w.mu.Unlock()
}

// flushJournal writes pending journal deletes once a second, so a quiet
// worker does not keep acknowledged attempts on disk indefinitely.
func (w *Worker) flushJournal(ctx context.Context) {
	ticker.Every(ctx, time.Second, func() {
		if err := w.journal.Flush(); err != nil {
			w.log.Error("journal flush", "error", err)
		}
	})
}
