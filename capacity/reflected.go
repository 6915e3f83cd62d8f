package capacity

import (
	"slices"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Reflected reports whether the master's topology now shows a committed
// capacity change, so it can be retired. topo is a trusted (complete)
// topology: a server the change put data on that is absent from it has
// died or left since, and what it held can never be listed; such a change
// is retired too (a repair then sees the loss as it is), or it would hold
// its volume's repair, and all other work on it, for ever.
func Reflected(c *fsmpb.CapacityChange, topo *seaweed.Topology) bool {
	v, present := topo.Volumes[c.VolumeId]
	switch c.Type {
	case fsmpb.TaskType_TASK_TYPE_VACUUM:
		// Gone entirely (deleted by someone) or no longer at the old size.
		return !present || c.OldSize == c.NewSize || v.Size != c.OldSize
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		e, ec := topo.EcVolumes[c.VolumeId]
		return !present && ec && (e.ShardCount() >= seaweed.EcTotalShards || anyGone(c.Shards, topo))
	case fsmpb.TaskType_TASK_TYPE_EC_REBUILD:
		// Every regenerated shard listed where the rebuild put it (or the
		// EC volume gone: deleted, nothing left to count).
		e, ec := topo.EcVolumes[c.VolumeId]
		if !ec {
			return true
		}
		for _, sp := range c.Shards {
			s, ok := topo.FindServer(sp.Server)
			if ok && !slices.Contains(e.Shards[sp.ShardId], s.ID) {
				return false
			}
		}
		return true
	case fsmpb.TaskType_TASK_TYPE_EC_BALANCE:
		// The shard listed on its target and no longer on its source (or
		// the EC volume gone, or the target gone: it can never be listed).
		e, ec := topo.EcVolumes[c.VolumeId]
		if !ec || gone(c.Target, topo) {
			return true
		}
		for _, sp := range c.Shards {
			holders := e.Shards[sp.ShardId]
			dst, _ := topo.FindServer(c.Target)
			if !slices.Contains(holders, dst.ID) {
				return false
			}
			if src, ok := topo.FindServer(c.Source); ok && slices.Contains(holders, src.ID) {
				return false
			}
		}
		return true
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		if !present {
			// Reconciliation only runs on a trusted (complete) topology: a
			// volume missing from it was deleted, and nothing is left to move.
			return true
		}
		onTarget, onSource := false, false
		for _, r := range v.Replicas {
			a := r.Server.Addr.String()
			onTarget = onTarget || a == c.Target || r.Server.ID == c.Target || r.Server.Addr.HTTP == c.Target || r.Server.Addr.GRPC == c.Target
			onSource = onSource || a == c.Source || r.Server.ID == c.Source || r.Server.Addr.HTTP == c.Source || r.Server.Addr.GRPC == c.Source
		}
		return onTarget && !onSource || gone(c.Target, topo)
	case fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
		// The volume deleted on every replica: the master lists it no more.
		return !present
	case fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:
		// The copy removed from Source no longer listed there (or the
		// volume, or that server, gone).
		if gone(c.Source, topo) {
			return true
		}
		if len(c.Shards) > 0 {
			e, ec := topo.EcVolumes[c.VolumeId]
			if !ec {
				return true
			}
			s, _ := topo.FindServer(c.Source)
			for _, sp := range c.Shards {
				if slices.Contains(e.Shards[sp.ShardId], s.ID) {
					return false
				}
			}
			return true
		}
		if !present {
			return true
		}
		for _, r := range v.Replicas {
			if serverNamed(r.Server, c.Source) {
				return false
			}
		}
		return true
	case fsmpb.TaskType_TASK_TYPE_REPLICATE:
		// Deleted since (the topology is a trusted one, as for a move), or
		// its new copy listed: the target gained the volume.
		if !present {
			return true
		}
		for _, r := range v.Replicas {
			if serverNamed(r.Server, c.Target) {
				return true
			}
		}
		return gone(c.Target, topo)
	}
	return true
}

// gone reports whether the server a change names is absent from topo.
func gone(server string, topo *seaweed.Topology) bool {
	_, ok := topo.FindServer(server)
	return !ok
}

// anyGone reports whether a server some of shards went to is absent from
// topo.
func anyGone(shards []*fsmpb.ShardPlacement, topo *seaweed.Topology) bool {
	for _, sp := range shards {
		if gone(sp.Server, topo) {
			return true
		}
	}
	return false
}

// serverNamed reports whether name is s in any form a change names a
// server (id, SeaweedFS address, HTTP or gRPC address).
func serverNamed(s *seaweed.Server, name string) bool {
	return s.Addr.String() == name || s.ID == name || s.Addr.HTTP == name || s.Addr.GRPC == name
}
