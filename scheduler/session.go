package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// sendBuffer bounds the messages queued for one worker; a worker that falls
// this far behind is disconnected (it reconnects and re-attaches).
const sendBuffer = 1024

// Session is one connected worker's stream, as the scheduler sees it.
type Session struct {
	id   string
	caps []fsmpb.TaskType
	max  int

	out      chan *pb.AdminMessage
	done     chan struct{}
	doneOnce sync.Once

	lanes lanes // the task reports in flight (Dispatch)
}

// Out is the queue of messages for the stream writer; Done closes when the
// scheduler drops the session.
func (s *Session) Out() <-chan *pb.AdminMessage { return s.out }

// Done is closed when the session is dropped.
func (s *Session) Done() <-chan struct{} { return s.done }

func (s *Session) close() { s.doneOnce.Do(func() { close(s.done) }) }

func (s *Session) send(m *pb.AdminMessage) {
	select {
	case <-s.done:
	case s.out <- m:
	default:
		s.close()
	}
}

func (s *Session) can(t fsmpb.TaskType) bool {
	for _, c := range s.caps {
		if c == t {
			return true
		}
	}
	return false
}

// Attach registers a worker's session after its Hello and reconciles the
// attempts it says it is running with the replicated state: ones it still
// owns are re-attached, the rest are cancelled on the worker.
func (s *Scheduler) Attach(ctx context.Context, h *pb.Hello) (*Session, *pb.Welcome, error) {
	if h.WorkerId == "" {
		return nil, nil, errors.New("hello without a worker id")
	}
	if h.MaxConcurrent == 0 {
		return nil, nil, errors.New("hello with max_concurrent 0")
	}
	for _, c := range h.Capabilities {
		if !fsm.ValidType(c) {
			return nil, nil, fmt.Errorf("unknown capability %d", int32(c))
		}
	}
	// Registering the session and reconciling its attempts are one step
	// with respect to lease expiries (see ownership).
	// A hello its worker gave up on (the stream ended while it waited)
	// must not register a session: it would close the worker's next one.
	unlock, err := s.owners.lock(ctx, h.WorkerId)
	if err != nil {
		return nil, nil, fmt.Errorf("hello abandoned while an ownership decision about %s was under way: %w", h.WorkerId, err)
	}
	defer unlock()
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil, nil, ErrNotRunning
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("hello abandoned: %w", err)
	}
	if old, ok := s.sessions[h.WorkerId]; ok {
		old.close()
	}
	sess := &Session{id: h.WorkerId, caps: h.Capabilities, max: int(h.MaxConcurrent), out: make(chan *pb.AdminMessage, sendBuffer), done: make(chan struct{})}
	s.sessions[h.WorkerId] = sess
	s.lastSeen[h.WorkerId] = s.cfg.Now()
	s.mu.Unlock()

	// Register (or refresh) the worker's identity and capabilities.
	var registered *fsmpb.Worker
	s.state.Read(func(st *fsm.State) {
		for _, w := range st.Workers() {
			if w.Id == h.WorkerId {
				registered = w
			}
		}
	})
	if err := s.register(ctx, registered, h); err != nil {
		s.detach(sess)
		return nil, nil, fmt.Errorf("register worker: %w", err)
	}
	s.reconcileRunning(sess, h.Running)
	s.log.Info("worker connected", "worker", h.WorkerId, "capabilities", len(h.Capabilities), "slots", h.MaxConcurrent, "running", len(h.Running))
	s.Kick()
	return sess, &pb.Welcome{LeaderId: s.cfg.NodeID, LeaseMs: s.cfg.Lease.Milliseconds(), HeartbeatMs: s.cfg.Heartbeat.Milliseconds(),
		GraceMs: s.cfg.Grace.Milliseconds()}, nil
}

