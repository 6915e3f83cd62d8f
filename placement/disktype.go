package placement

import (
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Disk types, as SeaweedFS names them (weed/storage/types.ToDiskType): ""
// and "hdd" are the hard-drive type, "ssd" and any other name its own type;
// names are compared ignoring case.

// DiskTypeKey is the disk type t as plans compare it: "" for the
// hard-drive type, else its lower-case name.
func DiskTypeKey(t string) string {
	t = strings.ToLower(t)
	if t == "hdd" {
		return ""
	}
	return t
}

// DiskTypeName is the disk type t for operators ("hdd" for the hard-drive
// type).
func DiskTypeName(t string) string {
	if k := DiskTypeKey(t); k != "" {
		return k
	}
	return "hdd"
}

// Disk is the server's disk of type t, nil if it has none.
func Disk(s *seaweed.Server, t string) *seaweed.Disk {
	k := DiskTypeKey(t)
	if d, ok := s.Disks[k]; ok {
		return d
	}
	for name, d := range s.Disks {
		if DiskTypeKey(name) == k {
			return d
		}
	}
	return nil
}

// FreeSlotsOf is the server's free volume slots on its disk of type t, as
// the master reports them (0 if it has none of that type).
func FreeSlotsOf(s *seaweed.Server, t string) int64 {
	if d := Disk(s, t); d != nil {
		return d.FreeSlots
	}
	return 0
}

// DiskUsage is the share of used volume slots on the server's disk of type
// t (1 if it has none of that type).
func DiskUsage(s *seaweed.Server, t string) float64 {
	d := Disk(s, t)
	if d == nil || d.MaxVolumes == 0 {
		return 1
	}
	return float64(d.VolumeCount) / float64(d.MaxVolumes)
}
