package scheduler

import (
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// masterView is what the leader knows of the SeaweedFS master this term:
// the topology as last polled and whether it is trusted, the last trusted
// one, the admin lock, SeaweedFS's shell lock as last asked, and the
// master's own vacuum as we set it. It has no lock of its own: the
// Scheduler's mu guards it.
type masterView struct {
	topo    *seaweed.Topology
	topoOK  bool
	topoErr error
	// trusted is the last topology trusted this term (complete); it plans
	// the work that may still go out while the master is unreachable or
	// refilling (see assignTopology).
	trusted *seaweed.Topology
	// refill judges whether a polled topology is complete enough to act on.
	refill    seaweed.RefillGuard
	vacuumOff *bool
	lock      *seaweed.AdminLock
	// shell is SeaweedFS's shell lock as last asked, and when.
	shell        OtherLock
	shellChecked time.Time
	// paused is the last Gate's reason, to log its changes once.
	paused   string
	lastPoll time.Time
}