// register records the worker's identity, capabilities and slots unless
// registered already says the same. While some admin of the cluster runs
// a build that predates a task type (fsm.TypeVersion: the repairs need
// fsm.RepairVersion, ec_balance, remove_extra and delete_empty fsm.ControlVersion), the worker is
// registered without those capabilities, which such an admin would refuse;
// it registers them on a later hello, once every admin applies them.
func (s *Scheduler) register(ctx context.Context, registered *fsmpb.Worker, h *pb.Hello) error {
	caps := h.Capabilities
	for {
		if registered != nil && sameCaps(registered.Capabilities, caps) && registered.MaxConcurrent == h.MaxConcurrent {
			return nil
		}
		_, err := s.propose(ctx, fsm.RegisterCmd(&fsmpb.Worker{Id: h.WorkerId, Capabilities: caps, MaxConcurrent: h.MaxConcurrent}))
		if !errors.Is(err, fsm.ErrVersionNotAgreed) {
			return err
		}
		// Drop the capabilities of the newest version named and try
		// again (ec_balance, remove_extra and delete_empty need version 5, the repairs version 4).
		newest := uint32(fsm.CommandVersion)
		for _, c := range caps {
			newest = max(newest, fsm.TypeVersion(c))
		}
		if newest == fsm.CommandVersion {
			return err
		}
		s.log.Info("worker registered without its newest capabilities: not every admin applies them yet", "worker", h.WorkerId, "version", newest)
		caps = slices.DeleteFunc(slices.Clone(caps), func(c fsmpb.TaskType) bool { return fsm.TypeVersion(c) == newest })
	}
}

func sameCaps(a, b []fsmpb.TaskType) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[fsmpb.TaskType]bool{}
	for _, c := range a {
		seen[c] = true
	}
	for _, c := range b {
		if !seen[c] {
			return false
		}
	}
	return true
}

// reconcileRunning compares what a worker runs with what it owns.
func (s *Scheduler) reconcileRunning(sess *Session, running []*pb.RunningTask) {
	now := s.cfg.Now()
	for _, r := range running {
		var t *fsmpb.Task
		s.state.Read(func(st *fsm.State) { t, _ = st.Task(r.TaskId) })
		owned := t != nil && t.WorkerId == sess.id && t.Fence == r.Fence &&
			(t.State == fsmpb.TaskState_TASK_STATE_ASSIGNED || t.State == fsmpb.TaskState_TASK_STATE_RUNNING)
		s.mu.Lock()
		ci, cancelling := s.cancelling[r.TaskId]
		if owned && !cancelling {
			if p, ok := s.progress[r.TaskId]; !ok || p.fence != r.Fence || r.Progress != p.progress {
				s.progress[r.TaskId] = progressInfo{fence: r.Fence, progress: r.Progress, step: r.Step, at: now}
			}
		}
		// An attempt told to stop is still running: say it again now and
		// then (the Cancel may have gone down a stream that since broke).
		resend := owned && cancelling && resendCancel(ci, r.Fence, now, s.cfg.Heartbeat)
		if resend {
			ci.sent = now
			s.cancelling[r.TaskId] = ci
		}
		s.mu.Unlock()
		if resend {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: r.TaskId, Fence: r.Fence, Reason: ci.reason}}})
		}
		if !owned {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: r.TaskId, Fence: r.Fence, Reason: "this attempt is no longer current", Superseded: true}}})
		}
	}
}

