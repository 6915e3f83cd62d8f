package scheduler

import (
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Where the replicated maintenance policy (fsm.Policy) is enforced. The
// leader reads it at the start of every round, so a change takes effect
// from the next scheduling round (maintain runs every 500 ms and on every
// kick) and the next detection round:
//   - paused: no detection proposals and no assignments, of any type,
//     repairs included (the pause is the incident brake: nothing new
//     starts). Attempts already assigned or running finish, and their
//     leases, cancels and completions are handled as usual; capacity
//     changes are still retired.
//   - a disabled type: no detection proposals of that type, and its
//     pending tasks (manual ones included) stay pending, unassigned.
//     Detection still gives a volume at most one proposal, so a volume that
//     wants a disabled type's work gets no other type's instead that round.

// AllowedPending returns the pending tasks policy p lets be assigned, in
// their order: none while paused, none of a disabled type.
func AllowedPending(pending []*fsmpb.Task, p *fsmpb.Policy) []*fsmpb.Task {
	if p.GetPaused() {
		return nil
	}
	out := pending[:0:0]
	for _, t := range pending {
		if fsm.PolicyAllows(p, t.Type) {
			out = append(out, t)
		}
	}
	return out
}

// AllowedProposals returns the detection proposals policy p lets be
// submitted, in their order: none while paused, none of a disabled type.
func AllowedProposals(props []Proposal, p *fsmpb.Policy) []Proposal {
	if p.GetPaused() {
		return nil
	}
	out := props[:0:0]
	for _, pr := range props {
		if fsm.PolicyAllows(p, pr.Type) {
			out = append(out, pr)
		}
	}
	return out
}

// notePolicy logs when the policy's pause starts or ends, as this leader
// sees it (only Run's goroutine calls it).
func (s *Scheduler) notePolicy(p *fsmpb.Policy) {
	if p.Paused == s.policyPaused {
		return
	}
	s.policyPaused = p.Paused
	if p.Paused {
		s.log.Info("maintenance paused by policy: nothing new is detected or assigned", "revision", p.Revision, "by", p.UpdatedBy, "reason", p.PauseReason)
	} else {
		s.log.Info("maintenance resumed by policy", "revision", p.Revision, "by", p.UpdatedBy)
	}
}

// WindowedPending returns the pending tasks that may start with the
// maintenance windows open or not (see mayStart), in their order.
func WindowedPending(pending []*fsmpb.Task, p *fsmpb.Policy, open bool) []*fsmpb.Task {
	out := pending[:0:0]
	for _, t := range pending {
		if mayStart(p, t.Type, open) {
			out = append(out, t)
		}
	}
	return out
}

// WindowedProposals returns the proposals that may be submitted with the
// maintenance windows open or not, in their order: a routine proposal made
// outside a window would only wait (and hold its volume) until one opens.
func WindowedProposals(props []Proposal, p *fsmpb.Policy, open bool) []Proposal {
	out := props[:0:0]
	for _, pr := range props {
		if mayStart(p, pr.Type, open) {
			out = append(out, pr)
		}
	}
	return out
}

// policyWindow is WindowOpen for this leader at now, logging (once per
// change) a time zone that does not load.
func (s *Scheduler) policyWindow(p *fsmpb.Policy, now time.Time) bool {
	open, err := WindowOpen(p, now)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	changed := msg != s.windowErr
	s.windowErr = msg
	s.mu.Unlock()
	if changed && err != nil {
		s.log.Warn("maintenance windows", "error", err)
	}
	return open
}
