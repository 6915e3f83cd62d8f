package placement

import (
	"cmp"
	"slices"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// PlanReplicate resolves a replicate task's source (a replica to copy
// from) and target (the server to copy to), as weed shell
// volume.fix.replication would choose them, with two differences: the
// source is the replica reporting the most data (the master's topology
// does not carry each replica's modification time), and a target is
// chosen so that the volume's placement comes out with the fewest
// violations, not only one CanAdd accepts.
//
// A retry whose earlier attempt left a copy (a server of an earlier
// attempt holds a replica now) is planned onto that copy: its executor
// recognises it, catches it up from the source and verifies it, and never
// deletes it. A volume that has all its copies, none of them an earlier
// attempt's, is refused: nothing is missing.
//
// A target has a free slot on the volume's disk type, holds no replica,
// and is a place CanAdd accepts given the replicas left (SeaweedFS's
// SatisfyReplicaPlacement); among those the one whose copy leaves the
// fewest Violations (a machine already holding a copy counts as one, so
// it is chosen only when no other machine qualifies: a second copy there
// still survives the loss of a disk, and SeaweedFS would make it), then
// the most free slots, then the lowest id. None such: ErrPlan, naming the
// placement.
func PlanReplicate(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
	if _, ec := topo.EcVolumes[v.ID]; ec {
		return nil, nil, Errorf("volume %d also has EC shards in the master's topology (an erasure coding that did not finish, or a stale replica come back): not copying it; resolve which to keep first (weed shell ec.decode or volume.delete)", v.ID)
	}
	if len(v.Replicas) == 0 {
		return nil, nil, Errorf("volume %d has no replica left to copy from", v.ID)
	}
	if earlier := earlierHolder(task, v, topo); earlier != nil {
		src = pickSource(v, earlier.ID)
		if src == nil {
			return nil, nil, Errorf("volume %d: its only replica is the copy an earlier attempt made on %s; nothing to verify it against", v.ID, earlier.ID)
		}
		return src, earlier, nil
	}
	want := Copies(v.ReplicaPlacement)
	if n := distinctServers(v); n >= want {
		return nil, nil, Errorf("volume %d already has %d of the %d copies its placement %03d asks for: nothing to replicate", v.ID, n, want, v.ReplicaPlacement)
	}
	src = pickSource(v, "")
	dst = ReplicaTarget(v, topo)
	if dst == nil {
		return nil, nil, Errorf("no server without a copy of volume %d has a free %s slot where its replica placement %03d allows one, given where its %d copies are: add a volume server (or free a slot) in a place the placement allows",
			v.ID, DiskTypeName(v.DiskType), v.ReplicaPlacement, distinctServers(v))
	}
	return src, dst, nil
}

// ReplicaTarget is the server PlanReplicate copies a new replica of v to,
// nil if none qualifies.
func ReplicaTarget(v *seaweed.Volume, topo *seaweed.Topology) *seaweed.Server {
	locs := VolumeLocations(v)
	var best *seaweed.Server
	bestViol := 0
	for _, d := range topo.Servers {
		t := ServerLocation(d)
		if HasReplica(v, d.ID) || FreeSlotsOf(d, v.DiskType) <= 0 || !CanAdd(v.ReplicaPlacement, locs, t) {
			continue
		}
		viol := Violations(v.ReplicaPlacement, append(slices.Clip(locs), t))
		if best == nil || viol < bestViol || viol == bestViol && FreeSlotsOf(d, v.DiskType) > FreeSlotsOf(best, v.DiskType) {
			best, bestViol = d, viol
		}
	}
	return best
}

// pickSource is the replica of v to copy from, other than the server
// except: the one reporting the most data, then the lowest server id.
func pickSource(v *seaweed.Volume, except string) *seaweed.Server {
	var best *seaweed.Replica
	for i := range v.Replicas {
		r := &v.Replicas[i]
		if r.Server.ID == except {
			continue
		}
		if best == nil || r.Size > best.Size || r.Size == best.Size && cmp.Less(r.Server.ID, best.Server.ID) {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	return best.Server
}

// earlierHolder is the server of an earlier attempt of task that holds a
// replica of v now (the first in the task's list), nil if none does.
func earlierHolder(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) *seaweed.Server {
	for _, e := range task.EarlierServers {
		if s, ok := topo.FindServer(e); ok && HasReplica(v, s.ID) {
			return s
		}
	}
	return nil
}

// distinctServers is the number of servers holding a replica of v.
func distinctServers(v *seaweed.Volume) int {
	seen := map[string]bool{}
	for _, r := range v.Replicas {
		seen[r.Server.ID] = true
	}
	return len(seen)
}
