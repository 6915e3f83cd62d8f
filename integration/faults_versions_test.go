package integration

// The "rolling-upgrade" fault of TestRandomizedFaults: the admins are
// restarted one at a time (followers first, the leader last, SIGTERM and
// start with the same flags, as an operator upgrades) into a build that
// knows one more command version: the same binary with the test-only
// GROUNDSKEEPER_TEST_COMMAND_VERSION=7 (this build's real version is 6,
// fsm.CurrentVersion). Checked all along the way: the test-only version-7
// command is never committed while any member still advertises a lower
// version (and no admin stops at a command it does not know); after the
// third admin advertises version 7 the command is committed and applied by
// all three. The run's final checks then require the three state hashes to
// agree. Drawn like any fault; if not drawn by the middle round, that round
// does it. Later draws restart the admins one at a time into the same
// (already upgraded) build and check that none stops.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	fkRollingUpgrade faultKind = "rolling-upgrade"
	// testVersionEnv is the admins' test-only switch to command version 7
	// (fsm.TestCommandVersion), one above this build's.
	testVersionEnv = "GROUNDSKEEPER_TEST_COMMAND_VERSION=7"
	testVersion    = fsm.TestCommandVersion
	// haltSentence is what an admin that stopped at an unknown command says.
	haltSentence = "upgrade this node's binary"
)

// upgradeDue makes sure a run of at least two rounds upgrades once: the
// middle round does it if no earlier round drew it.
func (r *faultRun) upgradeDue(kind faultKind, rounds int) faultKind {
	if rounds >= 2 && r.round == (rounds+1)/2 && r.roundsByKind[fkRollingUpgrade] == 0 {
		return fkRollingUpgrade
	}
	return kind
}

func (r *faultRun) upgraded(a *faultAdmin) bool {
	for _, e := range a.Env {
		if e == testVersionEnv {
			return true
		}
	}
	return false
}

// rollingUpgrade restarts every admin, one at a time, into the build that
// knows command version 7, watching the version gate all the while.
func (r *faultRun) rollingUpgrade() {
	leader := r.waitLeaderFor(faultLeaderWait)
	if leader == nil {
		r.fail("no leader to start a rolling upgrade from")
	}
	order := append(r.followers(leader), leader)
	r.note("%s: restart %s, %s, %s one at a time into command version 7", fkRollingUpgrade, order[0].ID, order[1].ID, order[2].ID)

	// Once an earlier upgrade committed the command, a state holding it
	// beside a member not (yet) advertised is no violation: a voter
	// removed and added back (admin-wiped) has no advertised version from
	// its re-addition until it publishes one, and a restarted node serves
	// its last snapshot, which may fall in that window, until it catches
	// up. Only the first commit is gated.
	committed := r.testCommandCommitted()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var violation string
	wg.Add(1)
	go func() {
		defer wg.Done()
		violation = r.watchVersionGate(ctx, !committed)
	}()
	stopWatch := func() {
		cancel()
		wg.Wait()
		if violation != "" {
			r.fail("version gate: %s", violation)
		}
	}

	for _, a := range order {
		a.term(r.t)
		if !r.upgraded(a) {
			a.Env = append(a.Env, testVersionEnv)
		}
		a.startArgs(r.t, a.argv...)
		a.restarted++
		// Up again, caught up and advertising version 7 before the next.
		deadline := time.Now().Add(faultLeaderWait)
		for !r.advertisesTestVersion(a) {
			if time.Now().After(deadline) {
				stopWatch()
				r.fail("%s did not come back advertising command version 7 within %s", a.ID, faultLeaderWait)
			}
			if !a.running() {
				stopWatch()
				r.fail("admin %s exited after its upgrade: %v\n%s", a.ID, a.exitState(), a.logTail(10))
			}
			time.Sleep(pollEvery)
		}
		r.note("%s: %s runs command version 7", fkRollingUpgrade, a.ID)
	}
	// Every voter advertises version 7 now: the leader writes the command.
	deadline := time.Now().Add(faultLeaderWait)
	for {
		all := true
		for _, a := range r.admins {
			st := r.status(a, time.Second)
			all = all && st != nil && st.TestCommandIndex != 0
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			stopWatch()
			r.fail("the test-only version-7 command was not applied by all three admins within %s of the upgrade", faultLeaderWait)
		}
		time.Sleep(pollEvery)
	}
	stopWatch()
	if st := r.status(r.admins[0], time.Second); st != nil {
		r.note("%s: version-7 command at index %d, cluster command version %d", fkRollingUpgrade, st.TestCommandIndex, st.CommandVersion)
	}
}

// advertisesTestVersion reports whether a answers, a leader is known, and the
// state a serves shows a at command version 7.
func (r *faultRun) advertisesTestVersion(a *faultAdmin) bool {
	st := r.status(a, time.Second)
	if st == nil || st.LeaderId == "" {
		return false
	}
	for _, m := range st.Members {
		if m.Id == a.ID {
			return m.MaxCommandVersion >= testVersion && m.State != "unreachable"
		}
	}
	return false
}

// testCommandCommitted reports whether an admin's state already holds the
// version-7 command (an earlier upgrade committed it).
func (r *faultRun) testCommandCommitted() bool {
	for _, a := range r.admins {
		if st := r.status(a, time.Second); st != nil && st.TestCommandIndex != 0 {
			return true
		}
	}
	return false
}

// watchVersionGate polls every admin until ctx ends and returns the first
// violation seen: an admin that stopped at a command it does not know, or
// (gate) a state holding the version-7 command while a member is
// advertised at a lower version.
func (r *faultRun) watchVersionGate(ctx context.Context, gate bool) string {
	for {
		for _, a := range r.admins {
			if strings.Contains(a.logTail(40), haltSentence) {
				return a.ID + " stopped at a command it does not know:\n" + a.logTail(5)
			}
			if !gate {
				continue
			}
			st := r.status(a, time.Second)
			if st == nil || st.TestCommandIndex == 0 {
				continue
			}
			for _, m := range st.Members {
				if m.MaxCommandVersion < testVersion {
					return describeVersions(a.ID, st)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(pollEvery):
		}
	}
}

func describeVersions(from string, st *pb.StatusResponse) string {
	var vs []string
	for _, m := range st.Members {
		vs = append(vs, fmt.Sprintf("%s=v%d", m.Id, m.MaxCommandVersion))
	}
	return fmt.Sprintf("%s's state holds the version-7 command (index %d) while members advertise %s", from, st.TestCommandIndex, strings.Join(vs, " "))
}
