package scheduler

import (
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Concurrency caps (fsmpb.PolicyCaps, TaskTypePolicy.max_concurrent): the
// attempts assigned or running at once, globally, per type, per
// collection and on each volume server an attempt touches (its volume's
// replicas and the servers its plan writes to). The scheduler admits a new
// attempt only if it keeps every cap; a cap lowered below what runs
// admits nothing more until enough attempts end. Pure: usage is built from
// the state's active tasks and the caller's topology view.

// CapWork is one attempt as the caps see it.
type CapWork struct {
	Type       fsmpb.TaskType
	Collection string
	// Servers it touches (server ids, each once).
	Servers []string
}

// CapUsage counts the attempts in flight.
type CapUsage struct {
	Total        int
	ByType       map[fsmpb.TaskType]int
	ByCollection map[string]int
	ByServer     map[string]int
}

// NewCapUsage counts work in flight.
func NewCapUsage(active []CapWork) *CapUsage {
	u := &CapUsage{ByType: map[fsmpb.TaskType]int{}, ByCollection: map[string]int{}, ByServer: map[string]int{}}
	for _, w := range active {
		u.Add(w)
	}
	return u
}

// Add counts one more attempt.
func (u *CapUsage) Add(w CapWork) {
	u.Total++
	u.ByType[w.Type]++
	u.ByCollection[w.Collection]++
	for _, s := range dedup(w.Servers) {
		u.ByServer[s]++
	}
}

// Admits returns "" if one more attempt w keeps every cap of policy p,
// else which cap it would exceed.
func (u *CapUsage) Admits(p *fsmpb.Policy, w CapWork) string {
	c := p.GetCaps()
	if over(u.Total, c.GetGlobal()) {
		return "the global cap"
	}
	if over(u.ByType[w.Type], fsm.TypeCap(p, w.Type)) {
		return "the " + fsm.TypeName(w.Type) + " cap"
	}
	if over(u.ByCollection[w.Collection], c.GetPerCollection()) {
		return "the per-collection cap"
	}
	for _, s := range dedup(w.Servers) {
		if over(u.ByServer[s], c.GetPerServer()) {
			return "the per-server cap on " + s
		}
	}
	return ""
}

// TypeAdmits reports whether caps that do not depend on an attempt's plan
// (global, type, collection) leave room for one more of w, so that a task
// that cannot run is not planned.
func (u *CapUsage) TypeAdmits(p *fsmpb.Policy, w CapWork) bool {
	w.Servers = nil
	return u.Admits(p, w) == ""
}

// over reports whether one more than n exceeds cap (0: no cap).
func over(n int, cap uint32) bool { return cap > 0 && n+1 > int(cap) }

// AdmitByCaps returns the candidates, in order, that policy p's caps admit
// on top of the active attempts, each admitted one counting for the next.
func AdmitByCaps(p *fsmpb.Policy, active, candidates []CapWork) []CapWork {
	u := NewCapUsage(active)
	var out []CapWork
	for _, w := range candidates {
		if u.Admits(p, w) == "" {
			u.Add(w)
			out = append(out, w)
		}
	}
	return out
}

func dedup(s []string) []string {
	if len(s) < 2 {
		return s
	}
	seen := make(map[string]bool, len(s))
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
