package capacity

import (
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const (
	inProgress = pb.Adjustment_IN_PROGRESS
	committed  = pb.Adjustment_COMMITTED_UNREPORTED
)

// FindVolume returns the volume as the master reports it: a normal volume,
// or an erasure-coded one (size 0: the normal volume is gone).
func FindVolume(topo *seaweed.Topology, id uint32) (*seaweed.Volume, bool) {
	if topo == nil {
		return nil, false
	}
	if v, ok := topo.Volumes[id]; ok {
		return v, true
	}
	if e, ok := topo.EcVolumes[id]; ok {
		return &seaweed.Volume{ID: id, Collection: e.Collection}, true
	}
	return nil, false
}

// projectVolume projects one volume. active is its active (pending, assigned
// or running) task, if any; changes are its unretired capacity changes.
// Changes the topology already reflects are left out, so a node whose
// topology is newer than the leader's retirement does not count them twice.
//
// Committed changes apply first, in task order: vacuum new_size − old_size,
// erasure coding −old_size (the volume is removed), balance 0. Then the task
// in flight: vacuum −deleted_bytes (0 if a committed vacuum already counts
// the garbage), erasure coding the removal of what is left, balance 0.
// projected_size never drops below 0.
func projectVolume(topo *seaweed.Topology, v *seaweed.Volume, active *fsmpb.Task, changes []*fsmpb.CapacityChange) *pb.VolumeCapacity {
	out := &pb.VolumeCapacity{VolumeId: v.ID, Collection: v.Collection, MasterSize: v.Size, DeletedBytes: v.DeletedBytes}
	cur := int64(v.Size)
	add := func(id uint64, typ fsmpb.TaskType, kind pb.Adjustment_Kind, delta int64) {
		out.Adjustments = append(out.Adjustments, &pb.Adjustment{TaskId: id, Type: typ, Kind: kind, DeltaBytes: delta})
		cur = max(cur+delta, 0)
	}
	cs := append([]*fsmpb.CapacityChange(nil), changes...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].TaskId < cs[j].TaskId })
	vacuumed := false
	for _, c := range cs {
		if c.VolumeId != v.ID || (topo != nil && Reflected(c, topo)) {
			continue
		}
		switch c.Type {
		case fsmpb.TaskType_TASK_TYPE_VACUUM:
			add(c.TaskId, c.Type, committed, int64(c.NewSize)-int64(c.OldSize))
			vacuumed = true
		case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
			add(c.TaskId, c.Type, committed, -int64(c.OldSize))
		case fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:
			add(c.TaskId, c.Type, committed, 0)
		}
	}
	if active != nil && active.VolumeId == v.ID {
		switch active.Type {
		case fsmpb.TaskType_TASK_TYPE_VACUUM:
			var d int64
			if !vacuumed {
				d = -int64(v.DeletedBytes)
			}
			add(active.Id, active.Type, inProgress, d)
		case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
			add(active.Id, active.Type, inProgress, -cur)
		case fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_REPLICATE:
			add(active.Id, active.Type, inProgress, 0)
		}
	}
	out.ProjectedSize = uint64(cur)
	return out
}
