package placement

import "github.com/groundskeeper-dev/groundskeeper/seaweed"

// ShardDisk is the disk a copy of EC shards of disk type t to server s,
// which holds none of the volume's shards yet, names
// (VolumeEcShardsCopyRequest.disk_id; 0: none), and whether s can take
// such a copy on a disk of that type at all.
//
// SeaweedFS places a copy that names no disk on the disk that already
// holds the volume's shards or index, else on any hdd disk, else on any
// disk, and checks its room; a named disk gets neither check. So a disk is
// named only where the server's own choice would be of the wrong type: a
// type other than hdd on a server that also has disks of another type.
// There the freest disk of the type with a free slot is named; location 0
// cannot be (0 means "not given"), and a server whose only such disks are
// location 0 or full cannot take the copy. A server with no disk of type t
// cannot either; a master that lists no physical disks (an older
// SeaweedFS) leaves the choice to the server, as before (0, true).
//
// A server that already holds shards of the volume needs no disk id: the
// server's own choice is the disk beside them (fillShardDisks in the
// scheduler).
func ShardDisk(s *seaweed.Server, t string) (uint32, bool) {
	d := Disk(s, t)
	if d == nil {
		return 0, false
	}
	if len(d.Physical) == 0 || DiskTypeKey(t) == "" || diskTypes(s) == 1 {
		return 0, true
	}
	best, found := seaweed.PhysicalDisk{}, false
	for _, p := range d.Physical {
		if p.ID == 0 || physicalFree(p) <= 0 {
			continue
		}
		if f, b := physicalFree(p), physicalFree(best); !found || f > b || f == b && p.ID < best.ID {
			best, found = p, true
		}
	}
	return best.ID, found
}

// diskTypes is how many distinct disk types s has (a master could list
// one type under two spellings).
func diskTypes(s *seaweed.Server) int {
	seen := map[string]bool{}
	for name := range s.Disks {
		seen[DiskTypeKey(name)] = true
	}
	return len(seen)
}

// physicalFree is a physical disk's free volume slots, EC shards charged
// one slot per DataShards (rounded up), as SeaweedFS counts them.
func physicalFree(p seaweed.PhysicalDisk) int64 {
	return p.MaxVolumes - p.Volumes - int64((p.EcShards+DataShards-1)/DataShards)
}

// HoldsShards reports whether server id mounts any shard of e, whole or
// truncated.
func HoldsShards(e *seaweed.EcVolume, id string) bool {
	if e == nil {
		return false
	}
	for _, hs := range e.Shards {
		for _, h := range hs {
			if h == id {
				return true
			}
		}
	}
	for _, hs := range e.Short {
		for _, h := range hs {
			if h == id {
				return true
			}
		}
	}
	return false
}

// ShardTargetable reports whether a copy of EC shards of disk type t can
// be made to s on a disk of that type (ShardDisk), or s already holds
// shards of the volume (held), which the copy then joins.
func ShardTargetable(s *seaweed.Server, t string, held bool) bool {
	if held {
		return true
	}
	_, ok := ShardDisk(s, t)
	return ok
}
