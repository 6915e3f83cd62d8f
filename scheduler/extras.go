package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Extra copies: a regular volume held by more servers than its replica
// placement asks for (1+x+y+z), or an EC volume with a shard mounted on
// more than one server. The usual cause is a server that came back after
// groundskeeper repaired its volumes elsewhere: its copies missed the
// writes and deletes made while it was away. Detection is as pure as the
// repairs': a function of a trusted topology, the previous tracker and
// the time; a remove_extra is proposed once the excess has lasted
// --repair-after (a server restarting is not a server come back for good,
// and a move in flight holds two copies for a while), and only when no
// task is in flight for the volume. Which copy goes is decided twice: the
// plan orders the candidates by placement (PlanRemoveExtra), and the
// worker, which compares the copies themselves, removes a stale one first
// and never the only up-to-date one.

// RemoveExtraPriority is the priority of a remove_extra: below every
// repair (a missing copy matters more than an extra one), above routine
// work (the extra copy may be a stale one a read could hit).
const RemoveExtraPriority = 50

// ExtraDetectors are the detectors of extra copies a detection round
// runs: each returns Losses with Have above Want.
var ExtraDetectors = []LossDetector{ReplicaExtras, ECShardExtras}

// ReplicaExtras lists the regular volumes held by more servers than their
// replica placement asks for, by volume id; Have is the servers holding
// it, Want the placement's copies. A cloud-tiered volume, and one the
// topology also lists EC shards of (the operator's to resolve), are left
// out, as ReplicaLosses leaves them.
func ReplicaExtras(topo *seaweed.Topology) []Loss {
	return replicaCounts(topo, func(have, want int) bool { return have > want })
}

// ECShardExtras lists the EC volumes with every shard mounted somewhere
// and some on more than one server; Have counts the shard copies, Want is
// TotalShards. A volume with a shard missing is left to its rebuild (a
// duplicate may then be what a rebuild reads).
func ECShardExtras(topo *seaweed.Topology) []Loss {
	var out []Loss
	for _, l := range ECLosses(topo) {
		if l.Lost() || len(l.Duplicates) == 0 {
			continue
		}
		have := placement.TotalShards
		for _, holders := range l.Duplicates {
			have += len(holders) - 1
		}
		out = append(out, Loss{Volume: l.VolumeID, Collection: l.Collection, EC: true, Have: have, Want: placement.TotalShards})
	}
	return out
}

// ExtraSummary is the extras tracker as operators see it.
type ExtraSummary struct {
	// Overreplicated counts regular volumes with more copies than their
	// placement asks for; ECDuplicateShards EC volumes with a shard on
	// more than one server.
	Overreplicated, ECDuplicateShards int
}

// ExtraSummaryOf counts the tracked extras.
func ExtraSummaryOf(t RepairTracker) ExtraSummary {
	var s ExtraSummary
	for _, l := range t {
		if l.EC {
			s.ECDuplicateShards++
		} else {
			s.Overreplicated++
		}
	}
	return s
}

// ExtraProposals are the remove_extra tasks due at now: the tracked
// extras (TrackLosses over ExtraDetectors' findings) first seen at least
// after ago whose volume busy does not report, by volume id.
func ExtraProposals(t RepairTracker, busy Busy, after time.Duration, now time.Time) []Proposal {
	var out []Proposal
	for _, l := range t.Sorted() {
		if l.Have <= l.Want || now.Sub(l.Since) < after || busy(l.Volume) {
			continue
		}
		what := "copies"
		if l.EC {
			what = "EC shard copies"
		}
		out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeID: l.Volume, Collection: l.Collection,
			Priority: RemoveExtraPriority,
			Reason:   fmt.Sprintf("%d %s where %d are wanted, since %s", l.Have, what, l.Want, now.Sub(l.Since).Truncate(time.Second))})
	}
	return out
}

