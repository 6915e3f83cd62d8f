package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ECLoss is an erasure-coded volume whose shards are not each mounted
// exactly once: some are missing, or some are mounted on more than one
// server.
type ECLoss struct {
	VolumeID   uint32
	Collection string
	DiskType   string
	// Present is how many distinct shards the topology lists.
	Present int
	// Missing are the shard ids no server lists, ascending.
	Missing []uint32
	// Duplicates: shard id -> every server listing it, for shards listed
	// on more than one server (truncated copies of a shard listed whole
	// elsewhere included: seaweed.EcVolume.Short).
	Duplicates map[uint32][]string
	// Repairable: shards are missing and at least placement.DataShards
	// distinct ones remain, so the missing ones can be regenerated. A
	// volume with fewer has lost data: it is reported, never touched.
	Repairable bool
}

// Lost reports whether shards are missing (not only duplicated).
func (l ECLoss) Lost() bool { return len(l.Missing) > 0 }

// String says what is wrong, for logs and status.
func (l ECLoss) String() string {
	switch {
	case l.Lost() && !l.Repairable:
		return fmt.Sprintf("EC volume %d has %d of %d shards (missing %v): fewer than the %d needed to rebuild, its data is lost unless a server holding the missing shards comes back",
			l.VolumeID, l.Present, placement.TotalShards, l.Missing, placement.DataShards)
	case l.Lost():
		return fmt.Sprintf("EC volume %d has %d of %d shards (missing %v)", l.VolumeID, l.Present, placement.TotalShards, l.Missing)
	default:
		return fmt.Sprintf("EC volume %d has duplicate shards %v", l.VolumeID, slices.Sorted(maps.Keys(l.Duplicates)))
	}
}

// ECLosses lists, by volume id, every EC volume of topo with a missing or
// duplicated shard. It is a pure function of the topology it is given: the
// caller must give it a trusted one (complete, not a refilling master's:
// one that has not heard from every server yet lists shards as missing
// that are not), and decides how long a loss must last before it is
// repaired.
//
// The repair tracker (repair.go) calls it through ECShardLosses on each
// trusted topology.
func ECLosses(topo *seaweed.Topology) []ECLoss {
	var out []ECLoss
	for _, e := range topo.EcVolumes {
		l := ECLoss{VolumeID: e.ID, Collection: e.Collection, DiskType: e.DiskType}
		for shard := uint32(0); shard < placement.TotalShards; shard++ {
			holders := e.Shards[shard]
			if len(holders) > 0 {
				// A truncated copy beside a whole one is an extra copy
				// (remove_extra deletes it); alone, the shard is missing.
				holders = slices.Concat(holders, e.Short[shard])
			}
			switch {
			case len(holders) == 0:
				l.Missing = append(l.Missing, shard)
			default:
				l.Present++
			}
			if len(holders) > 1 {
				if l.Duplicates == nil {
					l.Duplicates = map[uint32][]string{}
				}
				l.Duplicates[shard] = slices.Sorted(slices.Values(holders))
			}
		}
		if !l.Lost() && len(l.Duplicates) == 0 {
			continue
		}
		l.Repairable = l.Lost() && l.Present >= placement.DataShards
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VolumeID < out[j].VolumeID })
	return out
}

// ECShardLosses is the erasure-coded volumes' LossDetector (in
// RepairDetectors): the EC volumes with missing shards, as Losses the
// repair tracker holds for --repair-after before RepairProposals makes
// them ec_rebuild proposals. Duplicated shards alone are no loss.
func ECShardLosses(topo *seaweed.Topology) []Loss {
	var out []Loss
	for _, l := range ECLosses(topo) {
		if l.Lost() {
			out = append(out, Loss{Volume: l.VolumeID, Collection: l.Collection, EC: true, Have: l.Present, Want: placement.TotalShards})
		}
	}
	return out
}

// ECRebuildProposals is what the repair path (ECShardLosses, the
// tracker, RepairProposals) proposes for topo's EC volumes once their
// losses are due: an ec_rebuild of each repairable one that busy (nil:
// none) does not report, fewest shards left first. For tests and tools
// that want the rebuild a topology calls for without waiting.
func ECRebuildProposals(topo *seaweed.Topology, busy Busy) []Proposal {
	if busy == nil {
		busy = func(uint32) bool { return false }
	}
	var at time.Time
	return RepairProposals(TrackLosses(nil, ECShardLosses(topo), at), busy, 0, at)
}
