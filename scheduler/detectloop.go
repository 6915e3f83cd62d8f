package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

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
	s.view.shellAnswer(holder, held, err, time.Now(), s.cfg.Now())
}

// refreshShell asks about the shell lock again before assigning, unless it
// was asked within the last second or the master does not answer (then
// the last answer stands, and the admin lock's lease bounds how long).
func (s *Scheduler) refreshShell(ctx context.Context) {
	s.mu.Lock()
	skip := s.master == nil || !s.view.shellStale(time.Now())
	s.mu.Unlock()
	if !skip {
		s.checkShell(ctx)
	}
}

func (s *Scheduler) detectOnce(ctx context.Context) {
	begin := time.Now()
	defer func() {
		if ctx.Err() == nil {
			s.cfg.Observe(EventDetection, fsmpb.TaskType_TASK_TYPE_UNSPECIFIED, time.Since(begin))
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	topo, asked, err := s.askTopology(pctx)
	cancel()
	var epoch uint64
	if m, ok := s.master.(LeaderEpochMaster); ok {
		epoch = m.LeaderEpoch()
	}
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		s.checkShell(ctx)
	}
	s.mu.Lock()
	s.view.polled(topo, err, asked, s.cfg.Now(), epoch)
	if err != nil {
		s.mu.Unlock()
		return
	}
	ok := s.view.topoOK
	vacuumWorkers := false
	for _, sess := range s.sessions {
		vacuumWorkers = vacuumWorkers || sess.can(fsmpb.TaskType_TASK_TYPE_VACUUM)
	}
	detect := s.view.gate(time.Now()).Detect
	lock := s.view.lock.State()
	s.view.lockSeen(lock)
	s.mu.Unlock()
	// The master's vacuum is ours to switch while the admin lock is (the
	// master keeps a by-plugin switch only while the lock is held), whether
	// or not the shell lock pauses detection, and already while a grant by
	// a new master leader waits out the old one's leases (LockState.From):
	// the master holds it for us, and our vacuums still running should not
	// meet the new leader's own.
	if lock.Status == seaweed.LockOurs && time.Now().Before(lock.Until) {
		if err := s.master.SetAutoVacuum(ctx, !vacuumWorkers); err != nil {
			s.log.Warn("could not switch the master's automatic vacuum", "off", vacuumWorkers, "error", err)
		} else {
			s.mu.Lock()
			if s.view.vacuumSwitched(vacuumWorkers) {
				s.log.Info("master automatic vacuum", "off", vacuumWorkers)
			}
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

// cancelWholeAgain cancels the pending repairs whose volume the
// trusted topology shows whole again (WholeAgain): the lost server came
// back before the repair was assigned.
func (s *Scheduler) cancelWholeAgain(ctx context.Context, topo *seaweed.Topology) {
	var ids []uint64
	attempts := map[uint64]uint32{}
	s.state.Read(func(st *fsm.State) {
		pending := st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING}})
		ids = WholeAgain(pending, topo)
		for _, t := range pending {
			attempts[t.Id] = t.Attempt
		}
	})
	for _, id := range ids {
		// Only while still pending: an attempt assigned since the read
		// above runs (its volume stays reserved); remove_extra deals with
		// the copy it adds.
		if _, err := s.propose(ctx, fsm.CancelPendingCmd(id, attempts[id], "the volume has all its copies again (its server came back): no repair needed")); err != nil {
			switch {
			case errors.Is(err, fsm.ErrVersionNotAgreed):
				// An admin of an older build is a member: every round
				// would say so.
				s.log.Debug("repair no longer needed, but not cancelled", "task", id, "reason", err)
				continue
			case isRefusal(err):
				s.log.Info("repair no longer needed, but not cancelled", "task", id, "reason", err)
				continue
			}
			s.log.Warn("cancel a repair no longer needed", "task", id, "error", err)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		s.log.Info("repair no longer needed: the volume has all its copies again", "task", id)
	}
}

func (s *Scheduler) reconcile(ctx context.Context, topo *seaweed.Topology) {
	var retire []uint64
	s.state.Read(func(st *fsm.State) {
		for _, c := range st.CapacityChanges() {
			if capacity.Reflected(c, topo) {
				retire = append(retire, c.TaskId)
			}
		}
	})
	if len(retire) == 0 {
		return
	}
	if _, err := s.propose(ctx, fsm.RetireCmd(retire...)); err != nil {
		s.log.Warn("retire capacity changes", "error", err)
		return
	}
	s.log.Info("master reflects completed work", "retired", len(retire))
}

func (s *Scheduler) detect(ctx context.Context, topo *seaweed.Topology) {
	now := s.cfg.Now()
	// Repairs first: a volume at reduced redundancy gets its repair before
	// routine work can take it (a pending vacuum would hold it for its
	// whole run), and takes the place of a routine task still pending
	// (repairHolds).
	s.cancelWholeAgain(ctx, topo)
	losses := Losses(topo, RepairDetectors)
	s.mu.Lock()
	s.repairs = TrackLosses(s.repairs, losses, now)
	tracked := s.repairs
	s.extras = TrackLosses(s.extras, Losses(topo, ExtraDetectors), now)
	extras := s.extras
	s.mu.Unlock()
	var busyVols, repairBusy, extraBusy map[uint32]bool
	var preemptible map[uint32]uint64
	attempts := map[uint64]uint32{} // task id -> its attempt, as read
	var moves []ActiveMove
	var ecMoves []ECMove
	var policy *fsmpb.Policy
	s.state.Read(func(st *fsm.State) {
		policy = st.Policy()
		tasks := st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{
			fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED, fsmpb.TaskState_TASK_STATE_COMPLETED,
			fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING,
		}})
		busyVols, moves = busyVolumes(tasks, st.CapacityChanges(), now, s.cfg.FailureCooldown)
		ecMoves = ActiveECMoves(tasks)
		hold := RepairFailureHold(s.cfg.FailureCooldown, PolicyThresholds(policy, s.cfg.Thresholds).RepairAfter)
		repairBusy, preemptible = repairHolds(tasks, st.CapacityChanges(), now, hold, s.cfg.FailureCooldown)
		for _, id := range preemptible {
			if t, ok := st.Task(id); ok {
				attempts[id] = t.Attempt
			}
		}
		extraBusy = extrasBusy(tasks, st.CapacityChanges(), now, s.cfg.FailureCooldown)
	})
	// The policy (policy.go): nothing while paused, no disabled type,
	// repairs included; a repair it holds back cancels nothing.
	// Its thresholds, windows, collections and exclusions (policy_*.go).
	th := PolicyThresholds(policy, s.cfg.Thresholds)
	open := s.policyWindow(policy, now)
	props := WindowedProposals(AllowedProposals(RepairProposals(tracked, func(v uint32) bool { return repairBusy[v] }, th.RepairAfter, now), policy), policy, open)
	// Extra copies next (extras.go): only on a volume nothing is in
	// flight for and no repair is proposed for now.
	for _, p := range props {
		extraBusy[p.VolumeID] = true
	}
	props = append(props, WindowedProposals(AllowedProposals(ExtraProposals(extras, func(v uint32) bool { return extraBusy[v] }, th.RepairAfter, now), policy), policy, open)...)
	for _, p := range props {
		busyVols[p.VolumeID] = true
	}
	if open {
		dt := DetectionTopology(topo, policy)
		// Empty volumes first (delete_empty.go; none unless a quiet time is
		// set): deleting one beats vacuuming it.
		empties := AllowedProposals(DetectDeleteEmpty(dt, func(v uint32) bool { return busyVols[v] }, th, now), policy)
		for _, p := range empties {
			busyVols[p.VolumeID] = true
		}
		props = append(props, empties...)
		props = append(props, AllowedProposals(Detect(dt, func(v uint32) bool { return busyVols[v] }, moves, th, now), policy)...)
		// EC shard moves last (routine, one shard at a time), never of a
		// volume a repair or another task holds.
		props = append(props, AllowedProposals(DetectECBalance(dt, func(v uint32) bool { return busyVols[v] }, ecMoves, th), policy)...)
	}
	repairsRefused := 0
	for _, p := range props {
		res, err := s.submitDetected(ctx, p)
		if id, ok := preemptible[p.VolumeID]; ok && fsm.RepairType(p.Type) && errors.Is(err, fsm.ErrVolumeBusy) {
			// Refused for the pending routine task the repair takes the
			// place of (repairHolds): cancel it, then submit again. Only
			// after a refusal for that reason, so a repair that cannot be
			// submitted (an older admin, ErrVersionNotAgreed) cancels
			// nothing.
			// Only while still pending: one assigned since repairHolds read
			// it runs to its end, and the repair waits for it.
			if _, cerr := s.propose(ctx, fsm.CancelPendingCmd(id, attempts[id], fmt.Sprintf("its volume %d lost a copy (%s): the repair goes first", p.VolumeID, p.Reason))); cerr != nil {
				switch {
				case errors.Is(cerr, fsm.ErrVersionNotAgreed):
					// An admin of an older build is a member: every round
					// would say so.
					s.log.Debug("pending task not cancelled for a repair", "task", id, "volume", p.VolumeID, "reason", cerr)
				case isRefusal(cerr):
					s.log.Info("pending task not cancelled for a repair", "task", id, "volume", p.VolumeID, "reason", cerr)
				default:
					s.log.Warn("cancel a pending task for a repair", "task", id, "volume", p.VolumeID, "error", cerr)
				}
			} else {
				s.log.Info("pending task cancelled: its volume's repair goes first", "task", id, "volume", p.VolumeID)
				res, err = s.submitDetected(ctx, p)
			}
		}
		if err != nil {
			if errors.Is(err, fsm.ErrVolumeBusy) {
				continue
			}
			if errors.Is(err, fsm.ErrVersionNotAgreed) && fsm.TypeVersion(p.Type) > fsm.CommandVersion {
				// An admin of an older build is a member: repairs and the
				// newer types wait for the upgrade (one line per round, not
				// per volume).
				if repairsRefused++; repairsRefused == 1 {
					s.log.Warn("tasks not submitted: not every admin runs a build that knows their type yet", "type", fsm.TypeName(p.Type), "volume", p.VolumeID)
				}
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

// submitDetected proposes the task a detector proposed.
func (s *Scheduler) submitDetected(ctx context.Context, p Proposal) (*fsmpb.ApplyResult, error) {
	return s.propose(ctx, fsm.SubmitCmd(&fsmpb.SubmitTask{
		Type: p.Type, VolumeId: p.VolumeID, Collection: p.Collection, Source: p.Source, Target: p.Target,
		Priority: p.Priority, Origin: "detector", Params: p.Params,
	}))
}

// SharedPollMaster is a Master whose topology polls may be shared with
// other callers (the node's topology cache): TopologyAsked also says when
// the poll that answered began, which may be before the call.
type SharedPollMaster interface {
	TopologyAsked(ctx context.Context) (topo *seaweed.Topology, asked time.Time, err error)
}

// LeaderEpochMaster is a Master with several SeaweedFS masters that counts
// its master leaders (seaweed.Master.LeaderEpoch): a new one refills its
// topology as the volume servers re-register, and is judged as a
// restarted master is.
type LeaderEpochMaster interface {
	LeaderEpoch() uint64
}

// askTopology polls the master's topology and says when it was asked for:
// the start of the poll that answered (a shared one may have begun before
// this call), so that planning never takes it for newer than it is.
func (s *Scheduler) askTopology(ctx context.Context) (*seaweed.Topology, time.Time, error) {
	if m, ok := s.master.(SharedPollMaster); ok {
		return m.TopologyAsked(ctx)
	}
	asked := s.cfg.Now()
	topo, err := s.master.Topology(ctx)
	return topo, asked, err
}
