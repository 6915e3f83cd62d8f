package placement

import "github.com/groundskeeper-dev/groundskeeper/seaweed"

func FreeSlots(s *seaweed.Server) int64 {
	var free int64
	for _, d := range s.Disks {
		free += d.FreeSlots
	}
	return free
}

func HasReplica(v *seaweed.Volume, server string) bool {
	for _, r := range v.Replicas {
		if r.Server.ID == server {
			return true
		}
	}
	return false
}
