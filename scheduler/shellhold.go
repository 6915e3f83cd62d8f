package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Shell lock holding defaults, as `weed admin`'s AdminLockManager
// (weed/admin/dash/admin_lock_manager.go): a `weed shell` waiting for the
// lock polls the master once a second, while our re-acquire would win at
// once, so after a release the lock is left free for slightly more than
// one poll; and after holding it continuously for a minute (overlapping
// attempts can keep it held indefinitely) nothing new is assigned until
// it has been fully released, so shell users are not starved.
const (
	DefaultShellYield    = 2 * time.Second
	DefaultShellFairness = time.Minute
	// shellIdleGrace is how long the leader keeps the shell lock with
	// nothing in flight while it has work to assign (the lock is taken
	// before the assignment that needs it): past it, nothing it could
	// assign went out (plans that wait, workers full) and the lock goes
	// back.
	shellIdleGrace = 5 * time.Second
)

// ShellHoldState is what the leader knows of its own hold of SeaweedFS's
// shell lock (seaweed.ShellLockName) and of its work, at Now.
type ShellHoldState struct {
	// InFlight is how many attempts are assigned or running.
	InFlight int
	// Want says there is work the leader could assign now (pending tasks
	// ready now, not backing off; a worker with a free slot; the lock gate
	// allowing it).
	Want bool
	// Keeping says our lock keeper runs (taking, holding or renewing the
	// lock); Releasing, that it was stopped and its release not yet done.
	Keeping, Releasing bool
	// Held says the shell lock is surely ours now (LockState.OursAt).
	Held bool
	// HeldSince is when the current continuous hold began (zero: not
	// held); IdleSince, when it last had nothing in flight while held
	// (zero: something is in flight, or not held).
	HeldSince, IdleSince time.Time
	// ReleasedAt is when our last hold was released (zero: never).
	ReleasedAt time.Time
	Now        time.Time
	// Yield and Fairness are the windows (Config.ShellYield,
	// Config.ShellFairness); a Fairness of zero or less never forces a
	// release.
	Yield, Fairness time.Duration
}

// ShellHold is what to do with the shell lock.
type ShellHold struct {
	// Keep: take the lock (or keep it); otherwise release it.
	Keep bool
	// Assign: new attempts may be assigned (or re-sent) now, as far as the
	// shell lock goes.
	Assign bool
	// Resend: attempts already assigned may be re-sent to their worker (a
	// reconnect): while the lock is ours, even past Fairness.
	Resend bool
	// Why says why not Assign while there is work ("" otherwise).
	Why string
}

// ShellHoldDecide decides, as `weed admin`'s AdminLockManager does around
// its jobs, from our hold of the shell lock and the work in flight:
//
//   - attempts assigned or running keep the lock (taken before they were
//     assigned; one hold covers them all, as the manager's reference
//     count);
//   - with nothing in flight the lock is released, unless there is work
//     to assign: then it is taken first, except within Yield of our last
//     release (a polling `weed shell` gets it first), and kept idle no
//     longer than shellIdleGrace;
//   - new work is assigned only while the lock is surely ours, and not
//     once it has been held continuously for longer than Fairness: then
//     the attempts in flight finish, the lock is released and left free
//     for Yield before it is taken again.
//
// Whoever else holds the lock, our keeper waits for it (as the shell's own
// `lock` does), and LockGate pauses assignment meanwhile.
func ShellHoldDecide(s ShellHoldState) ShellHold {
	fair := s.Fairness > 0 && s.Keeping && !s.HeldSince.IsZero() && s.Now.Sub(s.HeldSince) > s.Fairness
	switch {
	case s.InFlight > 0:
		h := ShellHold{Keep: true, Resend: s.Held && !s.Releasing}
		switch {
		case fair:
			h.Why = fmt.Sprintf("SeaweedFS's %q lock has been ours for longer than %s: letting the attempts in flight finish and releasing it before assigning more (so `weed shell` users get a turn)", seaweed.ShellLockName, s.Fairness)
		case s.Held && !s.Releasing:
			h.Assign = true
		default:
			h.Why = fmt.Sprintf("taking SeaweedFS's %q lock", seaweed.ShellLockName)
		}
		return h
	case !s.Want:
		return ShellHold{}
	case fair:
		return ShellHold{Why: fmt.Sprintf("releasing SeaweedFS's %q lock after holding it for longer than %s", seaweed.ShellLockName, s.Fairness)}
	case s.Releasing:
		return ShellHold{Why: fmt.Sprintf("releasing SeaweedFS's %q lock", seaweed.ShellLockName)}
	case s.Keeping && s.Held:
		if !s.IdleSince.IsZero() && s.Now.Sub(s.IdleSince) >= shellIdleGrace {
			return ShellHold{Why: fmt.Sprintf("releasing SeaweedFS's %q lock: nothing went out for %s", seaweed.ShellLockName, shellIdleGrace)}
		}
		return ShellHold{Keep: true, Assign: true, Resend: true}
	case s.Keeping:
		return ShellHold{Keep: true, Why: fmt.Sprintf("taking SeaweedFS's %q lock", seaweed.ShellLockName)}
	case !s.ReleasedAt.IsZero() && s.Now.Sub(s.ReleasedAt) < s.Yield:
		return ShellHold{Why: fmt.Sprintf("leaving SeaweedFS's %q lock free for %s after our release, for a waiting `weed shell`", seaweed.ShellLockName, s.Yield)}
	default:
		return ShellHold{Keep: true, Why: fmt.Sprintf("taking SeaweedFS's %q lock", seaweed.ShellLockName)}
	}
}

