package placement

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestDiskTypes: "" and "hdd" are one type, whichever way the master
// spells it on the disk or the volume; other names are their own type.
func TestDiskTypes(t *testing.T) {
	s := &seaweed.Server{ID: "s", Disks: map[string]*seaweed.Disk{
		"":     {Type: "", MaxVolumes: 10, VolumeCount: 5, FreeSlots: 5},
		"SSD":  {Type: "SSD", MaxVolumes: 4, VolumeCount: 4, FreeSlots: 0},
		"nvme": {Type: "nvme", MaxVolumes: 8, VolumeCount: 2, FreeSlots: 6},
	}}
	for _, tc := range []struct {
		typ   string
		name  string
		free  int64
		usage float64
	}{
		{"", "hdd", 5, 0.5},
		{"hdd", "hdd", 5, 0.5},
		{"HDD", "hdd", 5, 0.5},
		{"ssd", "ssd", 0, 1},
		{"nvme", "nvme", 6, 0.25},
		{"tape", "tape", 0, 1},
	} {
		if got := DiskTypeName(tc.typ); got != tc.name {
			t.Errorf("DiskTypeName(%q) = %q, want %q", tc.typ, got, tc.name)
		}
		if got := FreeSlotsOf(s, tc.typ); got != tc.free {
			t.Errorf("FreeSlotsOf(%q) = %d, want %d", tc.typ, got, tc.free)
		}
		if got := DiskUsage(s, tc.typ); got != tc.usage {
			t.Errorf("DiskUsage(%q) = %v, want %v", tc.typ, got, tc.usage)
		}
	}
	if Disk(s, "tape") != nil {
		t.Error("a disk of a type the server lacks")
	}
	hddOnly := &seaweed.Server{ID: "h", Disks: map[string]*seaweed.Disk{"hdd": {Type: "hdd", MaxVolumes: 2, FreeSlots: 2}}}
	if FreeSlotsOf(hddOnly, "") != 2 {
		t.Error(`a disk reported as "hdd" is not the default type`)
	}
}
