package placement

import "github.com/groundskeeper-dev/groundskeeper/seaweed"

// ShardDisk is the disk a copy of EC shards of disk type t to server s,
// which holds none of the volume's shards yet, names
// (VolumeEcShardsCopyRequest.disk_id), and whether s can take such a copy
// on a disk of that type at all.
//
// SeaweedFS places a copy that names no disk (disk_id 0) on the disk that
// already holds the volume's shards or index, else on any hdd disk, else
// on any disk: on a server with disks of two types, an ssd volume's shard
// would land on its hdd. A disk id names a location by its index, and
// index 0 cannot be named (0 means "not given"). So: the server's disk of
// type t with the most free slots among those it can name (an id above 0;
// id 0 too when t is the hdd type, where the server's own choice is an hdd
// disk, or when t is the server's only disk type); none (ok false) when
// its only disks of type t are location 0 and it has disks of another type
// the server would choose instead. A server with no disk of type t cannot
// take the copy; a master that lists no physical disks (an older
// SeaweedFS) leaves the choice to the server, as before (0, true).
//
// A server that already holds shards of the volume needs no disk id: the
// server's own choice is the disk beside them (FillShardDisks).
func ShardDisk(s *seaweed.Server, t string) (uint32, bool) {
	d := Disk(s, t)
	if d == nil {
		return 0, false
	}
	if len(d.Physical) == 0 {
		return 0, true
	}
	zeroNameable := DiskTypeKey(t) == "" || len(s.Disks) == 1
	best, found := seaweed.PhysicalDisk{}, false
	for _, p := range d.Physical {
		if p.ID == 0 && !zeroNameable {
			continue
		}
		if f, b := physicalFree(p), physicalFree(best); !found || f > b || f == b && p.ID < best.ID {
			best, found = p, true
		}
	}
	return best.ID, found
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
