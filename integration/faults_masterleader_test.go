package integration

import (
	"strings"
	"time"
)

// fkMasterLeaderKill: the SeaweedFS master leader, one of three, dies (its
// endpoint closes). The other two elect a new leader after the sim's
// election delay; the new leader holds none of the old one's admin locks
// and hears from the volume servers again over MasterRefillDelay. The
// admins, given every master, must find the new leader and take their lock
// there. The dead master comes back later as a follower.
const fkMasterLeaderKill faultKind = "master-leader-kill"

// faultMasters is how many masters the simulated SeaweedFS runs, and
// faultMasterElection how long they are leaderless after the leader dies.
const (
	faultMasters        = 3
	faultMasterElection = 700 * time.Millisecond
)

func init() {
	registerFault(fkMasterLeaderKill, 8, (*faultRun).killMasterLeader)
}

func (r *faultRun) killMasterLeader() {
	i := r.sim.MasterLeader()
	if i < 0 {
		r.note("%s: no master leads (an election is under way); nothing to kill", fkMasterLeaderKill)
		return
	}
	d := r.hold(faultMasterElection, 4*time.Second)
	r.note("%s: kill SeaweedFS master %d (the leader) for %s", fkMasterLeaderKill, i, d)
	if err := r.sim.KillMaster(i); err != nil {
		r.fail("kill simulated master %d: %v", i, err)
		return
	}
	time.Sleep(d) // the fault's duration
	if err := r.sim.ReviveMaster(i); err != nil {
		r.fail("revive simulated master %d: %v", i, err)
		return
	}
	r.note("%s: master %d back as a follower; master %d leads", fkMasterLeaderKill, i, r.sim.MasterLeader())
}

// masterList is every simulated master as --master takes them.
func (r *faultRun) masterList() string {
	var out []string
	for _, a := range r.sim.MasterServerAddresses() {
		out = append(out, a.String())
	}
	return strings.Join(out, ",")
}
