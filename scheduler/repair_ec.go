package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
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
	// on more than one server.
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

// ECVolumesMissingShards counts the EC volumes of topo with fewer than 14
// distinct shards (the groundskeeper_ec_volumes_missing_shards metric),
// and of those the ones too damaged to rebuild.
func ECVolumesMissingShards(topo *seaweed.Topology) (missing, unrepairable int) {
	for _, l := range ECLosses(topo) {
		if l.Lost() {
			missing++
			if !l.Repairable {
				unrepairable++
			}
		}
	}
	return missing, unrepairable
}

// ECRebuildPriority is the priority of rebuilding a volume with present
// distinct shards left: a repair's (Loss.Priority), above every routine
// task, the fewer shards left the higher (with 10 left, one more loss
// loses data).
func ECRebuildPriority(present int) int32 {
	return Loss{EC: true, Have: present, Want: placement.TotalShards}.Priority()
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

// ECRebuildProposals turns the repairable losses into ec_rebuild
// proposals, most urgent (fewest shards left) first, then by volume id. A
// loss that is not repairable, or only duplicated, is never proposed, nor a
// volume busy says has work in flight (busy may be nil).
func ECRebuildProposals(losses []ECLoss, busy Busy) []Proposal {
	var out []Proposal
	for _, l := range losses {
		if !l.Repairable || !l.Lost() || busy != nil && busy(l.VolumeID) {
			continue
		}
		out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeID: l.VolumeID, Collection: l.Collection,
			Priority: ECRebuildPriority(l.Present),
			Reason:   fmt.Sprintf("%d of %d EC shards left (missing %v)", l.Present, placement.TotalShards, l.Missing)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].VolumeID < out[j].VolumeID
	})
	return out
}
