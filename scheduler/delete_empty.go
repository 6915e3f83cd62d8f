package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Empty volumes (SeaweedFS's volume.deleteEmpty): a regular volume that
// holds no live file on any replica, unmodified for the quiet time, is
// deleted on every replica by a delete_empty task. Off by default: with a
// quiet time of 0 (Thresholds.DeleteEmptyQuiet, the leader's
// --delete-empty-quiet or the policy's thresholds.delete_empty_quiet)
// none is detected; the policy's per-type switch disables it too.

// DeleteEmptyPriority is the priority of a delete_empty: routine work,
// below vacuum and erasure coding.
const DeleteEmptyPriority = 3

// superBlockSize is the size of a volume's .dat holding only its super
// block (SeaweedFS's super_block.SuperBlockSize): no needle ever written.
const superBlockSize = 8

// EmptyVolume reports whether the master's figures say v holds no live
// file, as volume.deleteEmpty reads them: nothing but the super block, or
// every file written also deleted. The figures are the largest any
// replica reports (the executor checks each replica itself).
func EmptyVolume(v *seaweed.Volume) bool {
	return v.Size <= superBlockSize || v.FileCount > 0 && v.FileCount <= v.DeleteCount
}

// DetectDeleteEmpty returns the delete_empty proposals, by volume id: the
// regular volumes that are empty (EmptyVolume), not cloud-tiered (their
// replicas share one remote object), writable or read-only only as a
// full volume is (read_only_can_delete; not an operator's read-only mark,
// low disk space or I/O errors, as volume.deleteEmpty), not erasure coded, not busy, listed
// with every replica their placement asks for (a volume short of one is a
// repair's, and its missing copy might hold data), and unmodified for
// th.DeleteEmptyQuiet (a volume the master reports no modification time
// for is never taken: it may be new). None while the quiet time is 0.
func DetectDeleteEmpty(topo *seaweed.Topology, busy Busy, th Thresholds, now time.Time) []Proposal {
	if th.DeleteEmptyQuiet <= 0 {
		return nil
	}
	ids := make([]uint32, 0, len(topo.Volumes))
	for id := range topo.Volumes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []Proposal
	for _, id := range ids {
		v := topo.Volumes[id]
		if busy(id) || v.CloudTiered() || v.ReadOnlyNoDelete || !EmptyVolume(v) || len(v.Replicas) == 0 {
			continue
		}
		if _, ec := topo.EcVolumes[id]; ec {
			continue
		}
		if len(v.Replicas) < placement.Copies(v.ReplicaPlacement) {
			continue
		}
		if v.ModifiedAt <= 0 {
			continue
		}
		quiet := now.Sub(time.Unix(v.ModifiedAt, 0))
		if quiet < th.DeleteEmptyQuiet {
			continue
		}
		out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, VolumeID: id, Collection: v.Collection,
			Priority: DeleteEmptyPriority, Reason: fmt.Sprintf("no live file on %d replicas, quiet for %s", len(v.Replicas), quiet.Truncate(time.Second))})
	}
	return out
}

// planDeleteEmpty completes a delete_empty spec (the replicas filled in
// by planSpecLoaded): a first attempt needs every replica the placement
// asks for listed, so that no unlisted copy, which may hold data, is left
// behind a deleted volume; a retry may find some already deleted by the
// attempt before it.
func planDeleteEmpty(task *fsmpb.Task, v *seaweed.Volume, spec *pb.TaskSpec) (*pb.TaskSpec, error) {
	if len(task.EarlierServers) == 0 && len(v.Replicas) < placement.Copies(v.ReplicaPlacement) {
		return nil, placement.Errorf("volume %d has %d replicas listed and its placement %03d asks for %d: not deleting it while a copy is missing (it may hold data)",
			task.VolumeId, len(v.Replicas), v.ReplicaPlacement, placement.Copies(v.ReplicaPlacement))
	}
	return spec, nil
}
