package placement

import "github.com/groundskeeper-dev/groundskeeper/seaweed"

// FreeSlots is the server's free volume slots over all its disks, as the
// master reports them.
func FreeSlots(s *seaweed.Server) int64 {
	var free int64
	for _, d := range s.Disks {
		free += d.FreeSlots
	}
	return free
}

// HasReplica reports whether the master lists a replica of v on the server
// with the given id.
func HasReplica(v *seaweed.Volume, server string) bool {
	for _, r := range v.Replicas {
		if r.Server.ID == server {
			return true
		}
	}
	return false
}