// resendLost re-sends assignments a worker does not know about: the task is
// still `assigned` to it (a worker's Started is handled before any later
// heartbeat of its stream) yet its heartbeat does not list it, so the Assign
// never arrived (its session was replaced, or its queue overflowed, or a
// leader committed it and died before sending it). The worker ignores an
// assignment it already ran, so this never runs one twice. Like assign, it
// sends nothing while the admin lock gate forbids assigning.
func (s *Scheduler) resendLost(sess *Session, running []*pb.RunningTask) {
	// By attempt: a restarted worker also lists the journalled attempts it
	// rolls back, which may be earlier attempts of a task now assigned to it.
	have := map[[2]uint64]bool{}
	for _, r := range running {
		have[[2]uint64{r.TaskId, r.Fence}] = true
	}
	cutoff := s.cfg.Now().Add(-2 * s.cfg.Heartbeat).UnixNano()
	var lost []*fsmpb.Task
	s.state.Read(func(st *fsm.State) {
		for _, t := range st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_ASSIGNED}}) {
			if t.WorkerId == sess.id && !have[[2]uint64{t.Id, t.Fence}] && t.AssignedAt < cutoff {
				lost = append(lost, t)
			}
		}
	})
	if len(lost) == 0 {
		return
	}
	// A re-sent assignment starts an attempt as much as a first one does:
	// not while the admin lock says another process may be running
	// maintenance (or before it is known to be ours, as on a new leader).
	// The task stays assigned; it is re-sent once the lock is ours, or the
	// stuck timer requeues it.
	s.mu.Lock()
	topo, _ := s.view.assignTopology()
	if !s.view.resendGate(time.Now()) {
		topo = nil
	}
	s.mu.Unlock()
	if topo == nil {
		return
	}
	for _, t := range lost {
		spec, err := PlanSpec(t, topo, s.cfg.Thresholds)
		if err != nil || !subset(SpecServers(spec), t.AttemptServers) || !sameMove(SpecMove(spec), t.AttemptMove) {
			// The volume changed under it: the stuck timer retries it. A
			// spec naming servers the assignment did not record is not sent
			// either: a retry must know every server an attempt may touch.
			continue
		}
		s.log.Info("re-sending an assignment its worker does not have", "task", t.Id, "worker", sess.id)
		sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Assign{Assign: &pb.Assign{Spec: spec}}})
	}
}

// confirmRunning checks the attempts to be confirmed (after a snapshot
// restore, or a re-attach as the lease expired; see Scheduler.confirm) that
// the state says this worker runs against what its heartbeat lists: a
// running attempt it does not list (it finished or dropped it after the
// snapshot was taken, or lost its journal) is requeued, since nothing works
// on its volume any more. Assigned ones are left to resendLost.
func (s *Scheduler) confirmRunning(ctx context.Context, sess *Session, running []*pb.RunningTask) {
	s.mu.Lock()
	pending := len(s.confirm)
	s.mu.Unlock()
	if pending == 0 {
		return
	}
	// Only an attempt assigned to this session's worker is confirmed by
	// its listing it: another worker's session cannot vouch for it.
	have := map[[2]uint64]bool{}
	s.state.Read(func(st *fsm.State) {
		for _, r := range running {
			if t, ok := st.Task(r.TaskId); ok && t.WorkerId == sess.id {
				have[[2]uint64{r.TaskId, r.Fence}] = true
			}
		}
	})
	s.mu.Lock()
	var check []uint64
	for id, fence := range s.confirm {
		if have[[2]uint64{id, fence}] {
			delete(s.confirm, id)
			continue
		}
		check = append(check, id)
	}
	s.mu.Unlock()
	for _, id := range check {
		var t *fsmpb.Task
		s.state.Read(func(st *fsm.State) { t, _ = st.Task(id) })
		s.mu.Lock()
		fence, want := s.confirm[id]
		s.mu.Unlock()
		switch {
		case !want:
		case t == nil || t.Fence != fence || !fsm.Active(t.State) || t.State == fsmpb.TaskState_TASK_STATE_PENDING:
			s.dropConfirm(id)
		case t.WorkerId != sess.id:
		case t.State == fsmpb.TaskState_TASK_STATE_ASSIGNED:
			s.dropConfirm(id)
		default:
			s.dropConfirm(id)
			s.log.Warn("an attempt its worker was to confirm is not running there: requeueing it", "task", id, "worker", sess.id)
			s.requeue(ctx, t, fence, "", "its worker was not running it (after a snapshot restore or a re-attach at lease expiry)", false)
		}
	}
}

func (s *Scheduler) dropConfirm(id uint64) {
	s.mu.Lock()
	delete(s.confirm, id)
	s.mu.Unlock()
}

// Detach drops a session whose stream ended. Its attempts stay assigned
// until the lease expires, so a quick reconnect re-attaches them.
func (s *Scheduler) Detach(sess *Session) { s.detach(sess) }

func (s *Scheduler) detach(sess *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.sessions[sess.id]; ok && cur == sess {
		delete(s.sessions, sess.id)
	}
	sess.close()
}

