package scheduler

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestWindowOpen: a window is read in the policy's zone, on its days, from
// its start hour up to (not including) its end hour; no window means
// always open; a zone that does not load closes every window.
func TestWindowOpen(t *testing.T) {
	// Saturday 2026-12-05 01:30 UTC is Saturday 02:30 in Paris (UTC+1).
	sat := time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC)
	night := []*fsmpb.MaintenanceWindow{{Days: []uint32{6}, StartHour: 2, EndHour: 5}}
	for _, tc := range []struct {
		name string
		p    *fsmpb.Policy
		at   time.Time
		want bool
		err  bool
	}{
		{"no windows", &fsmpb.Policy{}, sat, true, false},
		{"UTC before start", &fsmpb.Policy{Windows: night}, sat, false, false},
		{"Paris inside", &fsmpb.Policy{Windows: night, TimeZone: "Europe/Paris"}, sat, true, false},
		{"Paris end hour excluded", &fsmpb.Policy{Windows: night, TimeZone: "Europe/Paris"}, sat.Add(3 * time.Hour), false, false},
		{"other day", &fsmpb.Policy{Windows: night, TimeZone: "Europe/Paris"}, sat.Add(24 * time.Hour), false, false},
		{"every day", &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{StartHour: 0, EndHour: 24}}}, sat, true, false},
		{"second window", &fsmpb.Policy{Windows: append([]*fsmpb.MaintenanceWindow{{Days: []uint32{1}, EndHour: 24}}, night...), TimeZone: "Europe/Paris"}, sat, true, false},
		{"bad zone", &fsmpb.Policy{Windows: night, TimeZone: "Nowhere/Atlantis"}, sat, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WindowOpen(tc.p, tc.at)
			if got != tc.want || (err != nil) != tc.err {
				t.Fatalf("WindowOpen = %v, %v; want %v (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestWindowedPending: outside a window only repairs start, and only when
// the policy lets them ignore windows.
func TestWindowedPending(t *testing.T) {
	tasks := []*fsmpb.Task{{Id: 1, Type: capVacuum}, {Id: 2, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE}}
	p := &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{EndHour: 1}}}
	if got := WindowedPending(tasks, p, true); len(got) != 2 {
		t.Fatalf("open: %v", got)
	}
	if got := WindowedPending(tasks, p, false); len(got) != 0 {
		t.Fatalf("closed: %v", got)
	}
	p.RepairsIgnoreWindows = true
	if got := WindowedPending(tasks, p, false); len(got) != 1 || got[0].Id != 2 {
		t.Fatalf("closed, repairs ignore windows: %v", got)
	}
}
