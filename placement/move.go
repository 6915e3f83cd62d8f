package placement

import (
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// PlanMove resolves a balance task's source and target. Either may be left
// empty by an operator: the fullest replica holder and the emptiest server
// without the volume are chosen. The capacity projection moves a balance in
// flight as this would move it now.
func PlanMove(task *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
	usage := func(s *seaweed.Server) float64 {
		var used, max int64
		for _, d := range s.Disks {
			used, max = used+d.VolumeCount, max+d.MaxVolumes
		}
		if max == 0 {
			return 1
		}
		return float64(used) / float64(max)
	}
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
	if task.Source != "" {
		s, ok := topo.FindServer(task.Source)
		if !ok {
			return nil, nil, Errorf("source server %s is not in the topology", task.Source)
		}
		if !HasReplica(v, s.ID) {
			return nil, nil, Errorf("volume %d not found on source server %s", v.ID, task.Source)
		}
		src = s
	} else {
		for _, r := range v.Replicas {
			if src == nil || usage(r.Server) > usage(src) {
				src = r.Server
			}
		}
		if src == nil {
			return nil, nil, Errorf("volume %d has no replica to move", v.ID)
		}
	}
	if task.Target != "" {
		s, ok := topo.FindServer(task.Target)
		if !ok {
			return nil, nil, Errorf("target server %s is not in the topology", task.Target)
		}
		dst = s
	} else {
		for _, s := range topo.Servers {
			if HasReplica(v, s.ID) || FreeSlots(s) <= 0 {
				continue
			}
			if dst == nil || usage(s) < usage(dst) {
				dst = s
			}
		}
	}
	if dst == nil {
		return nil, nil, Errorf("no server without a replica of volume %d has a free slot to move it to", v.ID)
	}
	if HasReplica(v, dst.ID) {
		return nil, nil, Errorf("target server %s already holds volume %d", dst.ID, v.ID)
	}
	if FreeSlots(dst) <= 0 {
		return nil, nil, Errorf("target server %s has no free volume slot", dst.ID)
	}
	return src, dst, nil
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
