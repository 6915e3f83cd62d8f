package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// maintain runs one round of lease checks, stuck checks and assignment.
func (s *Scheduler) maintain(ctx context.Context) {
	now := s.cfg.Now()
	var active []*fsmpb.Task
	var policy *fsmpb.Policy
	pendingN := 0
	s.state.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING}})
		policy = st.Policy()
		pendingN = st.CountByState(fsmpb.TaskState_TASK_STATE_PENDING)
	})
	s.noteRestored()
	s.expireLeases(ctx, active, now)
	s.cancelRequested(active, now)
	s.checkStuck(active, now)
	if now.Sub(s.lastPrune) >= pruneEvery {
		s.lastPrune = now
		s.prune(ctx, now)
	}
	s.notePolicy(policy)
	// The pending queue can be long (a master outage, no workers): read it
	// only when something could be assigned, not on every kick. Paused
	// (policy.go), nothing new is assigned; running attempts go on.
	var pending []*fsmpb.Task
	history := false
	if !policy.Paused && pendingN > 0 && s.mayAssign(active, false) {
		unreported := map[uint32]bool{}
		s.state.Read(func(st *fsm.State) {
			pending = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING}})
			// Attempt history is recorded from the first entry of its version
			// on (EncodingVersion never writes below it again).
			history = st.WrittenVersion() >= fsm.HistoryVersion
			for _, c := range st.CapacityChanges() {
				// Only changes of placement: a vacuum leaves the replicas where
				// they are (and its change may stay unretired for long while
				// users keep writing and deleting).
				if c.Type == fsmpb.TaskType_TASK_TYPE_BALANCE || c.Type == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING || c.Type == fsmpb.TaskType_TASK_TYPE_REPLICATE {
					unreported[c.VolumeId] = true
				}
			}
		})
		pending = waitForMaster(WindowedPending(AllowedPending(pending, policy), policy, s.policyWindow(policy, now)), unreported)
	}
	// Our hold of SeaweedFS's shell lock (shellhold.go): taken before work
	// is assigned (only for tasks ready now, not ones backing off), kept
	// while it runs.
	ready := len(pending) > 0 && len(Ready(pending, now)) > 0
	s.stepShell(len(active), ready)
	if !ready || !s.mayAssign(active, true) {
		return
	}
	s.assign(ctx, active, pending, now, history, policy)
}

// waitForMaster leaves out the pending tasks whose volume has a completed
// move or erasure coding the master does not show yet: planned now, from a
// topology from before that change, their attempt would act on replicas
// that are gone. They are planned once the master
// reflects the change and it is retired. (Detection already skips such
// volumes; manual submissions and retries do not go through detection.)
func waitForMaster(pending []*fsmpb.Task, unreported map[uint32]bool) []*fsmpb.Task {
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
// Without hold, our own hold of the shell lock is left out.
func (s *Scheduler) mayAssign(active []*fsmpb.Task, hold bool) bool {
	running := map[string]int{}
	for _, t := range active {
		running[t.WorkerId]++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.view.lockGate(time.Now())
	if hold {
		g = s.view.gate(time.Now())
	}
	if !g.Assign {
		return false
	}
	if topo, _ := s.view.assignTopology(); topo == nil {
		return false
	}
	for _, sess := range s.sessions {
		if running[sess.id] < sess.max {
			return true
		}
	}
	return false
}

// expireLeases requeues the attempts of workers silent for lease+grace and
// drops their sessions (see expiredLeases).
func (s *Scheduler) expireLeases(ctx context.Context, active []*fsmpb.Task, now time.Time) {
	s.mu.Lock()
	connected := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		connected = append(connected, id)
	}
	d := expiredLeases(active, s.started, s.lastSeen, connected, now, s.cfg.Lease, s.cfg.Grace)
	for _, id := range d.drop {
		s.log.Warn("worker lease expired", "worker", id)
		s.sessions[id].close()
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	for _, e := range d.expired {
		s.requeueExpired(ctx, e.worker, e.tasks, s.cfg.Lease+s.cfg.Grace)
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
func (s *Scheduler) requeueExpired(ctx context.Context, worker string, tasks []*fsmpb.Task, limit time.Duration) {
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
	alive := leaseHeld(seen, ok, s.cfg.Now(), limit)
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
			_ = s.requeue(ctx, t, t.Fence, "", fmt.Sprintf("worker %s stopped responding", t.WorkerId), false)
		}()
	}
	wg.Wait()
}

// cancelRequested tells workers to stop the attempts of tasks an operator
// cancelled. The task stays active (its volume reserved) until the worker
// reports the attempt stopped, or its lease expires; either ends it
// cancelled. The request is replicated, so a new leader picks it up here.
func (s *Scheduler) cancelRequested(active []*fsmpb.Task, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range cancelsToSend(active, s.cancelling, now) {
		s.cancelling[u.task.Id] = u.info
		if !u.send {
			continue
		}
		t := u.task
		s.log.Info("cancelling task on request: stopping its attempt", "task", t.Id, "worker", t.WorkerId, "reason", t.CancelReason)
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
	var active []*fsmpb.Task
	s.state.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING}})
	})
	confirm := map[uint64]uint64{}
	for _, t := range active {
		confirm[t.Id] = t.Fence
	}
	s.mu.Lock()
	s.progress, s.cancelling, s.confirm = map[uint64]progressInfo{}, map[uint64]cancelInfo{}, confirm
	s.mu.Unlock()
}

// checkStuck tells workers to stop attempts that made no progress for too
// long (see stuckTasks).
func (s *Scheduler) checkStuck(active []*fsmpb.Task, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := stuckTasks(active, s.progress, s.cancelling, now, s.cfg.StuckAfter)
	for _, t := range d.track {
		s.progress[t.Id] = progressInfo{fence: t.Fence, at: now}
	}
	for _, st := range d.stuck {
		t := st.task
		s.log.Warn("task stuck, cancelling its attempt", "task", t.Id, "worker", t.WorkerId, "reason", st.reason)
		s.cancelling[t.Id] = cancelInfo{fence: t.Fence, reason: st.reason, retry: true, at: now, sent: now}
		if sess, ok := s.sessions[t.WorkerId]; ok {
			sess.send(&pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: t.Id, Fence: t.Fence, Reason: st.reason}}})
		}
	}
}
