package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// assign hands ready tasks to workers with free slots; history says
// whether the cluster records attempt history (see retried).
func (s *Scheduler) assign(ctx context.Context, active, pending []*fsmpb.Task, now time.Time, history bool, policy *fsmpb.Policy) {
	ready := Ready(pending, now)
	if len(ready) == 0 {
		return
	}
	s.refreshShell(ctx)
	s.mu.Lock()
	topo, topoOK := s.view.assignTopology()
	asked := s.view.assignAsked()
	if !s.view.gate(time.Now()).Assign {
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
	// A plan that waits takes no slot, but costs two log entries (its
	// assignment and its requeue): at most as many per pass as there are
	// free slots, as when every plan took one. The waits left over are
	// planned again next pass, once the oldest have backed off.
	waits := 0
	for _, l := range loads {
		waits += max(l.MaxConcurrent-l.Running, 0)
	}
	// Where the attempts in flight, and those this pass plans, may create
	// data: a replicate's target is chosen among the least loaded.
	load := attemptLoad(topo, active)
	ExcludedLoad(load, topo, policy)
	// The policy's caps (policy_caps.go) count the attempts in flight and
	// those this pass assigns, on every server each touches.
	th := PolicyThresholds(policy, s.cfg.Thresholds)
	inFlight := make([]CapWork, 0, len(active))
	for _, t := range active {
		inFlight = append(inFlight, CapWork{Type: t.Type, Collection: t.Collection, Servers: TouchedServers(topo, t.VolumeId, t.AttemptServers)})
	}
	usage := NewCapUsage(inFlight)
	routineTopo := PlanningTopology(topo, policy)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, t := range ready {
		if ctx.Err() != nil {
			break
		}
		if !topoOK && NeedsMaster(t.Type) {
			continue
		}
		work := CapWork{Type: t.Type, Collection: t.Collection}
		if !fsm.RepairType(t.Type) && !CollectionAllowed(policy, t.Collection) || !usage.TypeAdmits(policy, work) {
			continue
		}
		// Routine work touches no excluded server: its volume's holders
		// are checked first, and its plan sees none (policy_scope.go).
		planTopo := topo
		if !fsm.RepairType(t.Type) {
			// (A balance's source and target too: a manual one may name them.)
			if srv := Excluded(policy, topo, t.Type, TouchedServers(topo, t.VolumeId, nonEmpty(t.Source, t.Target)), nil); srv != "" {
				continue
			}
			planTopo = routineTopo
		}
		id, ok := PickWorker(t.Type, loads)
		if !ok {
			continue
		}
		spec, planErr := planSpecLoaded(t, planTopo, asked, th, history, !topoOK, load)
		if planErr == nil {
			targets := SpecServers(spec)
			work.Servers = TouchedServers(topo, t.VolumeId, targets)
			if srv := Excluded(policy, topo, t.Type, work.Servers, targets); srv != "" {
				s.log.Debug("task not assigned: its plan touches a server the policy excludes", "task", t.Id, "server", srv)
				continue
			}
			if cp := usage.Admits(policy, work); cp != "" {
				s.log.Debug("task not assigned: it would exceed a policy cap", "task", t.Id, "cap", cp)
				continue
			}
			usage.Add(work)
			addLoad(load, topo, targets)
		}
		if errors.Is(planErr, placement.ErrPlanWait) {
			if waits == 0 {
				continue
			}
			waits--
		}
		// Only a task sent to the worker takes its slot: a plan error (a
		// wait, a failure, work found done) is handled by the leader, and
		// must not keep a younger task that can run out of this pass.
		for i := range loads {
			if loads[i].ID == id && planErr == nil {
				loads[i].Running++
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(t *fsmpb.Task, worker string, spec *pb.TaskSpec, planErr error) {
			defer wg.Done()
			defer func() { <-sem }()
			s.assignOne(ctx, t, worker, spec, planErr)
		}(t, id, spec, planErr)
	}
	wg.Wait()
}

// attemptLoad counts, by server id, the assigned and running attempts
// whose spec may create data on each server (Task.attempt_servers; a
// server the topology does not list is left out).
func attemptLoad(topo *seaweed.Topology, active []*fsmpb.Task) map[string]int {
	load := map[string]int{}
	for _, t := range active {
		addLoad(load, topo, t.AttemptServers)
	}
	return load
}

// addLoad counts one attempt on each of servers (any address form
// FindServer accepts), once per server.
func addLoad(load map[string]int, topo *seaweed.Topology, servers []string) {
	seen := map[string]bool{}
	for _, a := range servers {
		if srv, ok := topo.FindServer(a); ok && !seen[srv.ID] {
			seen[srv.ID] = true
			load[srv.ID]++
		}
	}
}

// MaxWaitBackoff caps how long a task whose plan keeps waiting for the
// same reason waits between plans.
const MaxWaitBackoff = 5 * time.Minute

// waitBackoff is how long task t (pending, as read before its plan) waits
// before it is planned again after a plan wait for reason: the next poll
// (base) the first time, then twice the previous wait while the reason
// stays the same, up to MaxWaitBackoff (never below base). Each wait costs
// an assignment and a requeue in the log, and a wait that lasts (a server
// away for good, a replica lost) must not cost them every poll forever.
// The previous wait is read from the task: its last requeue set NotBefore
// that long after UpdatedAt.
func waitBackoff(t *fsmpb.Task, reason string, base time.Duration) time.Duration {
	next := base
	if t.LastError == reason && t.NotBefore > t.UpdatedAt {
		next = 2 * time.Duration(t.NotBefore-t.UpdatedAt)
	}
	return max(min(next, MaxWaitBackoff), base)
}

// schedulerWorker is the worker id under which the leader itself fails a
// task that cannot be planned (assigned -> failed is the legal path).
const schedulerWorker = "(scheduler)"

func (s *Scheduler) assignOne(ctx context.Context, t *fsmpb.Task, worker string, spec *pb.TaskSpec, planErr error) {
	var done *AlreadyDone
	if errors.As(planErr, &done) {
		s.completeDone(ctx, t, done)
		return
	}
	if planErr != nil {
		worker = schedulerWorker
	}
	var servers []string
	var move *fsmpb.Move
	if planErr == nil {
		servers, move = SpecServers(spec), SpecMove(spec)
	}
	res, err := s.propose(ctx, fsm.AssignCmd(t.Id, worker, servers, move))
	if err != nil {
		if !errors.Is(err, fsm.ErrIllegalTransition) {
			s.log.Warn("assign", "task", t.Id, "worker", worker, "error", err)
		}
		return
	}
	if reason, ok := planWaitReason(planErr); ok {
		// Not a retry: nothing ran and nothing was sent to a worker, so the
		// wait spends none of the task's retries (counted, they failed a
		// task for good some 14 s into a wait for a topology newer than it,
		// or for a restarting server). The attempt is requeued without
		// counting and planned again after the next topology poll; it
		// waits until a topology lets it be planned, or an operator
		// cancels it (the requeue then ends it cancelled).
		notBefore := s.cfg.Now().Add(waitBackoff(t, reason, s.cfg.DetectInterval)).UnixNano()
		if err := s.requeueAt(ctx, res.Task, res.Task.Fence, "", reason, notBefore, false); err != nil {
			s.log.Warn("requeue unplannable task", "task", t.Id, "error", err)
		}
		return
	}
	if planErr != nil {
		reason := planFailReason(planErr)
		if _, err := s.propose(ctx, fsm.FailCmd(t.Id, res.Task.Fence, "", reason)); err != nil {
			s.log.Warn("fail unplannable task", "task", t.Id, "error", err)
		} else {
			s.log.Warn("task failed", "task", t.Id, "reason", reason)
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
func (s *Scheduler) completeDone(ctx context.Context, t *fsmpb.Task, done *AlreadyDone) {
	res, err := s.propose(ctx, fsm.AssignCmd(t.Id, schedulerWorker, nil, nil))
	if err != nil {
		if !errors.Is(err, fsm.ErrIllegalTransition) {
			s.log.Warn("assign a task found done", "task", t.Id, "error", err)
		}
		return
	}
	fence := res.Task.Fence
	if _, err := s.propose(ctx, fsm.StartCmd(t.Id, fence, "")); err != nil {
		s.log.Warn("start a task found done", "task", t.Id, "error", err)
		return
	}
	if _, err := s.propose(ctx, fsm.CompleteCmd(t.Id, fence, "", done.Change)); err != nil {
		s.log.Warn("complete a task found done", "task", t.Id, "error", err)
		return
	}
	s.log.Info("task completed: an earlier attempt did the work", "task", t.Id, "detail", done.Error())
}

// planWaitReason is the reason of a plan error that is a wait (see
// placement.ErrPlanWait), without its marker.
func planWaitReason(err error) (string, bool) {
	var pe *placement.PlanError
	if errors.As(err, &pe) && pe.Wait {
		return pe.Reason, true
	}
	return "", false
}

// planFailReason is what a task that cannot be planned records as its
// error: a PlanError's reason without its marker, any other error whole.
func planFailReason(err error) string {
	var pe *placement.PlanError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return err.Error()
}

// requeue puts an attempt back to pending (fence-checked), on worker's
// report (empty: the leader's own decision; see fsm.StartCmd).
func (s *Scheduler) requeue(ctx context.Context, t *fsmpb.Task, fence uint64, worker, reason string, retry bool) error {
	var notBefore int64
	if retry {
		notBefore = s.cfg.Now().Add(Backoff(t.RetryCount + 1)).UnixNano()
	}
	return s.requeueAt(ctx, t, fence, worker, reason, notBefore, retry)
}

// requeueAt is requeue with the next attempt not before notBefore (unix
// ns, 0: at once); retry counts it against the task's retries.
func (s *Scheduler) requeueAt(ctx context.Context, t *fsmpb.Task, fence uint64, worker, reason string, notBefore int64, retry bool) error {
	res, err := s.propose(ctx, fsm.RequeueCmd(t.Id, fence, worker, reason, notBefore, retry))
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
	if res.Task.GetState() == fsmpb.TaskState_TASK_STATE_CANCELLED {
		s.log.Info("task cancelled on request once its attempt stopped", "task", t.Id, "reason", reason)
	} else {
		s.log.Info("requeued", "task", t.Id, "reason", reason, "retry", retry)
	}
	s.Kick()
	return nil
}
