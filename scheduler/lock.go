package scheduler

import (
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Gate is what the leader may start, given SeaweedFS's admin lock (see
// seaweed.AdminLockName): the lock is how SeaweedFS's own maintenance
// (`weed admin`) and we keep out of each other's way, so while another
// process holds it the leader neither detects nor assigns.
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
//   - not known yet (a new leader, no answer): pause both.
func LockGate(l seaweed.LockState, now time.Time) Gate {
	switch l.Status {
	case seaweed.LockOurs:
		if l.OursAt(now) {
			return Gate{Detect: true, Assign: true}
		}
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q: no renewal confirmed within its lease (the master answers too slowly, or this process was paused)", seaweed.AdminLockName)}
	case seaweed.LockOther:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q is held by %s", seaweed.AdminLockName, holderName(l.Holder))}
	case seaweed.LockLost:
		return Gate{Paused: fmt.Sprintf("SeaweedFS's admin lock %q is ours, token lost (a renewal's answer did not arrive); waiting for the lease to lapse", seaweed.AdminLockName)}
	}
	switch l.Last {
	case seaweed.LockOurs:
		if now.Before(l.Until) {
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