// LockMaster is a Master that keeps any master lock (seaweed.Master): the
// leader holds the shell lock with it when Config.HoldShellLock is set.
type LockMaster interface {
	NewLock(name, client string) *seaweed.AdminLock
}

// shellKeeper is one hold of the shell lock: its keeper runs from when
// it is wanted until it is stopped, and released (done) after.
type shellKeeper struct {
	lock      *seaweed.AdminLock
	stop      context.CancelFunc
	done      chan struct{}
	releasing bool
	// heldSince and idleSince: see ShellHoldState.
	heldSince, idleSince time.Time
}

// stepShell decides about our hold of the shell lock (ShellHoldDecide)
// with inFlight attempts assigned or running and want saying there is
// work to assign, takes or releases it, and records the decision for the
// gate. Call without s.mu.
func (s *Scheduler) stepShell(inFlight int, want bool) {
	m, ok := s.master.(LockMaster)
	if !ok || !s.cfg.HoldShellLock {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &s.view
	v.holdOn = true
	st := ShellHoldState{InFlight: inFlight, Want: want, Now: now, ReleasedAt: v.releasedAt, Yield: s.cfg.ShellYield, Fairness: s.cfg.ShellFairness}
	if k := v.hold; k != nil {
		st.Keeping, st.Releasing = true, k.releasing
		st.Held = !k.releasing && k.lock.State().OursAt(now)
		if st.Held && k.heldSince.IsZero() {
			k.heldSince = now
			s.log.Info("holding SeaweedFS's shell lock while our attempts run", "lock", seaweed.ShellLockName)
		}
		switch {
		case inFlight > 0 || !st.Held:
			k.idleSince = time.Time{}
		case k.idleSince.IsZero():
			k.idleSince = now
		}
		st.HeldSince, st.IdleSince = k.heldSince, k.idleSince
	}
	d := ShellHoldDecide(st)
	v.holdLast = d
	switch {
	case d.Keep && v.hold == nil:
		s.startShellHold(m)
	case !d.Keep && v.hold != nil && !v.hold.releasing:
		s.releaseShellHold(v.hold)
	}
}

// startShellHold starts a keeper of the shell lock. Call with s.mu held.
func (s *Scheduler) startShellHold(m LockMaster) {
	ctx, stop := context.WithCancel(context.Background())
	k := &shellKeeper{lock: m.NewLock(seaweed.ShellLockName, s.view.shellClient), stop: stop, done: make(chan struct{})}
	s.view.hold = k
	go func() { defer close(k.done); k.lock.Run(ctx) }()
	go func() {
		// Assignment waits for the lock: go on as soon as it is ours.
		for {
			select {
			case <-k.done:
				return
			case <-k.lock.Changed():
				s.Kick()
			}
		}
	}()
}

// releaseShellHold stops k, which releases the lock; when that is done
// the lock is left free for the yield window. Call with s.mu held.
func (s *Scheduler) releaseShellHold(k *shellKeeper) {
	k.releasing = true
	k.stop()
	go func() {
		<-k.done
		s.mu.Lock()
		if s.view.hold == k {
			s.view.hold, s.view.releasedAt = nil, time.Now()
			if !k.heldSince.IsZero() {
				s.log.Info("released SeaweedFS's shell lock", "lock", seaweed.ShellLockName, "held", time.Since(k.heldSince).Round(time.Millisecond))
			}
		}
		s.mu.Unlock()
		s.Kick()
	}()
}

// stopShellHold releases the shell lock at the end of a term and waits
// until that is done.
func (s *Scheduler) stopShellHold() {
	s.mu.Lock()
	k := s.view.hold
	if k != nil && !k.releasing {
		s.releaseShellHold(k)
	}
	s.mu.Unlock()
	if k != nil {
		<-k.done
	}
}