// Handle processes one message from a worker (the stream's reader calls
// Dispatch, which orders the calls).
func (s *Scheduler) Handle(ctx context.Context, sess *Session, m *pb.WorkerMessage) error {
	s.mu.Lock()
	if cur, ok := s.sessions[sess.id]; !ok || cur != sess {
		s.mu.Unlock()
		return ErrNotRunning
	}
	received := s.cfg.Now()
	s.lastSeen[sess.id] = received
	runCtx := s.runCtx
	s.mu.Unlock()
	if runCtx == nil {
		runCtx = ctx
	}
	switch b := m.Body.(type) {
	case *pb.WorkerMessage_Heartbeat:
		return s.handleHeartbeat(ctx, runCtx, sess, received, b.Heartbeat)
	case *pb.WorkerMessage_Started:
		return s.handleStarted(ctx, sess, b.Started)
	case *pb.WorkerMessage_Progress:
		return s.handleProgress(ctx, sess, b.Progress)
	case *pb.WorkerMessage_Completed:
		return s.handleCompleted(ctx, sess, b.Completed)
	case *pb.WorkerMessage_Failed:
		return s.handleFailed(ctx, sess, b.Failed)
	case *pb.WorkerMessage_Released:
		return s.handleReleased(ctx, sess, b.Released)
	case *pb.WorkerMessage_Hello:
		return errors.New("unexpected second hello")
	default:
		return errors.New("empty worker message")
	}
}

// handleHeartbeat reconciles what a worker says it runs with what it owns,
// then acknowledges the heartbeat, which arrived at received.
func (s *Scheduler) handleHeartbeat(ctx, runCtx context.Context, sess *Session, received time.Time, hb *pb.Heartbeat) error {
	// Only a leader that still leads after the heartbeat arrived may
	// acknowledge it (see leadershipCheck).
	if err := s.leadership.confirm(ctx, runCtx, received, s.cfg.Now); err != nil {
		return fmt.Errorf("confirm leadership before acknowledging a heartbeat: %w", err)
	}
	// Cancels for attempts that are no longer this worker's go out
	// before the ack: a worker treats attempts not cancelled by the
	// time the ack arrives as still its own. No requeue of its attempts
	// may be in flight meanwhile (see ownership).
	unlock, err := s.owners.lock(ctx, sess.id)
	if err != nil {
		return fmt.Errorf("wait for an ownership decision about %s: %w", sess.id, err)
	}
	s.reconcileRunning(sess, hb.Running)
	s.confirmRunning(ctx, sess, hb.Running)
	s.resendLost(sess, hb.Running)
	sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	unlock()
	return nil
}

// handleStarted commits the start of an attempt, or tells the worker to
// drop an attempt that is not its to run.
func (s *Scheduler) handleStarted(ctx context.Context, sess *Session, st *pb.TaskStarted) error {
	var err error
	if s.notOwner(sess, "started", st.TaskId, st.Fence) {
		err = errNotOwner
	} else {
		_, err = s.propose(ctx, fsm.StartCmd(st.TaskId, st.Fence, sess.id))
	}
	if err != nil && (errors.Is(err, fsm.ErrStaleFence) || errors.Is(err, fsm.ErrNotOwner) || errors.Is(err, fsm.ErrNotFound) || s.ended(st.TaskId)) {
		// Not this attempt's to run (any more): a task that has ended,
		// e.g. cancelled meanwhile, must not be worked on, and another
		// attempt may own the volume, so the worker must not touch it.
		sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: st.TaskId, Fence: st.Fence, Reason: err.Error(), Superseded: true}}})
	} else if err != nil && !errors.Is(err, fsm.ErrIllegalTransition) {
		return err
	}
	return nil
}

