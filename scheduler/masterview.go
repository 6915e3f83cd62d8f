package scheduler

import (
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// masterView is what the leader knows of the SeaweedFS master this term:
// the topology as last polled and whether it is trusted, the last trusted
// one, the admin lock, SeaweedFS's shell lock as last asked, and the
// master's own vacuum as we set it. The loops ask the master and record
// the answers here; what may be done follows from it (gate,
// assignTopology). It has no lock of its own: the Scheduler's mu guards
// it. It logs the changes it sees, once each.
type masterView struct {
	log     hclog.Logger
	topo    *seaweed.Topology
	topoOK  bool
	topoErr error
	// trusted is the last topology trusted this term (complete); it plans
	// the work that may still go out while the master is unreachable or
	// refilling (see assignTopology).
	trusted *seaweed.Topology
	// topoAsked and trustedAsked are when topo and trusted were asked for
	// (before the poll began): planning waits for a volume submitted after
	// the topology it plans from (PlanSpecAsOf).
	topoAsked, trustedAsked time.Time
	// refill judges whether a polled topology is complete enough to act on.
	refill seaweed.RefillGuard
	// leaderEpoch is the SeaweedFS master leader epoch of the last poll
	// (LeaderEpochMaster; 0: unknown): a new master leader engages refill.
	leaderEpoch uint64
	vacuumOff   *bool
	lock        *seaweed.AdminLock
	// shell is SeaweedFS's shell lock as last asked, and when.
	shell        OtherLock
	shellChecked time.Time
	// hold is our own hold of the shell lock (nil: not held, not wanted),
	// holdLast the last decision about it, and shellClient the name our
	// keeper gives the master: its hold is not "held elsewhere".
	hold        *shellKeeper
	holdLast    ShellHold
	holdOn      bool
	shellClient string
	// releasedAt is when our last hold of the shell lock was released.
	releasedAt time.Time
	// paused is the last Gate's reason, to log its changes once.
	paused   string
	lastPoll time.Time
}

// reset forgets the last term's view (not when the master was last
// polled, which operators are shown). A new leader has no baseline: it
// waits for two agreeing polls.
func (v *masterView) reset() {
	*v = masterView{log: v.log, lastPoll: v.lastPoll, refill: seaweed.RefillGuard{Agree: true}, shellClient: v.shellClient}
}

// lockGate is what the admin and shell locks allow at now, before our own
// hold of the shell lock (ShellHoldDecide) is considered.
func (v *masterView) lockGate(now time.Time) Gate {
	if v.lock == nil {
		return Gate{Detect: true, Assign: true}
	}
	return LockGate(v.lock.State(), v.shell, now)
}

// resendGate is whether attempts already assigned may be re-sent at now:
// as gate, but past the shell lock's fairness window too.
func (v *masterView) resendGate(now time.Time) bool {
	return v.lockGate(now).Assign && (!v.holdOn || v.holdLast.Resend)
}

// gate is what the admin lock allows at now (everything without a master),
// logging when that changes.
func (v *masterView) gate(now time.Time) Gate {
	if v.lock == nil {
		return Gate{Detect: true, Assign: true}
	}
	g := LockGate(v.lock.State(), v.shell, now)
	if v.holdOn && g.Assign && !v.holdLast.Assign {
		// Our own hold of the shell lock (ShellHoldDecide): taking it
		// before assigning, or giving shell users their turn.
		g.Assign = false
		if v.holdLast.Why != "" {
			g.Paused = v.holdLast.Why
		}
		return g
	}
	if g.Paused != v.paused {
		if g.Paused != "" {
			v.log.Warn("maintenance paused", "why", g.Paused, "detect", g.Detect, "assign", g.Assign)
		} else {
			v.log.Info("maintenance resumed: the admin lock is ours and the shell lock free", "lock", seaweed.AdminLockName)
		}
		v.paused = g.Paused
	}
	return g
}

// assignTopology is the topology assignments are planned from, and whether
// the master answers with a complete one right now. While it is unreachable
// or refilling, tasks already detected that need no master (vacuum: volume
// servers only) still go out, planned from the last complete topology of
// this term (docs/architecture.md §10.3: workers talk to volume servers
// directly; only detection pauses); a leader that never saw one assigns
// nothing.
func (v *masterView) assignTopology() (*seaweed.Topology, bool) {
	if v.topoOK {
		return v.topo, true
	}
	return v.trusted, false
}

// assignAsked is when the topology assignTopology returns was asked for.
func (v *masterView) assignAsked() time.Time {
	if v.topoOK {
		return v.topoAsked
	}
	return v.trustedAsked
}

// polled records a poll of the topology asked for at asked and answered at
// at: the topology and whether it is trusted (see trust), or why the master
// did not answer. epoch is the master leader epoch the poll was answered in
// (0: unknown).
func (v *masterView) polled(topo *seaweed.Topology, err error, asked, at time.Time, epoch uint64) {
	v.lastPoll = at
	if err != nil {
		if v.topoErr == nil {
			v.log.Warn("master unreachable: detection paused, running tasks continue", "error", err)
		}
		v.topoErr, v.topoOK = err, false
		return
	}
	if v.topoErr != nil {
		v.log.Info("master reachable again")
	}
	v.topoErr = nil
	if epoch != 0 && v.leaderEpoch != 0 && epoch != v.leaderEpoch {
		// A new master leader heard from no volume server yet: its
		// topology refills as they re-register, as after a master restart.
		v.log.Info("SeaweedFS master leader changed: its topology is trusted once it has refilled",
			"servers", len(topo.Servers), "expected", v.refill.Expected())
		v.refill.LeaderChanged()
	}
	if epoch != 0 {
		v.leaderEpoch = epoch
	}
	v.topo, v.topoOK, v.topoAsked = topo, v.trust(topo), asked
	if v.topoOK {
		v.trusted, v.trustedAsked = topo, asked
	}
}

// trust decides whether a topology is complete enough to act on: a drop in
// servers (a master restarting, volume servers re-registering) is trusted
// only once it has held, unchanged, for three polls; an empty one never is.
func (v *masterView) trust(t *seaweed.Topology) bool {
	n, expected := len(t.Servers), v.refill.Expected()
	switch v.refill.Trust(n) {
	case seaweed.Trusted:
		return true
	case seaweed.Smaller:
		v.log.Info("accepting a smaller topology", "servers", n, "was", expected)
		return true
	case seaweed.Waiting:
		v.log.Info("waiting for a stable topology before detecting", "servers", n)
	default:
		if expected > 0 {
			v.log.Info("topology is refilling: detection paused", "servers", n, "expected", expected)
		}
	}
	return false
}

// shellAnswer records the master's answer, at checked (the wall clock) and
// now (the scheduler's clock), to who holds the shell lock. A failed ask
// keeps the last answer.
func (v *masterView) shellAnswer(holder string, held bool, err error, checked, now time.Time) {
	v.shellChecked = checked
	if err != nil {
		if v.shell.Err == nil {
			v.log.Warn("cannot ask the master who holds the shell lock", "error", err)
		}
		v.shell.Err = err
		return
	}
	if held && holder == v.shellClient && v.shellClient != "" {
		// Our own hold (shellhold.go).
		held, holder = false, ""
	}
	if held != v.shell.Held || holder != v.shell.Holder || v.shell.Since.IsZero() {
		if held {
			v.log.Warn("SeaweedFS's shell lock is held: maintenance pauses", "holder", holder)
		} else if v.shell.Held {
			v.log.Info("SeaweedFS's shell lock is free again", "was", v.shell.Holder)
		}
		v.shell = OtherLock{Held: held, Holder: holder, Since: now}
		return
	}
	v.shell.Err = nil
}

// shellStale reports whether the shell lock is worth asking about again at
// now: not if it was asked within the last second, nor while the master
// does not answer (then the last answer stands, and the admin lock's lease
// bounds how long).
func (v *masterView) shellStale(now time.Time) bool {
	return v.topoErr == nil && now.Sub(v.shellChecked) >= time.Second
}

// lockSeen notes the admin lock as last seen: while another process holds
// it, that process decides the master's vacuum (our last switch stays in
// effect until it does).
func (v *masterView) lockSeen(l seaweed.LockState) {
	if l.Status == seaweed.LockOther {
		v.vacuumOff = nil
	}
}

// vacuumSwitched records that we switched the master's own vacuum off (or
// on), reporting whether that changed what we last set.
func (v *masterView) vacuumSwitched(off bool) (changed bool) {
	changed = v.vacuumOff == nil || *v.vacuumOff != off
	v.vacuumOff = &off
	return changed
}

// vacuumIsOff reports whether we last switched the master's vacuum off.
func (v *masterView) vacuumIsOff() bool { return v.vacuumOff != nil && *v.vacuumOff }

// status fills in the master's part of the operators' maintenance view, at
// now.
func (v *masterView) status(st *pb.Maintenance, now time.Time) {
	if !v.lastPoll.IsZero() {
		st.LastPoll = v.lastPoll.UnixNano()
	}
	switch {
	case v.topoErr != nil:
		st.MasterState, st.MasterError = "unreachable", v.topoErr.Error()
	case v.topo == nil:
		st.MasterState = "starting"
	case !v.topoOK:
		st.MasterState = "refilling"
	default:
		st.MasterState = "ok"
	}
	if v.topo != nil {
		st.Servers, st.Volumes = uint32(len(v.topo.Servers)), uint32(len(v.topo.Volumes))
	}
	if v.lock != nil {
		l := v.lock.State()
		st.AdminLockHeld, st.AdminLock, st.AdminLockHolder = l.OursAt(now), l.Status.String(), l.Holder
		if !l.Since.IsZero() {
			st.AdminLockSince = l.Since.UnixNano()
		}
		if l.Err != nil {
			st.AdminLockError = l.Err.Error()
		}
		// Granted by a new master leader and waiting out the old one's
		// leases (LockState.From): ours, not held yet; paused says why.
		if l.Status == seaweed.LockOurs && !st.AdminLockHeld && !now.Before(l.From) {
			st.AdminLock, st.AdminLockError = seaweed.LockUnknown.String(), "no renewal confirmed within the lease"
		}
	}
	if v.shell.Held {
		st.ShellLockHolder = v.shell.Holder
		if st.ShellLockHolder == "" {
			st.ShellLockHolder = "(not named)"
		}
		st.ShellLockSince = v.shell.Since.UnixNano()
	}
	if v.hold != nil && !v.hold.releasing && !v.hold.heldSince.IsZero() && v.hold.lock.State().OursAt(now) {
		st.ShellLockOurs, st.ShellLockOursSince = true, v.hold.heldSince.UnixNano()
	}
	g := v.gate(now)
	if !g.Assign && g.Paused == "" {
		// Only our hold of the shell lock, idle with nothing to assign:
		// it is taken once there is (ShellHoldDecide). Not a pause.
		g.Assign = true
	}
	st.Paused, st.DetectionPaused, st.AssignmentPaused = g.Paused, !g.Detect, !g.Assign
	st.MasterVacuumOff = v.vacuumIsOff()
	switch {
	case v.lock != nil && v.lock.State().Status == seaweed.LockOther:
		st.MasterVacuum, st.MasterVacuumOff = MasterVacuumNotOurs, false
	case v.vacuumOff == nil:
		st.MasterVacuum = MasterVacuumNotSet
	case *v.vacuumOff:
		st.MasterVacuum = MasterVacuumOff
	default:
		st.MasterVacuum = MasterVacuumOn
	}
}
