package integration

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// fkAdminWiped: a follower admin's disk is replaced. It is killed, its data
// dir deleted and it is restarted with its usual command line; it must
// refuse to start (a peer still counts it as a voter) with the recovery in
// one sentence. Then the harness does that recovery: `ctl peers remove`,
// start it empty, `ctl peers add`, and waits until it has caught up.
const fkAdminWiped faultKind = "admin-wiped"

// faultRecoverWait bounds each step of the recovery.
const faultRecoverWait = 45 * time.Second

func (r *faultRun) wipeFollower(leader *faultAdmin) {
	fs := r.followers(leader)
	victim := fs[r.rng.IntN(len(fs))]
	r.note("%s: kill -9 %s, delete its data dir, restart it with the same command line", fkAdminWiped, victim.ID)
	victim.kill9(r.t)
	if err := os.RemoveAll(victim.DataDir); err != nil {
		r.fail("wipe %s: %v", victim.ID, err)
	}
	victim.startArgs(r.t, victim.argv...)
	st, last, missing := victim.wipedRefusal(r.t, "still counts node "+victim.ID)
	if st == nil || st.ExitCode() == 0 {
		r.fail("wiped %s exited with %v, want a refusal with a non-zero exit", victim.ID, st)
	}
	for _, want := range missing {
		r.fail("wiped %s's refusal does not say %q: %q", victim.ID, want, last)
	}
	r.note("%s: %s refused: %s", fkAdminWiped, victim.ID, last)

	// The recovery the sentence names.
	// A removal cut short by a leader change may have been committed all
	// the same: on a retry, "not a member" means it was.
	r.ctlUntil("is not a member of the cluster", "peers", "remove", victim.ID)
	victim.startArgs(r.t, victim.argv...)
	// Add it only once it waits (its API answers once raft runs): added
	// while it still asks its peers, it would find itself listed by a peer
	// that cannot vouch for it, and rightly refuse again.
	deadline := time.Now().Add(faultRecoverWait)
	for r.status(victim, time.Second) == nil {
		if !victim.running() {
			r.fail("%s exited after peers remove instead of waiting to be added: %v\n%s", victim.ID, victim.exitState(), victim.logTail(5))
		}
		if time.Now().After(deadline) {
			r.fail("%s did not start waiting within %s after peers remove", victim.ID, faultRecoverWait)
		}
		time.Sleep(pollEvery)
	}
	r.ctlUntil("", "peers", "add", victim.ID, victim.RaftAddr)
	victim.restarted++
	deadline = time.Now().Add(faultRecoverWait)
	for {
		ok, why := r.caughtUp(victim)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			r.fail("%s did not catch up within %s after peers add: %s", victim.ID, faultRecoverWait, why)
		}
		time.Sleep(pollEvery)
	}
	r.note("%s: %s removed, restarted empty, added back and caught up", fkAdminWiped, victim.ID)
}

// ctlUntil runs a ctl command against the current leader until it
// succeeds, or, once an attempt has failed, until one fails saying
// doneOnRetry (when not ""): an attempt whose outcome its caller could not
// learn (the leader changed while committing it) may have taken effect.
func (r *faultRun) ctlUntil(doneOnRetry string, args ...string) {
	deadline := time.Now().Add(faultRecoverWait)
	failed := false
	for {
		l := r.leader()
		if l != nil {
			res := ctl(r.t, l.GRPCAddr, args...)
			if res.Code == 0 || (failed && doneOnRetry != "" && strings.Contains(res.Stderr, doneOnRetry)) {
				return
			}
			failed = true
			if time.Now().After(deadline) {
				r.fail("ctl %s: %s", strings.Join(args, " "), res)
			}
		} else if time.Now().After(deadline) {
			r.fail("ctl %s: no leader within %s", strings.Join(args, " "), faultRecoverWait)
		}
		time.Sleep(pollEvery)
	}
}

// caughtUp: a is a follower of the leader in a three-member configuration
// and has applied what the leader had applied when asked.
func (r *faultRun) caughtUp(a *faultAdmin) (bool, string) {
	l := r.leader()
	if l == nil {
		return false, "no leader"
	}
	ls := r.status(l, time.Second)
	as := r.status(a, time.Second)
	if ls == nil || as == nil {
		return false, "no status"
	}
	if len(ls.Members) != len(r.admins) || as.LeaderId != l.ID {
		return false, fmt.Sprintf("leader %s lists %d members, %s follows %q", l.ID, len(ls.Members), a.ID, as.LeaderId)
	}
	if as.AppliedIndex < ls.AppliedIndex {
		return false, fmt.Sprintf("%s applied %d, leader %d", a.ID, as.AppliedIndex, ls.AppliedIndex)
	}
	return true, ""
}