// extrasBusy reports the volumes a remove_extra must leave alone: any
// task not finished (pending, assigned, running) and any capacity change
// the master does not show yet. Unlike repairs, a remove_extra takes the
// place of nothing: it waits.
func extrasBusy(tasks []*fsmpb.Task, changes []*fsmpb.CapacityChange, now time.Time, cooldown time.Duration) map[uint32]bool {
	busy := map[uint32]bool{}
	since := now.Add(-cooldown).UnixNano()
	for _, t := range tasks {
		switch t.State {
		case fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING:
			busy[t.VolumeId] = true
		case fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED:
			// A refused removal (copies that disagree) is not proposed
			// again every round, nor is a cancelled one.
			if t.Type == fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA && t.FinishedAt >= since {
				busy[t.VolumeId] = true
			}
		}
	}
	for _, c := range changes {
		busy[c.VolumeId] = true
	}
	return busy
}

// ReplicaVictims orders v's replicas as candidates for removal, best
// first, by SeaweedFS's rules for trimming an over-replicated volume
// (balancer.PickOneReplicaToDelete): a replica whose removal leaves the
// others best placed (fewest placement.Violations), then the smallest
// (the likeliest stale: it missed writes), then the one on the fullest
// server (fewest free slots), then by server id. The worker removes a
// stale copy before any of these, and only the first fresh candidate when
// every copy is identical. A server listed twice counts once.
func ReplicaVictims(v *seaweed.Volume) []seaweed.Replica {
	var reps []seaweed.Replica
	for _, r := range v.Replicas {
		if !slices.ContainsFunc(reps, func(p seaweed.Replica) bool { return p.Server.ID == r.Server.ID }) {
			reps = append(reps, r)
		}
	}
	locs := make([]placement.Location, len(reps))
	for i, r := range reps {
		locs[i] = placement.ServerLocation(r.Server)
	}
	type cand struct {
		r          seaweed.Replica
		violations int
		free       int64
	}
	cands := make([]cand, len(reps))
	for i, r := range reps {
		rest := append(slices.Clone(locs[:i]), locs[i+1:]...)
		cands[i] = cand{r: r, violations: placement.Violations(v.ReplicaPlacement, rest), free: placement.FreeSlotsOf(r.Server, v.DiskType)}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.violations, b.violations), cmp.Compare(a.r.Size, b.r.Size),
			cmp.Compare(a.free, b.free), cmp.Compare(a.r.Server.ID, b.r.Server.ID))
	})
	out := make([]seaweed.Replica, len(cands))
	for i, c := range cands {
		out[i] = c.r
	}
	return out
}

// ShardVictim picks, for an EC volume with duplicated shards, the server
// to remove duplicates from and which: among the servers holding a
// duplicated shard, the one holding the most shards of the volume (its
// removal spreads the volume best), then the fullest (fewest free slots),
// then by id; the shards are every one of its shards that another server
// also holds, and every truncated copy it holds of a shard another server
// holds whole (seaweed.EcVolume.Short). ok is false when no shard is
// duplicated.
func ShardVictim(e *seaweed.EcVolume, topo *seaweed.Topology) (server string, shards []uint32, ok bool) {
	held := map[string][]uint32{}
	dup := map[string][]uint32{}
	for shard, holders := range e.Shards {
		for _, h := range holders {
			held[h] = append(held[h], shard)
			if len(holders) > 1 {
				dup[h] = append(dup[h], shard)
			}
		}
	}
	// A truncated copy of a shard mounted whole elsewhere is extra.
	for shard, short := range e.Short {
		if len(e.Shards[shard]) == 0 {
			continue
		}
		for _, h := range short {
			held[h] = append(held[h], shard)
			dup[h] = append(dup[h], shard)
		}
	}
	if len(dup) == 0 {
		return "", nil, false
	}
	free := func(id string) int64 {
		if s, ok := topo.FindServer(id); ok {
			return placement.FreeSlotsOf(s, e.DiskType)
		}
		return 0
	}
	cands := make([]string, 0, len(dup))
	for h := range dup {
		cands = append(cands, h)
	}
	slices.SortFunc(cands, func(a, b string) int {
		return cmp.Or(-cmp.Compare(len(held[a]), len(held[b])), cmp.Compare(free(a), free(b)), cmp.Compare(a, b))
	})
	victim := cands[0]
	out := slices.Clone(dup[victim])
	slices.Sort(out)
	return victim, out, true
}

