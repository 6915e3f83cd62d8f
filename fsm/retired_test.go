package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestRetiredChangesRemembered: a retired change stays readable as recently
// retired, through a snapshot, until a retirement RetiredKeep later.
func TestRetiredChangesRemembered(t *testing.T) {
	h := newHarness(t)
	complete := func(vol uint32) uint64 {
		id := h.ok(submitCmd(fsmpb.TaskType_TASK_TYPE_VACUUM, vol)).Id
		fence := h.ok(assignCmd(id, "w1")).Fence
		h.ok(startCmd(id, fence))
		h.ok(completeCmd(id, fence, &fsmpb.CapacityChange{TaskId: id, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vol, OldSize: 100, NewSize: 40}))
		return id
	}
	a, b := complete(1), complete(2)
	h.ok(retireCmd(a))
	retiredAt := h.now
	got := h.s.RecentlyRetired(1)
	if len(got) != 1 || got[0].TaskId != a || got[0].RetiredAt != retiredAt || got[0].NewSize != 40 {
		t.Fatalf("recently retired on volume 1: %v", got)
	}
	if !h.s.HasRetiredChange(1) || h.s.HasRetiredChange(2) || len(h.s.RecentlyRetired(2)) != 0 || !h.s.HasUnreportedChange(2) {
		t.Fatal("volume 2's change is not retired yet")
	}

	restored, err := FromSnapshot(h.s.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if restored.Hash() != h.s.Hash() || len(restored.RecentlyRetired(1)) != 1 {
		t.Fatal("the snapshot lost the retired change")
	}

	// Just inside the window it is kept; a retirement past it forgets it.
	h.now = retiredAt + RetiredKeep - 1000
	h.ok(retireCmd(b))
	if len(h.s.RecentlyRetired(1)) != 1 {
		t.Fatal("forgot a change retired less than RetiredKeep ago")
	}
	h.now = retiredAt + RetiredKeep
	h.ok(retireCmd(999))
	if r := h.s.RecentlyRetired(1); len(r) != 0 || h.s.HasRetiredChange(1) {
		t.Fatalf("still remembers %v after RetiredKeep", r)
	}
	if len(h.s.RecentlyRetired(2)) != 1 {
		t.Fatal("forgot the later retirement too")
	}
}
