package fsm

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestCheckCounters: a snapshot whose counters are sane for its index
// passes; a next task id near 2^64, or an applied index, first test
// command index or fence beyond the snapshot's own index is refused in one
// sentence naming the counter.
func TestCheckCounters(t *testing.T) {
	if err := CheckCounters(validSnapshot(), 40); err != nil {
		t.Fatalf("a valid snapshot at its own index: %v", err)
	}
	for name, tc := range map[string]struct {
		edit  func(*fsmpb.StateSnapshot)
		index uint64
		want  string
	}{
		"next id near 2^64": {func(s *fsmpb.StateSnapshot) { s.NextTaskId = 1<<64 - 1 }, 40, "next task id"},
		"next id past 2^62": {func(s *fsmpb.StateSnapshot) { s.NextTaskId = MaxCounter + 1 }, 40, "next task id"},
		"applied ahead":     {func(*fsmpb.StateSnapshot) {}, 39, "applied up to index 40"},
		"test command":      {func(s *fsmpb.StateSnapshot) { s.TestCommandIndex = 41 }, 40, "test command"},
		"fence ahead":       {func(s *fsmpb.StateSnapshot) { s.AppliedIndex, s.Tasks[1].Fence = 10, 30 }, 20, "fence 30"},
	} {
		snap := validSnapshot()
		tc.edit(snap)
		err := CheckCounters(snap, tc.index)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one sentence mentioning %q", name, err, tc.want)
		}
	}
}