// handleProgress records an attempt's progress (leader-local), and commits
// it when the worker marks it a checkpoint. Progress is recorded only for
// an active task whose current attempt the report's fence names: reports
// for unknown tasks or ended attempts would otherwise fill the map.
func (s *Scheduler) handleProgress(ctx context.Context, sess *Session, p *pb.TaskProgress) error {
	if s.notOwner(sess, "progress", p.TaskId, p.Fence) {
		// Neither recorded (it would hide the owner's silence from the
		// stuck timer) nor committed; answered as a stale checkpoint is.
		if p.Checkpoint {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: p.TaskId, Fence: p.Fence, Reason: errNotOwner.Error(), Superseded: true}}})
		}
		return nil
	}
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(p.TaskId) })
	if t != nil && t.Fence != 0 && t.Fence == p.Fence &&
		(t.State == fsmpb.TaskState_TASK_STATE_ASSIGNED || t.State == fsmpb.TaskState_TASK_STATE_RUNNING) {
		s.mu.Lock()
		s.progress[p.TaskId] = progressInfo{fence: p.Fence, progress: p.Progress, step: p.Step, at: s.cfg.Now()}
		s.mu.Unlock()
	}
	if p.Checkpoint {
		_, err := s.propose(ctx, fsm.ProgressCmd(p.TaskId, p.Fence, sess.id, p.Progress, p.Step))
		if err != nil && (errors.Is(err, fsm.ErrStaleFence) || errors.Is(err, fsm.ErrNotOwner)) {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: p.TaskId, Fence: p.Fence, Reason: err.Error(), Superseded: true}}})
		}
	}
	return nil
}

// handleCompleted commits an attempt's completion and acknowledges the
// report once its outcome is known.
func (s *Scheduler) handleCompleted(ctx context.Context, sess *Session, c *pb.TaskCompleted) error {
	if s.notOwner(sess, "completed", c.TaskId, c.Fence) {
		// Refused as a stale completion is: acknowledged as not accepted,
		// so the sender drops it rather than re-send it forever.
		s.ack(sess, c.TaskId, c.Fence, errNotOwner)
		return nil
	}
	if err := s.startIfAssigned(ctx, c.TaskId, c.Fence, sess.id); err != nil {
		return err // outcome unknown: no ack, the worker re-sends
	}
	s.testCrash(crashBeforeCommit, c.TaskId)
	_, err := s.propose(ctx, fsm.CompleteCmd(c.TaskId, c.Fence, sess.id, c.Change))
	if err != nil && !isRefusal(err) {
		return err
	}
	if err == nil {
		s.testCrash(crashAfterCommit, c.TaskId)
	}
	// A stale report must not wipe what is known of the current attempt.
	if !errors.Is(err, fsm.ErrStaleFence) && !errors.Is(err, fsm.ErrNotOwner) {
		s.forget(c.TaskId)
	}
	s.ack(sess, c.TaskId, c.Fence, err)
	if err == nil {
		s.log.Info("task completed", "task", c.TaskId, "worker", sess.id)
		s.observeCompleted(c.TaskId)
	}
	s.Kick()
	return nil
}

// handleReleased ends an attempt its worker stopped and released: as the
// cancel this leader asked for decided, or requeued if nobody asked.
func (s *Scheduler) handleReleased(ctx context.Context, sess *Session, r *pb.TaskReleased) error {
	if s.notOwner(sess, "released", r.TaskId, r.Fence) {
		// Acknowledged as a stale release is, and nothing else: the
		// attempt, the cancel under way and the progress are its owner's.
		s.ack(sess, r.TaskId, r.Fence, nil)
		return nil
	}
	s.mu.Lock()
	ci, cancelling := s.cancelling[r.TaskId]
	s.mu.Unlock()
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(r.TaskId) })
	switch {
	case cancelling && ci.fence == r.Fence && t != nil:
		reason := ci.reason
		if !r.RolledBack && r.Error != "" && r.Error != notRunningHere {
			// The operator must know the volume may need a look.
			reason += " (rollback incomplete: " + r.Error + ")"
		}
		if err := s.finishAttempt(ctx, t, r.Fence, sess.id, reason, ci.retry); err != nil {
			// Not acknowledged: the worker re-sends it to the next leader.
			return err
		}
	case t != nil && t.Fence == r.Fence && t.WorkerId == sess.id &&
		(t.State == fsmpb.TaskState_TASK_STATE_ASSIGNED || t.State == fsmpb.TaskState_TASK_STATE_RUNNING):
		// The current attempt, released without this leader having
		// asked (a previous leader cancelled it, then lost leadership
		// before requeueing): its worker no longer runs it, so it is
		// requeued now rather than left running on nobody.
		if err := s.requeue(ctx, t, r.Fence, sess.id, "released by its worker: "+r.Error, false); err != nil {
			return err
		}
	}
	if t == nil || t.Fence == r.Fence {
		s.forget(r.TaskId)
	}
	s.ack(sess, r.TaskId, r.Fence, nil)
	s.Kick()
	return nil
}

