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
//
// PlanReplicate knows nothing of other attempts in flight: see
// PlanReplicateLoaded.
func PlanReplicate(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
	return PlanReplicateLoaded(task, v, topo, nil)
}

// PlanReplicateLoaded is PlanReplicate given load, the number of attempts
// in flight that may create data on each server (by server id; those the
// master does not show yet): each takes one of the server's free slots
// (a reservation the master's counts do not have yet), and among targets
// equally good for the placement the least loaded is chosen before the
// one with the most free slots. So the repairs of a lost server's volumes
// spread over the servers that qualify instead of all copying to the
// emptiest one, and never more of them land on a server than it has
// slots.
func PlanReplicateLoaded(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology, load map[string]int) (src, dst *seaweed.Server, err error) {
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
	dst = ReplicaTarget(v, topo, load)
	if dst == nil {
		return nil, nil, Errorf("no server without a copy of volume %d has a free %s slot where its replica placement %03d allows one, given where its %d copies are: add a volume server (or free a slot) in a place the placement allows",
			v.ID, DiskTypeName(v.DiskType), v.ReplicaPlacement, distinctServers(v))
	}
	return src, dst, nil
}

// ReplicaTarget is the server PlanReplicate copies a new replica of v to,
// nil if none qualifies; load as for PlanReplicateLoaded (nil: none). The
// choice is a function of its arguments: ties end on the server id, never
// on the map's order.
func ReplicaTarget(v *seaweed.Volume, topo *seaweed.Topology, load map[string]int) *seaweed.Server {
	locs := VolumeLocations(v)
	var best *seaweed.Server
	bestViol, bestLoad, bestFree := 0, 0, int64(0)
	for _, d := range topo.Servers {
		t := ServerLocation(d)
		free := FreeSlotsOf(d, v.DiskType) - int64(load[d.ID])
		if HasReplica(v, d.ID) || free <= 0 || !CanAdd(v.ReplicaPlacement, locs, t) {
			continue
		}
		viol := Violations(v.ReplicaPlacement, append(slices.Clip(locs), t))
		better := best == nil || viol < bestViol ||
			viol == bestViol && (load[d.ID] < bestLoad ||
				load[d.ID] == bestLoad && (free > bestFree || free == bestFree && d.ID < best.ID))
		if better {
			best, bestViol, bestLoad, bestFree = d, viol, load[d.ID], free
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
