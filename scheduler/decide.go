package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// The maintenance round's decisions, as functions of what the leader knows
// (the replicated state, its leader-local maps), the time and the
// configuration: no clock reads, no locks, no sends, no proposals. The loop
// methods (expireLeases, cancelRequested, checkStuck, detect,
// reconcileRunning) gather the inputs under s.mu and apply the decisions.

// heardWithin reports whether something at t happened less than limit
// before now: a worker heard from within its lease+grace, an attempt
// assigned within it.
func heardWithin(t, now time.Time, limit time.Duration) bool {
	return now.Sub(t) < limit
}

// leaseHeld reports whether a worker, last heard from at seen (heard: at
// all, by this leader), still holds its lease at now. It is the re-check
// requeueExpired makes under the worker's ownership lock.
func leaseHeld(seen time.Time, heard bool, now time.Time, limit time.Duration) bool {
	return heard && heardWithin(seen, now, limit)
}

// workerExpiry is a silent worker and its attempts to requeue.
type workerExpiry struct {
	worker string
	tasks  []*fsmpb.Task
}

// leaseExpiry is expiredLeases' decision.
type leaseExpiry struct {
	// expired lists the silent workers' attempts, by worker, workers in the
	// order of their first attempt in active.
	expired []workerExpiry
	// drop lists the connected workers (sessions) whose lease expired, sorted.
	drop []string
}

// expiredLeases decides which attempts to requeue because their worker was
// silent for lease+grace, and which sessions to drop. started is when this
// leader's term began: a new leader first gives every worker one
// lease+grace to reconnect (nothing expires before), and counts a worker it
// never heard from as last heard at started. lastSeen is when each worker
// was last heard from, connected the ids of workers with a session. An
// attempt assigned within lease+grace does not expire (its worker may not
// have received it yet).
func expiredLeases(active []*fsmpb.Task, started time.Time, lastSeen map[string]time.Time, connected []string, now time.Time, lease, grace time.Duration) leaseExpiry {
	limit := lease + grace
	var d leaseExpiry
	if heardWithin(started, now, limit) {
		return d
	}
	index := map[string]int{}
	for _, t := range active {
		seen, ok := lastSeen[t.WorkerId]
		if !ok {
			seen = started
		}
		if heardWithin(seen, now, limit) || heardWithin(time.Unix(0, t.AssignedAt), now, limit) {
			continue
		}
		i, ok := index[t.WorkerId]
		if !ok {
			i = len(d.expired)
			index[t.WorkerId] = i
			d.expired = append(d.expired, workerExpiry{worker: t.WorkerId})
		}
		d.expired[i].tasks = append(d.expired[i].tasks, t)
	}
	for _, id := range connected {
		// A session without a lastSeen (none is made so) counts as silent.
		if seen, ok := lastSeen[id]; !ok || !heardWithin(seen, now, limit) {
			d.drop = append(d.drop, id)
		}
	}
	sort.Strings(d.drop)
	return d
}

// cancelUpdate is an attempt's cancelling entry to store, and whether to
// send its worker a Cancel now.
type cancelUpdate struct {
	task *fsmpb.Task
	info cancelInfo
	send bool
}

// cancelsToSend decides, for the active tasks an operator asked to cancel,
// which attempts to tell to stop: each attempt once (an attempt already
// being cancelled is not told again here; reconcileRunning repeats it while
// heartbeats list it). An attempt a stuck check already told to stop (a
// retry) is not told again, but its end becomes final, with the
// operator's reason.
func cancelsToSend(active []*fsmpb.Task, cancelling map[uint64]cancelInfo, now time.Time) []cancelUpdate {
	var out []cancelUpdate
	for _, t := range active {
		if !t.CancelRequested {
			continue
		}
		if ci, ok := cancelling[t.Id]; ok && ci.fence == t.Fence {
			if ci.retry {
				ci.retry, ci.reason = false, t.CancelReason
				out = append(out, cancelUpdate{task: t, info: ci})
			}
			continue
		}
		out = append(out, cancelUpdate{task: t, info: cancelInfo{fence: t.Fence, reason: t.CancelReason, at: now, sent: now}, send: true})
	}
	return out
}

// resendCancel reports whether a Cancel for attempt fence, being cancelled
// as ci, is to be sent again at now to a worker whose heartbeat still lists
// it: at most every two heartbeat periods (the first may have gone down a
// stream that since broke).
func resendCancel(ci cancelInfo, fence uint64, now time.Time, heartbeat time.Duration) bool {
	return ci.fence == fence && now.Sub(ci.sent) >= 2*heartbeat
}

// stuckAttempt is an attempt to stop for want of progress, and why.
type stuckAttempt struct {
	task   *fsmpb.Task
	reason string
}

// stuckCheck is stuckTasks' decision.
type stuckCheck struct {
	// track lists attempts whose progress clock starts now: not seen
	// before, or a new attempt of the task.
	track []*fsmpb.Task
	stuck []stuckAttempt
}

// stuckTasks decides which active attempts made no progress for their
// type's stuckAfter (a type without one is stuck at once), by the
// leader-local progress; attempts already being cancelled are left alone.
func stuckTasks(active []*fsmpb.Task, progress map[uint64]progressInfo, cancelling map[uint64]cancelInfo, now time.Time, stuckAfter map[fsmpb.TaskType]time.Duration) stuckCheck {
	var d stuckCheck
	for _, t := range active {
		if _, ok := cancelling[t.Id]; ok {
			continue
		}
		p, ok := progress[t.Id]
		if !ok || p.fence != t.Fence {
			d.track = append(d.track, t)
			continue
		}
		limit, ok := stuckAfter[t.Type]
		if !ok {
			limit = DefaultStuckAfter
		}
		if now.Sub(p.at) < limit {
			continue
		}
		d.stuck = append(d.stuck, stuckAttempt{task: t,
			reason: fmt.Sprintf("stuck: no progress for %s in step %q", now.Sub(p.at).Truncate(time.Second), p.step)})
	}
	return d
}

// busyVolumes decides which volumes detection must leave alone, from the
// replicated tasks (any states; sorted by id, as fsm.State.Tasks returns
// them) and unretired capacity changes: a volume with a pending or active
// task, one whose task failed or was cancelled within cooldown before now
// (at the boundary included: operators' own submissions and retries are not
// held back, only detection), and one with a capacity change the master
// does not reflect yet. It also lists the balance moves in flight, for
// projecting server loads, and those completed within cooldown (Done),
// whose volumes balance leaves where they went.
func busyVolumes(tasks []*fsmpb.Task, changes []*fsmpb.CapacityChange, now time.Time, cooldown time.Duration) (map[uint32]bool, []ActiveMove) {
	busy := map[uint32]bool{}
	var moves []ActiveMove
	since := now.Add(-cooldown).UnixNano()
	for _, t := range tasks {
		switch t.State {
		case fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED:
			if t.FinishedAt >= since {
				busy[t.VolumeId] = true
			}
		case fsmpb.TaskState_TASK_STATE_COMPLETED:
			if t.Type == fsmpb.TaskType_TASK_TYPE_BALANCE && t.FinishedAt >= since {
				moves = append(moves, ActiveMove{VolumeID: t.VolumeId, Source: t.Source, Target: t.Target, Done: true})
			}
		case fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING:
			busy[t.VolumeId] = true
			if t.Type == fsmpb.TaskType_TASK_TYPE_BALANCE {
				moves = append(moves, ActiveMove{VolumeID: t.VolumeId, Source: t.Source, Target: t.Target})
			}
		}
	}
	for _, c := range changes {
		busy[c.VolumeId] = true
	}
	return busy, moves
}
