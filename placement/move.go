package placement

import (
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// PlanMove resolves a balance task's source and target. Either may be left
// empty by an operator: the fullest replica holder (on the volume's disk
// type) and the emptiest server with a free slot of that disk type, without
// the volume, where the move keeps the volume's replica placement
// (MoveKeepsPlacement), are chosen. A target an operator names must pass
// the same checks. The capacity projection moves a balance in flight as
// this would move it now.
func PlanMove(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
	// A retry whose earlier attempt left its copy (its target holds a
	// replica while its source still does) repeats that move: its executor
	// recognises the copy, adopts it if it is identical to the source or
	// replaces it if it holds nothing the source lacks, and deletes the
	// source, so the volume ends with as many replicas as before that
	// attempt. Only that attempt's own source is used: deleting any other
	// replica would cost one (doneBefore completes a move whose source is
	// gone). A volume that would end below its placement's copies is not
	// touched: the target's replica may not be that attempt's copy.
	if m, es, ed, ok := LastLandedMove(task, v, topo); ok && es == nil {
		// The move finished but the volume is read-only (doneBefore): the
		// executor, finding the source gone and this copy frozen by the
		// attempt, makes it writable and completes.
		s, okS := topo.FindServer(m.GetSource())
		if !okS {
			return nil, nil, Waitf("volume %d: waiting for earlier move source %s to come back, or cancel the task", v.ID, m.GetSource())
		}
		if task.Source != "" && !sameID(topo, task.Source, s.ID) || task.Target != "" && !sameID(topo, task.Target, ed.ID) {
			return nil, nil, Errorf("volume %d: an earlier attempt's copy on %s from %s is not the move asked for", v.ID, ed.ID, s.ID)
		}
		return s, ed, nil
	}
	if _, es, ed, ok := LastLandedMove(task, v, topo); ok && es != nil {
		if task.Source != "" && !sameID(topo, task.Source, es.ID) || task.Target != "" && !sameID(topo, task.Target, ed.ID) {
			return nil, nil, Errorf("volume %d: an earlier attempt's copy on %s from %s is not the move asked for", v.ID, ed.ID, es.ID)
		}
		if len(v.Replicas)-1 < Copies(v.ReplicaPlacement) {
			return nil, nil, Errorf("volume %d has %d replicas, among them an earlier attempt's copy on %s from %s; deleting %s would leave fewer than the %d copies its placement %03d asks for: not moving (check the replicas with weed shell volume.check.disk, then delete the extra one)",
				v.ID, len(v.Replicas), ed.ID, es.ID, es.ID, Copies(v.ReplicaPlacement), v.ReplicaPlacement)
		}
		return es, ed, nil
	}
	return planFreshMove(task, v, topo)
}

// planFreshMove plans a move no earlier attempt has landed: a target of the
// volume's disk type with a free slot there, that keeps its placement.
func planFreshMove(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
	typ := v.DiskType
	var sources []*seaweed.Server
	if task.Source != "" {
		s, ok := topo.FindServer(task.Source)
		if !ok {
			return nil, nil, Errorf("source server %s is not in the topology", task.Source)
		}
		if !HasReplica(v, s.ID) {
			return nil, nil, Errorf("volume %d not found on source server %s", v.ID, task.Source)
		}
		sources = []*seaweed.Server{s}
	} else {
		for _, r := range v.Replicas {
			sources = append(sources, r.Server)
		}
		if len(sources) == 0 {
			return nil, nil, Errorf("volume %d has no replica to move", v.ID)
		}
		// Fullest first; ties by id (Replicas are sorted by server id).
		sort.SliceStable(sources, func(i, j int) bool { return DiskUsage(sources[i], typ) > DiskUsage(sources[j], typ) })
	}
	if err := MoveBlocked(topo, v); err != nil {
		return nil, nil, err
	}
	locs := VolumeLocations(v)
	if task.Target != "" {
		d, ok := topo.FindServer(task.Target)
		if !ok {
			return nil, nil, Errorf("target server %s is not in the topology", task.Target)
		}
		if HasReplica(v, d.ID) {
			return nil, nil, Errorf("target server %s already holds volume %d", d.ID, v.ID)
		}
		if Disk(d, typ) == nil {
			return nil, nil, Errorf("target server %s has no %s disk, the disk type of volume %d", d.ID, DiskTypeName(typ), v.ID)
		}
		if FreeSlotsOf(d, typ) <= 0 {
			return nil, nil, Errorf("target server %s has no free volume slot on its %s disk", d.ID, DiskTypeName(typ))
		}
		for _, s := range sources {
			if MoveKeepsPlacement(v.ReplicaPlacement, locs, s.ID, ServerLocation(d)) {
				return s, d, nil
			}
		}
		if t := ServerLocation(d); sharesHost(locs, t) {
			return nil, nil, Errorf("target server %s is on machine %s, which already holds a copy of volume %d: pick a target on another machine", d.ID, t.Host, v.ID)
		}
		return nil, nil, Errorf("moving volume %d to %s (data center %q, rack %q) would break its replica placement %03d, given where its other copies are: pick a target in another rack or data center", v.ID, d.ID, d.DataCenter, d.Rack, v.ReplicaPlacement)
	}
	for _, s := range sources {
		for _, d := range topo.Servers {
			if HasReplica(v, d.ID) || FreeSlotsOf(d, typ) <= 0 || !MoveKeepsPlacement(v.ReplicaPlacement, locs, s.ID, ServerLocation(d)) {
				continue
			}
			if dst == nil || DiskUsage(d, typ) < DiskUsage(dst, typ) {
				dst = d
			}
		}
		if dst != nil {
			return s, dst, nil
		}
	}
	return nil, nil, Errorf("no server without a replica of volume %d has a free %s slot where its replica placement %03d allows a copy", v.ID, DiskTypeName(typ), v.ReplicaPlacement)
}

// MoveBlocked is why no replica of v may be moved now, nil if one may.
// A volume listing fewer replicas than its placement asks for is not
// moved (ErrPlanWait): the missing copy's server may only be away from
// this topology (restarting, cut off from the master), and a move judged
// without it can land in its rack or on its machine (a 010 copy moved into
// its absent twin's rack looks no worse). A volume whose replicas sit on
// disks of different types is not moved (ErrPlan): the copy would be made
// on the volume's disk type, which is not the moving replica's. Nor is a
// volume the topology also lists EC shards of (ErrPlan): an encode that did
// not finish or a stale copy come back, for the operator to resolve.
func MoveBlocked(topo *seaweed.Topology, v *seaweed.Volume) error {
	if _, ec := topo.EcVolumes[v.ID]; ec {
		return Errorf("volume %d also has EC shards in the master's topology (an erasure coding that did not finish, or a stale replica come back): not moving its replicas; resolve which to keep first (weed shell ec.decode or volume.delete)", v.ID)
	}
	if want := Copies(v.ReplicaPlacement); len(v.Replicas) < want {
		return Waitf("volume %d: replica missing from the master's topology (it lists %d of the %d copies its placement %03d asks for; a move judged without the missing one could put two copies in one rack or on one machine): waiting for it, or cancel the task (weed shell volume.fix.replication restores a lost copy)", v.ID, len(v.Replicas), want, v.ReplicaPlacement)
	}
	for _, r := range v.Replicas[1:] {
		if DiskTypeKey(r.DiskType) != DiskTypeKey(v.Replicas[0].DiskType) {
			return Errorf("volume %d has replicas on more than one disk type (%s on %s, %s on %s): not moving it (weed shell volume.tier.move puts them on one)", v.ID,
				DiskTypeName(v.Replicas[0].DiskType), v.Replicas[0].Server.ID, DiskTypeName(r.DiskType), r.Server.ID)
		}
	}
	return nil
}

// LastLandedMove finds the newest earlier move of the task whose target
// holds a replica now: an earlier attempt's copy (a move's target never
// holds the volume before it, see PlanMove and the executor's probe). src
// is that move's source if it still holds a replica (the attempt was
// abandoned before deleting it), nil if it does not (the move finished) or
// is missing from the topology (the scheduler's PlanSpec waits for it).
func LastLandedMove(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (m *fsmpb.Move, src, dst *seaweed.Server, ok bool) {
	for i := len(task.EarlierMoves) - 1; i >= 0; i-- {
		m := task.EarlierMoves[i]
		d, okD := topo.FindServer(m.GetTarget())
		if !okD || !HasReplica(v, d.ID) {
			continue
		}
		if s, okS := topo.FindServer(m.GetSource()); okS && HasReplica(v, s.ID) && s.ID != d.ID {
			return m, s, d, true
		}
		return m, nil, d, true
	}
	return nil, nil, nil, false
}

// Copies is the number of copies a SeaweedFS replica placement
// asks for ("xyz": 1 + x + y + z).
func Copies(rp uint32) int {
	return 1 + int(rp/100%10) + int(rp/10%10) + int(rp%10)
}

// sameID reports whether name resolves to the server with the given id.
func sameID(topo *seaweed.Topology, name, id string) bool {
	s, ok := topo.FindServer(name)
	return ok && s.ID == id
}
