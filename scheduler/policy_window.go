package scheduler

import (
	"fmt"
	"slices"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Maintenance windows (fsmpb.Policy.windows): outside every window no
// routine work starts (no detection proposals, no assignments); attempts
// already assigned or running finish. Repairs start outside windows too
// when the policy says so (repairs_ignore_windows). The decision is a pure
// function of the policy and the time the caller gives.

// WindowOpen reports whether policy p's maintenance windows are open at
// now (always, when it has none). A time zone that does not load (the
// admin checks it before proposing, but another node's build may lack it)
// closes every window: the error says why.
func WindowOpen(p *fsmpb.Policy, now time.Time) (bool, error) {
	if len(p.GetWindows()) == 0 {
		return true, nil
	}
	loc := time.UTC
	if z := p.GetTimeZone(); z != "" {
		l, err := time.LoadLocation(z)
		if err != nil {
			return false, fmt.Errorf("maintenance windows closed: time zone %q does not load: %w", z, err)
		}
		loc = l
	}
	local := now.In(loc)
	day, hour := uint32(local.Weekday()), uint32(local.Hour())
	for _, w := range p.GetWindows() {
		if (len(w.Days) == 0 || slices.Contains(w.Days, day)) && hour >= w.StartHour && hour < w.EndHour {
			return true, nil
		}
	}
	return false, nil
}

// mayStart reports whether work of type t may start under policy p with
// the windows open or not: routine work only in a window, repairs also
// outside when the policy lets them.
func mayStart(p *fsmpb.Policy, t fsmpb.TaskType, windowOpen bool) bool {
	return windowOpen || (fsm.RepairType(t) && p.GetRepairsIgnoreWindows())
}
