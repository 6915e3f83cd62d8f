package capacity

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestFreshRetired: retired changes older than fsm.RetiredKeep no longer
// count, even before a later retirement makes the state forget them.
func TestFreshRetired(t *testing.T) {
	now := time.Unix(10_000, 0)
	old := &pb.CapacityChange{TaskId: 1, RetiredAt: now.UnixNano() - fsm.RetiredKeep - 1}
	edge := &pb.CapacityChange{TaskId: 2, RetiredAt: now.UnixNano() - fsm.RetiredKeep}
	recent := &pb.CapacityChange{TaskId: 3, RetiredAt: now.UnixNano() - 1}
	in := []*pb.CapacityChange{old, edge, recent}
	got := freshRetired(in, now)
	if len(got) != 2 || got[0] != edge || got[1] != recent {
		t.Fatalf("fresh: %v", got)
	}
	if in[0] != old || in[1] != edge || in[2] != recent {
		t.Fatal("freshRetired changed its input")
	}
}