// planRemoveExtra plans a remove_extra from the topology. A regular
// volume: spec.Replicas lists every replica, best candidate for removal
// first (ReplicaVictims), spec.Source is that first one, and the worker
// decides among them after comparing the copies. An EC volume:
// spec.Source is the server to remove duplicates from (ShardVictim),
// spec.ShardTargets the shards to remove there (each naming that server),
// spec.PresentShards every shard copy listed. A volume with no copy
// beyond its placement any more is an error: nothing is left to do.
func planRemoveExtra(task *fsmpb.Task, topo *seaweed.Topology, spec *pb.TaskSpec) (*pb.TaskSpec, error) {
	if v, ok := topo.Volumes[task.VolumeId]; ok {
		if _, ec := topo.EcVolumes[task.VolumeId]; ec {
			return nil, placement.Errorf("volume %d is listed both as a regular and an EC volume: not removing any copy of it; the operator resolves which is stale", task.VolumeId)
		}
		if err := placement.CloudTiered(v); err != nil {
			return nil, err
		}
		if have, want := copiesOf(v), placement.Copies(v.ReplicaPlacement); have <= want {
			return nil, placement.Errorf("volume %d has %d copies and its placement %03d asks for %d: none is extra any more", v.ID, have, v.ReplicaPlacement, want)
		}
		spec.Size, spec.DeletedBytes, spec.DiskType, spec.ReplicaPlacement = v.Size, v.DeletedBytes, v.DiskType, v.ReplicaPlacement
		for _, r := range ReplicaVictims(v) {
			spec.Replicas = append(spec.Replicas, r.Server.Addr.String())
		}
		spec.Source = spec.Replicas[0]
		return withCollection(spec, v.Collection)
	}
	e, ok := topo.EcVolumes[task.VolumeId]
	if !ok {
		return nil, placement.Errorf("volume %d not found in the master's topology", task.VolumeId)
	}
	if !everyShardListed(e) {
		return nil, placement.Errorf("EC volume %d has shards missing: not removing duplicates before its rebuild", task.VolumeId)
	}
	victim, shards, ok := ShardVictim(e, topo)
	if !ok {
		return nil, placement.Errorf("EC volume %d has no shard on more than one server any more", task.VolumeId)
	}
	vs, ok := topo.FindServer(victim)
	if !ok {
		return nil, placement.Errorf("EC volume %d: server %s is not in the topology", task.VolumeId, victim)
	}
	spec.DiskType = e.DiskType
	spec.Source = vs.Addr.String()
	for _, sh := range shards {
		spec.ShardTargets = append(spec.ShardTargets, &fsmpb.ShardPlacement{ShardId: sh, Server: spec.Source})
	}
	for shard := uint32(0); shard < placement.TotalShards; shard++ {
		for _, h := range slices.Concat(e.Shards[shard], e.Short[shard]) {
			addr := h
			if s, ok := topo.FindServer(h); ok {
				addr = s.Addr.String()
			}
			spec.PresentShards = append(spec.PresentShards, &fsmpb.ShardPlacement{ShardId: shard, Server: addr})
		}
	}
	return withCollection(spec, e.Collection)
}

// withCollection makes the spec's task name the volume's collection when
// the task named none (a manual submit); a task naming another is an
// error, as planSpec says.
func withCollection(spec *pb.TaskSpec, collection string) (*pb.TaskSpec, error) {
	task := spec.GetTask()
	if task.Collection == collection {
		return spec, nil
	}
	if task.Collection != "" {
		return nil, placement.Errorf("volume %d is in collection %q, not %q as the task names: submit it with --collection %q",
			task.VolumeId, collection, task.Collection, collection)
	}
	named := proto.Clone(task).(*fsmpb.Task)
	named.Collection = collection
	spec.Task = named
	return spec, nil
}
