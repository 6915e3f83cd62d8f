package capacity

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestFreshRetired: retired changes older than fsm.RetiredKeep no longer
// count, even before a later retirement makes the state forget them.
func TestFreshRetired(t *testing.T) {
	now := time.Unix(10_000, 0)
	old := &fsmpb.CapacityChange{TaskId: 1, RetiredAt: now.UnixNano() - fsm.RetiredKeep - 1}
	edge := &fsmpb.CapacityChange{TaskId: 2, RetiredAt: now.UnixNano() - fsm.RetiredKeep}
	recent := &fsmpb.CapacityChange{TaskId: 3, RetiredAt: now.UnixNano() - 1}
	in := []*fsmpb.CapacityChange{old, edge, recent}
	got := freshRetired(in, now)
	if len(got) != 2 || got[0] != edge || got[1] != recent {
		t.Fatalf("fresh: %v", got)
	}
	if in[0] != old || in[1] != edge || in[2] != recent {
		t.Fatal("freshRetired changed its input")
	}
}

// TestProjectOneVolumeAllocs pins the cost of the oracle's commonest call,
// a one-volume lookup: the answer's slice and its one VolumeCapacity, and
// nothing else. The caller's volume slice must stay on its stack: a Query
// whose topology (or anything else in it) a projection keeps on the heap
// makes the whole Query leak, and the volumes with it (escape analysis does
// not tell a struct's fields apart).
func TestProjectOneVolumeAllocs(t *testing.T) {
	topo := topotest.Build(30, topotest.Srv(topotest.SID(1), 8, topotest.V(1, 100*mib)), topotest.Srv(topotest.SID(2), 8), topotest.Srv(topotest.SID(3), 8), topotest.Srv(topotest.SID(4), 8))
	f := fsm.New()
	now := func() time.Time { return time.Unix(10_000, 0) }
	vol := topo.Volumes[1]
	allocs := testing.AllocsPerRun(100, func() {
		p := Project(f, Query{Topology: topo, Volumes: []*seaweed.Volume{vol}, Now: now})
		if len(p.Volumes) != 1 || p.Volumes[0].ProjectedSize != 100*mib {
			t.Fatalf("projection %v", p.Volumes)
		}
	})
	if allocs > 2 {
		t.Errorf("a one-volume projection makes %v allocations, want 2 (the answer's slice and its VolumeCapacity)", allocs)
	}
}
