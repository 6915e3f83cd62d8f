package scheduler

import (
	"context"
	"slices"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// maxForgetPerPass bounds the deregistrations one prune pass proposes.
const maxForgetPerPass = 100

// WorkersToForget picks the registered workers to deregister: not
// connected, and silent for after, counted from the latest of their
// registration, the last time this leader heard from them, and the start
// of this leadership. A new leader has heard from nobody, so it forgets no
// one before it has led for after itself: a worker that was connected to
// the previous leader, and is between two connections, is never taken for
// gone. Without this, every worker id that ever said hello (a renamed
// host, a test run, a client that made one up) stays in the replicated
// state, its snapshots and `ctl workers` for good. The ids come back
// sorted.
func WorkersToForget(registered []*fsmpb.Worker, connected map[string]bool, lastSeen map[string]time.Time, leaderSince, now time.Time, after time.Duration) []string {
	var out []string
	for _, w := range registered {
		if connected[w.Id] {
			continue
		}
		latest := leaderSince
		if reg := time.Unix(0, w.RegisteredAt); reg.After(latest) {
			latest = reg
		}
		if seen, ok := lastSeen[w.Id]; ok && seen.After(latest) {
			latest = seen
		}
		if now.Sub(latest) >= after {
			out = append(out, w.Id)
		}
	}
	slices.Sort(out)
	return out
}

// forgetWorkers deregisters the workers WorkersToForget picks, each under
// its ownership lock after checking again that it has not said hello
// meanwhile (a hello registers under the same lock, so it either sees the
// worker gone and registers it again, or keeps it from being forgotten).
func (s *Scheduler) forgetWorkers(ctx context.Context, now time.Time) {
	var registered []*fsmpb.Worker
	s.state.Read(func(st *fsm.State) { registered = st.Workers() })
	s.mu.Lock()
	connected := make(map[string]bool, len(s.sessions))
	for id := range s.sessions {
		connected[id] = true
	}
	ids := WorkersToForget(registered, connected, s.lastSeen, s.started, now, s.cfg.Retention.ForgetWorkersAfter)
	s.mu.Unlock()
	for _, id := range ids[:min(len(ids), maxForgetPerPass)] {
		if ctx.Err() != nil {
			return
		}
		s.forgetWorker(ctx, id, now)
	}
}

func (s *Scheduler) forgetWorker(ctx context.Context, id string, now time.Time) {
	unlock, err := s.owners.lock(ctx, id)
	if err != nil {
		return // leadership lost
	}
	defer unlock()
	s.mu.Lock()
	_, connected := s.sessions[id]
	seen, heard := s.lastSeen[id]
	s.mu.Unlock()
	if connected || (heard && now.Sub(seen) < s.cfg.Retention.ForgetWorkersAfter) {
		return
	}
	if _, err := s.propose(ctx, fsm.DeregisterCmd(id)); err != nil {
		s.log.Warn("forget a worker gone for long", "worker", id, "error", err)
		return
	}
	s.log.Info("forgot a worker not heard from for long", "worker", id, "after", s.cfg.Retention.ForgetWorkersAfter)
}
