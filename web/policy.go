package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
)

// PolicyView is the maintenance policy as the overview shows it: whether
// maintenance may start work now (paused, the windows) and what bounds it
// (disabled types, caps, exclusions), in words.
type PolicyView struct {
	Revision    uint64 `json:"revision"`
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason,omitempty"`
	// Windows, one "Mon,Tue 22-24" each, read in Zone; none: always open.
	Windows []string `json:"windows,omitempty"`
	Zone    string   `json:"time_zone,omitempty"`
	// WindowOpen: routine work may start now (the windows allow it);
	// WindowError says why the windows count as closed (a zone that does
	// not load).
	WindowOpen           bool   `json:"window_open"`
	WindowError          string `json:"window_error,omitempty"`
	RepairsIgnoreWindows bool   `json:"repairs_ignore_windows"`
	// Disabled task types; Caps, "global 4", "per server 1", "vacuum 2":
	// only those set.
	Disabled []string `json:"disabled_types,omitempty"`
	Caps     []string `json:"caps,omitempty"`
	// Scope: collection and location lists, "exclude racks: r1, r2", only
	// those set.
	Scope []string `json:"scope,omitempty"`
}

// policyView reads p at now.
func policyView(p *fsmpb.Policy, now time.Time) PolicyView {
	v := PolicyView{Revision: p.GetRevision(), Paused: p.GetPaused(), PauseReason: p.GetPauseReason(),
		Zone: p.GetTimeZone(), RepairsIgnoreWindows: p.GetRepairsIgnoreWindows()}
	if v.Zone == "" {
		v.Zone = "UTC"
	}
	for _, w := range p.GetWindows() {
		days := "every day"
		if len(w.GetDays()) > 0 {
			names := make([]string, len(w.GetDays()))
			for i, d := range w.GetDays() {
				names[i] = time.Weekday(d % 7).String()[:3]
			}
			days = strings.Join(names, ",")
		}
		v.Windows = append(v.Windows, fmt.Sprintf("%s %02d-%02d", days, w.GetStartHour(), w.GetEndHour()))
	}
	open, err := scheduler.WindowOpen(p, now)
	v.WindowOpen = open
	if err != nil {
		v.WindowError = err.Error()
	}
	for _, t := range fsm.TaskTypes {
		if !fsm.TypeEnabled(p, t) {
			v.Disabled = append(v.Disabled, fsm.TypeName(t))
		}
	}
	if c := p.GetCaps(); c != nil {
		for _, x := range []struct {
			name string
			n    uint32
		}{{"global", c.GetGlobal()}, {"per server", c.GetPerServer()}, {"per collection", c.GetPerCollection()}} {
			if x.n > 0 {
				v.Caps = append(v.Caps, fmt.Sprintf("%s %d", x.name, x.n))
			}
		}
	}
	for _, t := range fsm.TaskTypes {
		if n := fsm.TypeCap(p, t); n > 0 {
			v.Caps = append(v.Caps, fmt.Sprintf("%s %d", fsm.TypeName(t), n))
		}
	}
	for _, l := range []struct {
		name  string
		names []string
	}{{"include collections", p.GetIncludeCollections()}, {"exclude collections", p.GetExcludeCollections()},
		{"exclude data centres", p.GetExcludeDataCenters()}, {"exclude racks", p.GetExcludeRacks()}, {"exclude servers", p.GetExcludeServers()}} {
		if len(l.names) > 0 {
			v.Scope = append(v.Scope, l.name+": "+strings.Join(l.names, ", "))
		}
	}
	return v
}
