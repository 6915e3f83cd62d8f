package scheduler

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Retention is how many finished tasks the replicated state keeps, and for
// how long. Without it the state, its snapshots and every restart would grow
// with each task ever run.
type Retention struct {
	// MaxAge: terminal tasks that finished longer ago are forgotten (7 days).
	MaxAge time.Duration
	// MaxCount: beyond this many terminal tasks, the longest finished go
	// (100,000; 0 means no limit).
	MaxCount int
	// ForgetWorkersAfter: a registered worker not heard from for this long
	// is deregistered (7 days; see WorkersToForget).
	ForgetWorkersAfter time.Duration
}

// DefaultRetention keeps a week of history, at most 100,000 tasks, and
// forgets workers gone for a week.
func DefaultRetention() Retention {
	return Retention{MaxAge: 7 * 24 * time.Hour, MaxCount: 100_000, ForgetWorkersAfter: 7 * 24 * time.Hour}
}

// Validate checks a retention policy in the terms of its flags.
func (r Retention) Validate(cooldown time.Duration) error {
	if r.MaxCount < 0 {
		return fmt.Errorf("--task-retention-count %d is negative (0 means no limit)", r.MaxCount)
	}
	if r.MaxAge < time.Hour || r.MaxAge < cooldown {
		return fmt.Errorf("--task-retention %s is too short: finished tasks must be kept at least 1h (and the %s failure cooldown)", r.MaxAge, cooldown)
	}
	if r.ForgetWorkersAfter != 0 && r.ForgetWorkersAfter < time.Hour { // 0: the default
		return fmt.Errorf("--worker-forget-after %s is too short: a worker must be gone at least 1h before it is forgotten", r.ForgetWorkersAfter)
	}
	return nil
}

// pruneEvery is how often the leader looks for tasks to forget.
const pruneEvery = time.Minute

// PruneCandidates picks, from the terminal tasks, those to forget: finished
// more than MaxAge before now, or beyond the MaxCount most recently finished.
// A failed or cancelled task or a completed move younger than cooldown stays
// (detection reads it to leave its volume alone), and so does any task keep names (one still carrying an
// unreported capacity change). The ids come back sorted.
func PruneCandidates(terminal []*fsmpb.Task, keep func(id uint64) bool, now time.Time, r Retention, cooldown time.Duration) []uint64 {
	byAge := slices.Clone(terminal)
	// Most recently finished first; ids break ties so the choice is stable.
	sort.Slice(byAge, func(i, j int) bool {
		if byAge[i].FinishedAt != byAge[j].FinishedAt {
			return byAge[i].FinishedAt > byAge[j].FinishedAt
		}
		return byAge[i].Id > byAge[j].Id
	})
	ageCut := now.Add(-r.MaxAge).UnixNano()
	failCut := now.Add(-cooldown).UnixNano()
	var out []uint64
	for i, t := range byAge {
		old := t.FinishedAt < ageCut
		surplus := r.MaxCount > 0 && i >= r.MaxCount
		if !old && !surplus {
			continue
		}
		if coolingDown(t) && t.FinishedAt >= failCut {
			continue
		}
		if keep != nil && keep(t.Id) {
			continue
		}
		out = append(out, t.Id)
	}
	slices.Sort(out)
	return out
}

// coolingDown reports whether detection reads the finished task t while it
// is younger than the cooldown: a failed or cancelled task (its volume is
// left alone) or a completed move (its volume is not moved again).
func coolingDown(t *fsmpb.Task) bool {
	switch t.State {
	case fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED:
		return true
	case fsmpb.TaskState_TASK_STATE_COMPLETED:
		return t.Type == fsmpb.TaskType_TASK_TYPE_BALANCE
	}
	return false
}

// prune forgets the finished tasks the retention policy lets go, in
// commands of at most fsm.MaxPrune ids.
func (s *Scheduler) prune(ctx context.Context, now time.Time) {
	s.forgetWorkers(ctx, now)
	var ids []uint64
	s.state.Read(func(st *fsm.State) {
		terminal := st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_COMPLETED, fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED}})
		ids = PruneCandidates(terminal, func(id uint64) bool { return !st.Prunable(id) }, now, s.cfg.Retention, s.cfg.FailureCooldown)
	})
	for len(ids) > 0 && ctx.Err() == nil {
		chunk := ids[:min(len(ids), fsm.MaxPrune)]
		ids = ids[len(chunk):]
		if _, err := s.propose(ctx, fsm.PruneCmd(chunk...)); err != nil {
			s.log.Warn("prune finished tasks", "error", err)
			return
		}
		s.log.Info("pruned finished tasks", "count", len(chunk), "oldest_id", chunk[0])
	}
}