// startIfAssigned commits the start of the current attempt if a completion
// arrives while the task is still assigned: the worker did start, but its
// TaskStarted went to a leader that died before committing it. Without the
// start the completion would be refused (assigned -> completed is not a
// legal move) and the task left assigned to a worker that no longer runs it.
func (s *Scheduler) startIfAssigned(ctx context.Context, id, fence uint64, worker string) error {
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(id) })
	if t == nil || t.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || t.Fence != fence {
		return nil
	}
	if _, err := s.propose(ctx, fsm.StartCmd(id, fence, worker)); err != nil && !isRefusal(err) {
		return fmt.Errorf("start task %d before its completion: %w", id, err)
	}
	return nil
}

func (s *Scheduler) handleFailed(ctx context.Context, sess *Session, f *pb.TaskFailed) error {
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(f.TaskId) })
	if t == nil || t.Fence != f.Fence {
		s.ack(sess, f.TaskId, f.Fence, errors.New("stale attempt"))
		return nil
	}
	if s.notOwner(sess, "failed", f.TaskId, f.Fence) {
		s.ack(sess, f.TaskId, f.Fence, errNotOwner)
		return nil
	}
	reason := f.Error
	if f.Step != "" {
		reason = f.Step + ": " + f.Error
	}
	if !f.RolledBack {
		reason += " (rollback incomplete)"
	}
	var err error
	if f.Interrupted {
		// Not the task's fault: try again at once, without using its budget.
		s.log.Info("attempt interrupted by its worker", "task", f.TaskId, "worker", sess.id, "reason", reason)
		err = s.requeue(ctx, t, f.Fence, sess.id, reason, false)
	} else {
		s.log.Warn("attempt failed", "task", f.TaskId, "worker", sess.id, "error", reason, "retryable", f.Retryable)
		err = s.finishAttempt(ctx, t, f.Fence, sess.id, reason, f.Retryable)
	}
	if err != nil {
		// The outcome of the proposal is unknown (leadership lost, a
		// timeout): no ack, so the worker keeps the report and sends it
		// again to whoever leads next. Acknowledged, the task would stay
		// running on a worker that no longer runs it.
		return err
	}
	s.forget(f.TaskId)
	s.ack(sess, f.TaskId, f.Fence, nil)
	s.Kick()
	return nil
}

// finishAttempt retries a stopped attempt (with backoff) or fails the task;
// a task an operator cancelled ends cancelled instead. worker is the
// worker whose report this is (see fsm.StartCmd). It returns an error only
// when the proposal's outcome is unknown (not for a deterministic refusal).
func (s *Scheduler) finishAttempt(ctx context.Context, t *fsmpb.Task, fence uint64, worker, reason string, retryable bool) error {
	if t.State != fsmpb.TaskState_TASK_STATE_ASSIGNED && t.State != fsmpb.TaskState_TASK_STATE_RUNNING {
		return nil
	}
	if t.CancelRequested {
		// The task's error is the operator's reason, plus how the attempt
		// ended when that says more (a failure, an incomplete rollback).
		detail := reason
		if detail == t.CancelReason {
			detail = ""
		}
		if _, err := s.propose(ctx, fsm.CancelCmd(t.Id, fence, worker, detail)); err != nil {
			if !isRefusal(err) {
				s.log.Warn("cancel task", "task", t.Id, "error", err)
				return fmt.Errorf("cancel task %d: %w", t.Id, err)
			}
			return nil
		}
		s.log.Info("task cancelled on request once its attempt stopped", "task", t.Id, "reason", t.CancelReason, "attempt_end", reason)
		return nil
	}
	if Retry(t, retryable, s.cfg.MaxRetries) {
		return s.requeue(ctx, t, fence, worker, reason, true)
	}
	if retryable {
		reason = fmt.Sprintf("%s (gave up after %d retries)", reason, t.RetryCount)
	}
	if _, err := s.propose(ctx, fsm.FailCmd(t.Id, fence, worker, reason)); err != nil {
		if !isRefusal(err) {
			s.log.Warn("fail task", "task", t.Id, "error", err)
			return fmt.Errorf("fail task %d: %w", t.Id, err)
		}
		return nil
	}
	s.log.Warn("task failed", "task", t.Id, "reason", reason)
	return nil
}

