package scheduler

import (
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Gate is what the leader may start, given SeaweedFS's admin lock (see
// seaweed.AdminLockName) and its shell lock (seaweed.ShellLockName): while
// another process holds the admin lock (a `weed admin` announces itself
// with it) or anybody holds the shell lock (a `weed shell` user's `lock`,
// or `weed admin` running a detection or a job), the leader neither
// detects nor assigns.
//
// Our own hold of the shell lock around our attempts (ShellHoldDecide, as
// weed admin's AdminLockManager around its jobs) is not "held" here: the
// shell lock's holder is asked for, and our client's name ignored
// (masterView.shellAnswer); masterView.gate adds the hold's own rule.
//
// Attempts already assigned are left to finish (they are not cancelled):
// each holds its volume's reservation in the replicated state, and losing
// the lock says nothing about another process touching those volumes, while
// stopping an erasure coding or a move midway leaves the volume worse than
// either finishing or never starting. Their outcomes, lease expiries and
// cancels are handled as usual; a requeued attempt waits, pending, for the
// lock.
type Gate struct {
	Detect, Assign bool
	// Paused says why not, for logs and `ctl status` ("" when both may).
	Paused string
}

// OtherLock is a lock other processes take on the master (the shell lock),
// as last asked.
type OtherLock struct {
	Held   bool
	Holder string
	// Since is when it was first seen held by Holder (or free).
	Since time.Time
	// Err is why the last ask failed (Held is then the last answer).
	Err error
}

// LockGate decides from the admin lock as last seen, at now (the clock of
// l.Until):
//
//   - ours, within the lease of the last renewal confirmed: detect and
//     assign;
//   - held by another client: pause both until it is ours;
//   - ours by a renewal whose answer was lost (the master names us but
//     refuses our token): pause both until that lease lapses and we take
//     the lock anew;
//   - not known because the master cannot be asked: detection pauses (it
//     needs the master anyway); assignment goes on under the master-outage
//     rules (assignTopology) only if the lock was ours when the master last
//     answered, and only within the lease that answer confirmed: past it
//     another process may hold the lock on a master we do not reach (our
//     master lost its election, a one-way partition, a process pause);
//   - not known yet (a new leader, no answer): pause both;
//
// and, whatever the admin lock, the shell lock held by anybody else pauses
// both.
func LockGate(l seaweed.LockState, shell OtherLock, now time.Time) Gate {
	g := adminLockGate(l, now)
	if shell.Held {
		why := fmt.Sprintf("SeaweedFS's %q lock is held by %s (a `weed shell` lock, or `weed admin` running a job)", seaweed.ShellLockName, holderName(shell.Holder))
		if g.Paused != "" {
			why += "; " + g.Paused
		}
		return Gate{Paused: why}
	}
	return g
}

func adminLockGate(l seaweed.LockState, now time.Time) Gate {
	switch l.Status {
	case seaweed.LockOurs:
		if l.OursAt(now) {
			return Gate{Detect: true, Assign: true}
		}
		if now.Before(l.From) && now.Before(l.Until) {
			return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q was granted by a new master leader: waiting %s for the previous leader's leases to lapse (their holders may still act)", seaweed.AdminLockName, l.From.Sub(now).Round(100*time.Millisecond))}
		}
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q: no renewal confirmed within its lease (the master answers too slowly, or this process was paused)", seaweed.AdminLockName)}
	case seaweed.LockOther:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q is held by %s", seaweed.AdminLockName, holderName(l.Holder))}
	case seaweed.LockLost:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q is ours, token lost (a renewal's answer did not arrive); waiting for the lease to lapse", seaweed.AdminLockName)}
	}
	switch l.Last {
	case seaweed.LockOurs:
		if now.Before(l.Until) && !now.Before(l.From) {
			return Gate{Assign: true, Paused: "detection paused: the admin lock cannot be renewed (the master does not answer)"}
		}
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q cannot be renewed (the master does not answer) and the lease of its last renewal has run out: another process may hold it", seaweed.AdminLockName)}
	case seaweed.LockLost:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q was ours with its token lost and the master does not answer", seaweed.AdminLockName)}
	case seaweed.LockOther:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q was last held by %s and the master does not answer", seaweed.AdminLockName, holderName(l.Holder))}
	}
	return Gate{Paused: fmt.Sprintf("waiting for SeaweedFS's admin lock %q", seaweed.AdminLockName)}
}

func holderName(h string) string {
	if h == "" {
		return "another client (the master did not say which)"
	}
	return fmt.Sprintf("%q", h)
}
