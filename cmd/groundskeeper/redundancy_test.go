package main

import (
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestRedundancyLine: `ctl status` counts the volumes at reduced
// redundancy, loudly, and says which no repair can restore.
func TestRedundancyLine(t *testing.T) {
	if got := redundancyLine(&pb.Maintenance{}); got != "reduced redundancy: none" {
		t.Fatalf("whole cluster: %q", got)
	}
	got := redundancyLine(&pb.Maintenance{VolumesUnderreplicated: 3, EcVolumesMissingShards: 1, VolumesUnrepairable: 1, OldestLoss: time.Now().UnixNano()})
	for _, want := range []string{"REDUCED REDUNDANCY: 4 volumes", "3 short of copies", "1 EC volumes short of shards", "1 NOT REPAIRABLE", "oldest seen"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