// observeCompleted reports a completed task's run time to Config.Observe.
func (s *Scheduler) observeCompleted(id uint64) {
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(id) })
	if t == nil || t.State != fsmpb.TaskState_TASK_STATE_COMPLETED {
		return
	}
	start := t.StartedAt
	if start == 0 {
		start = t.AssignedAt
	}
	if start == 0 || t.FinishedAt < start {
		return
	}
	s.cfg.Observe(EventTaskCompleted, t.Type, time.Duration(t.FinishedAt-start))
}

// notRunningHere is what a worker says releasing an attempt it does not run.
const notRunningHere = "not running here"

// errNotOwner answers a worker's report on another worker's attempt: the
// fsm's refusal (errors.Is(err, fsm.ErrNotOwner)), made before proposing.
var errNotOwner error = &fsm.Error{Code: fsmpb.ErrorCode_ERROR_CODE_NOT_OWNER, Msg: "this attempt is assigned to another worker"}

// notOwner reports whether a report of sess's worker names the current
// attempt (task id, fence) of a task assigned to another worker, and logs
// it: such a report is refused here, where the session's worker id is
// known, and answered as a stale one is (the fsm refuses it too, from
// command version 3). A report with another fence is left to the fence
// check, as before.
func (s *Scheduler) notOwner(sess *Session, report string, id, fence uint64) bool {
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(id) })
	if t == nil || t.Fence != fence || t.WorkerId == sess.id {
		return false
	}
	s.log.Warn("refused a worker's report on an attempt assigned to another worker", "report", report, "task", id, "fence", fence, "worker", sess.id, "owner", t.WorkerId)
	return true
}

// ended reports whether task id is in a terminal state.
func (s *Scheduler) ended(id uint64) bool {
	var t *fsmpb.Task
	s.state.Read(func(st *fsm.State) { t, _ = st.Task(id) })
	return t != nil && fsm.Terminal(t.State)
}

func (s *Scheduler) forget(id uint64) {
	s.mu.Lock()
	delete(s.progress, id)
	delete(s.cancelling, id)
	s.mu.Unlock()
}

func (s *Scheduler) ack(sess *Session, id, fence uint64, err error) {
	a := &pb.Ack{TaskId: id, Fence: fence, Accepted: err == nil}
	if err != nil {
		a.Error = err.Error()
	}
	sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Ack{Ack: a}})
}

// isRefusal reports a deterministic refusal by the state machine (as
// opposed to a raft or leadership error).
func isRefusal(err error) bool {
	var fe *fsm.Error
	return errors.As(err, &fe)
}

// Connected lists connected worker ids (for status displays).
func (s *Scheduler) Connected() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for id := range s.sessions {
		out[id] = true
	}
	return out
}

// LastHeard is, for each connected worker, when the leader last heard
// from it (any message of its session, heartbeats included).
func (s *Scheduler) LastHeard() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.sessions))
	for id := range s.sessions {
		if at, ok := s.lastSeen[id]; ok {
			out[id] = at
		}
	}
	return out
}

// Progress returns the leader-local progress of a running attempt.
func (s *Scheduler) Progress(id uint64) (progress float64, step string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.progress[id]
	return p.progress, p.step, ok
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// sameMove reports whether two moves (nil: none) name the same servers.
func sameMove(a, b *fsmpb.Move) bool {
	return a.GetSource() == b.GetSource() && a.GetTarget() == b.GetTarget()
}
