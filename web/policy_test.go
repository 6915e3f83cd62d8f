package web

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestPolicyView: the overview says whether the windows are open at the
// time asked, in the policy's zone, and lists only the bounds that are
// set; a zone that does not load closes the windows and says why.
func TestPolicyView(t *testing.T) {
	p := &fsmpb.Policy{Revision: 4, TimeZone: "UTC", RepairsIgnoreWindows: true,
		Windows:            []*fsmpb.MaintenanceWindow{{Days: []uint32{1, 2}, StartHour: 22, EndHour: 24}, {StartHour: 2, EndHour: 5}},
		Caps:               &fsmpb.PolicyCaps{Global: 4, PerServer: 1},
		Types:              []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}, {Type: fsmpb.TaskType_TASK_TYPE_VACUUM, MaxConcurrent: 2}},
		ExcludeRacks:       []string{"r1", "r2"},
		IncludeCollections: []string{"logs"},
	}
	monday23 := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	v := policyView(p, monday23)
	if !v.WindowOpen || v.WindowError != "" {
		t.Fatalf("Monday 23:00: open %v (%q); want open", v.WindowOpen, v.WindowError)
	}
	if want := []string{"Mon,Tue 22-24", "every day 02-05"}; !reflect.DeepEqual(v.Windows, want) {
		t.Errorf("windows %q; want %q", v.Windows, want)
	}
	if want := []string{"balance"}; !reflect.DeepEqual(v.Disabled, want) {
		t.Errorf("disabled %q; want %q", v.Disabled, want)
	}
	if want := []string{"global 4", "per server 1", "vacuum 2"}; !reflect.DeepEqual(v.Caps, want) {
		t.Errorf("caps %q; want %q", v.Caps, want)
	}
	if want := []string{"include collections: logs", "exclude racks: r1, r2"}; !reflect.DeepEqual(v.Scope, want) {
		t.Errorf("scope %q; want %q", v.Scope, want)
	}
	if v := policyView(p, monday23.Add(2*time.Hour)); v.WindowOpen {
		t.Errorf("Tuesday 01:00: open; want closed")
	}
	p.TimeZone = "Nowhere/Atlantis"
	if v := policyView(p, monday23); v.WindowOpen || !strings.Contains(v.WindowError, "Nowhere/Atlantis") {
		t.Errorf("unknown zone: open %v, error %q; want closed, naming the zone", v.WindowOpen, v.WindowError)
	}
	if v := policyView(nil, monday23); !v.WindowOpen || v.Windows != nil || v.Caps != nil || v.Disabled != nil || v.Scope != nil {
		t.Errorf("no policy: %+v; want open and nothing listed", v)
	}
}
