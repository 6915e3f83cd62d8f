package fsm

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// checkVolumeChanges: VolumeChanges of every volume is CapacityChanges
// filtered to that volume, in task order.
func checkVolumeChanges(t *testing.T, s *State, at string) {
	t.Helper()
	want := map[uint32][]*fsmpb.CapacityChange{}
	for _, c := range s.CapacityChanges() {
		want[c.VolumeId] = append(want[c.VolumeId], c)
	}
	vols := map[uint32]bool{}
	for v := range want {
		vols[v] = true
	}
	for v := range s.volumeChanges {
		vols[v] = true
	}
	for v := range vols {
		got := s.VolumeChanges(v)
		if len(got) != len(want[v]) {
			t.Fatalf("%s: volume %d has %d changes, want %d", at, v, len(got), len(want[v]))
		}
		for i := range got {
			if !proto.Equal(got[i], want[v][i]) {
				t.Fatalf("%s: volume %d change %d = %v, want %v", at, v, i, got[i], want[v][i])
			}
		}
		if s.HasUnreportedChange(v) != (len(want[v]) > 0) {
			t.Fatalf("%s: volume %d: HasUnreportedChange disagrees", at, v)
		}
	}
}

// TestVolumeChangesIndex: over random command logs (completions with
// changes, retirements, snapshots), the per-volume index of capacity
// changes equals the straightforward filter of all of them.
func TestVolumeChangesIndex(t *testing.T) {
	most := 0
	for seed := uint64(1); seed <= 40; seed++ {
		log := decodeAll(t, randomLog(t, seed, propSteps))
		s := NewState()
		for i, cmd := range log {
			s.Apply(uint64(i+1), cmd)
			checkVolumeChanges(t, s, "after apply")
			most = max(most, len(s.changes))
			if i%50 == 49 {
				r, err := FromSnapshot(s.Snapshot())
				if err != nil {
					t.Fatal(err)
				}
				checkVolumeChanges(t, r, "after restore")
			}
		}
	}
	if most < 2 {
		t.Fatalf("the random logs held at most %d changes at once: nothing was tested", most)
	}
	t.Logf("up to %d unretired changes at once", most)
}
