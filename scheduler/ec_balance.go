package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// DefaultECBalanceSkew is Thresholds.ECBalanceSkew's default: servers whose
// EC shard counts differ by more than this get shards moved between them
// (weed shell ec.balance evens them out to one shard; two keeps shards
// still while the cluster is nearly even).
const DefaultECBalanceSkew = 2

// ecSkew is ECBalanceSkew, or its default when unset.
func (t Thresholds) ecSkew() int {
	if t.ECBalanceSkew <= 0 {
		return DefaultECBalanceSkew
	}
	return t.ECBalanceSkew
}

// ECMove is an ec_balance task in flight: one shard of a volume from
// Source to Target (server names as the task gives them).
type ECMove struct {
	VolumeID       uint32
	Source, Target string
}

// ActiveECMoves lists the ec_balance tasks among tasks that are pending,
// assigned or running.
func ActiveECMoves(tasks []*fsmpb.Task) []ECMove {
	var out []ECMove
	for _, t := range tasks {
		if t.Type != fsmpb.TaskType_TASK_TYPE_EC_BALANCE {
			continue
		}
		switch t.State {
		case fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING:
			out = append(out, ECMove{VolumeID: t.VolumeId, Source: t.Source, Target: t.Target})
		}
	}
	return out
}

// DetectECBalance proposes ec_balance moves, one shard of one volume each,
// at most one per volume and Thresholds.BalanceMovesPerRound in all, in a
// deterministic order:
//   - first, for each EC volume (by id) whose shards are spread worse than
//     the cluster allows (placement.ECSpread: excess over an even share per
//     data centre, rack, machine, server), the move that improves its
//     spread most (placement.ECLayout.SpreadMove);
//   - then, for each disk type, while the servers' EC shard counts differ
//     by more than Thresholds.ECBalanceSkew, a move from the server with
//     the most shards to one with fewer (at least two fewer, so the move
//     evens them) of a volume whose spread the move keeps.
//
// A volume busy reports (a task in flight, a change the master has not
// shown yet), one missing a shard (ec_rebuild's work) or holding a
// duplicate or a truncated copy (seaweed.EcVolume.Short), is never
// touched. Moves in flight count as done for the
// servers' shard counts. A target needs a free slot on the volume's disk
// type, as PlanSpec checks it. A negative Thresholds.ECBalanceSkew turns
// it off.
func DetectECBalance(topo *seaweed.Topology, busy Busy, inflight []ECMove, th Thresholds) []Proposal {
	if th.ECBalanceSkew < 0 {
		return nil // EC balancing is off
	}
	ids := make([]uint32, 0, len(topo.EcVolumes))
	for id := range topo.EcVolumes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// Shard counts by disk type and server id, moves in flight applied.
	load := map[string]map[string]int{}
	typeOf := func(e *seaweed.EcVolume) string { return placement.DiskTypeKey(e.DiskType) }
	for _, id := range ids {
		e := topo.EcVolumes[id]
		k := typeOf(e)
		if load[k] == nil {
			load[k] = map[string]int{}
		}
		for _, holders := range e.Shards {
			for _, h := range holders {
				if s, ok := topo.FindServer(h); ok {
					load[k][s.ID]++
				}
			}
		}
	}
	for _, m := range inflight {
		e, ok := topo.EcVolumes[m.VolumeID]
		if !ok {
			continue
		}
		k := typeOf(e)
		if s, ok := topo.FindServer(m.Source); ok && load[k] != nil {
			load[k][s.ID]--
		}
		if s, ok := topo.FindServer(m.Target); ok && load[k] != nil {
			load[k][s.ID]++
		}
	}
	layouts := map[uint32]*placement.ECLayout{}
	keys := placement.NewECKeys()
	for _, id := range ids {
		// A volume also listed as a regular volume is mid-encode (its
		// originals not deleted yet) or has a replica back from before
		// it was encoded: its shards are the erasure coding's to place,
		// or for an operator to reconcile, never to move (a move under a
		// retried encode made the encode refuse its own shards).
		if _, regular := topo.Volumes[id]; regular || busy(id) {
			continue
		}
		// A truncated copy of a shard is removed (remove_extra) or the
		// shard rebuilt before the volume's shards move. A retry of a move
		// is planned all the same: its executor removes a truncated copy
		// its own earlier attempt left on the target.
		if len(topo.EcVolumes[id].Short) > 0 {
			continue
		}
		if l, err := placement.NewECLayoutKeys(topo, topo.EcVolumes[id], keys); err == nil {
			layouts[id] = l
		}
	}
	limit := th.movesPerRound()
	var out []Proposal
	taken := map[uint32]bool{}
	propose := func(m placement.ShardMove, why string) {
		k := typeOf(topo.EcVolumes[m.VolumeID])
		load[k][m.Source.ID]--
		load[k][m.Target.ID]++
		taken[m.VolumeID] = true
		out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeID: m.VolumeID, Collection: m.Collection,
			Source: m.Source.ID, Target: m.Target.ID, Priority: 1,
			Params: []*fsmpb.Param{{Key: placement.ShardParam, Value: strconv.FormatUint(uint64(m.ShardID), 10)}},
			Reason: fmt.Sprintf("shard %d %s -> %s: %s", m.ShardID, m.Source.ID, m.Target.ID, why)})
	}
	for _, id := range ids {
		if len(out) >= limit {
			return out
		}
		l := layouts[id]
		if l == nil {
			continue
		}
		typ := l.Volume.DiskType
		canTake := func(s *seaweed.Server) bool { return placement.FreeSlotsOf(s, typ) > 0 }
		if m, ok := l.SpreadMove(canTake, load[typeOf(l.Volume)]); ok {
			propose(m, fmt.Sprintf("spread %s, then %s", m.Before, m.After))
		}
	}
	types := make([]string, 0, len(load))
	for k := range load {
		types = append(types, k)
	}
	sort.Strings(types)
	for _, k := range types {
		for len(out) < limit {
			m, ok := ecLoadMove(topo, k, load[k], layouts, taken, th.ecSkew())
			if !ok {
				break
			}
			propose(m, fmt.Sprintf("%s EC shards per server differ by more than %d (%s holds %d, %s %d)",
				placement.DiskTypeName(k), th.ecSkew(), m.Source.ID, load[k][m.Source.ID], m.Target.ID, load[k][m.Target.ID]))
		}
	}
	return out
}

// ecLoadMove is the next move evening out the shard counts (load) of the
// servers with a disk of type k, or false when they differ by at most
// skew or no volume can move between the fullest and the emptiest pairs
// (at most maxBalancePairs are tried).
func ecLoadMove(topo *seaweed.Topology, k string, load map[string]int, layouts map[uint32]*placement.ECLayout, taken map[uint32]bool, skew int) (placement.ShardMove, bool) {
	var servers []*seaweed.Server
	for _, s := range topo.Servers {
		if placement.Disk(s, k) != nil {
			servers = append(servers, s)
		}
	}
	if len(servers) < 2 {
		return placement.ShardMove{}, false
	}
	sort.Slice(servers, func(i, j int) bool {
		if a, b := load[servers[i].ID], load[servers[j].ID]; a != b {
			return a > b
		}
		return servers[i].ID < servers[j].ID
	})
	// Only a server a shard copy can reach (placement.ShardTargetable) is
	// a target, and the skew is measured to the emptiest of those: one
	// whose disk of the type cannot be named never receives, and must not
	// keep the others moving.
	lowest := -1
	for j := len(servers) - 1; j >= 0; j-- {
		if placement.ShardTargetable(servers[j], k, false) {
			lowest = j
			break
		}
	}
	if lowest <= 0 || load[servers[0].ID]-load[servers[lowest].ID] <= skew {
		return placement.ShardMove{}, false
	}
	var vols []uint32
	for id, l := range layouts {
		if !taken[id] && placement.DiskTypeKey(l.Volume.DiskType) == k {
			vols = append(vols, id)
		}
	}
	slices.Sort(vols)
	pairs := 0
	for i := 0; i < len(servers); i++ {
		hi := servers[i]
		for j := len(servers) - 1; j > i; j-- {
			lo := servers[j]
			if load[hi.ID]-load[lo.ID] < 2 {
				break // the rest are fuller still
			}
			if placement.FreeSlotsOf(lo, k) <= 0 || !placement.ShardTargetable(lo, k, false) {
				continue
			}
			if pairs++; pairs > maxBalancePairs {
				return placement.ShardMove{}, false
			}
			for _, id := range vols {
				if m, ok := layouts[id].LoadMove(hi, lo); ok {
					return m, true
				}
			}
		}
	}
	return placement.ShardMove{}, false
}

// planEcBalance plans an ec_balance task: the shard's source and target
// (placement.PlanECShardMove re-checks the move against the topology),
// carried as the spec's source, target and single shard target. A retry
// whose move the topology shows done (the shard on the target only) is
// done; one whose earlier attempt left the shard mounted on both servers
// is planned as is, for the executor to finish (it removes the source's
// copy once the target's is verified).
func planEcBalance(task *fsmpb.Task, topo *seaweed.Topology, spec *pb.TaskSpec, history bool) (*pb.TaskSpec, error) {
	e, ok := topo.EcVolumes[task.VolumeId]
	if ok && retried(task, history) {
		if shard, err := placement.TaskShard(task); err == nil {
			src, okS := topo.FindServer(task.Source)
			dst, okD := topo.FindServer(task.Target)
			holders := e.Shards[shard]
			onSrc := okS && slices.Contains(holders, src.ID)
			onDst := okD && slices.Contains(holders, dst.ID)
			switch {
			case onDst && !onSrc && len(holders) == 1:
				return nil, &AlreadyDone{Change: &fsmpb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: e.Collection,
					Source: task.Source, Target: task.Target, Shards: []*fsmpb.ShardPlacement{{ShardId: shard, Server: task.Target}}}}
			case onDst && onSrc && len(holders) == 2:
				return ecBalanceSpec(task, e, spec, src, dst, shard, topo), nil
			}
		}
	}
	src, dst, shard, err := placement.PlanECShardMove(task, topo)
	if err != nil {
		return nil, err
	}
	return ecBalanceSpec(task, e, spec, src, dst, shard, topo), nil
}

// ecBalanceSpec fills spec for a move of shard from src to dst.
func ecBalanceSpec(task *fsmpb.Task, e *seaweed.EcVolume, spec *pb.TaskSpec, src, dst *seaweed.Server, shard uint32, topo *seaweed.Topology) *pb.TaskSpec {
	if task.Collection != e.Collection {
		named := proto.Clone(task).(*fsmpb.Task)
		named.Collection = e.Collection
		spec.Task = named
	}
	spec.DiskType = e.DiskType
	spec.Source, spec.Target = src.Addr.String(), dst.Addr.String()
	spec.ShardTargets = []*fsmpb.ShardPlacement{{ShardId: shard, Server: dst.Addr.String()}}
	spec.EcShardHolders = shardHolders(topo, task.VolumeId)
	return spec
}

// ecBalanceTarget is an ec_balance spec's target in the form the
// assignment records (SpecServers).
func ecBalanceTarget(spec *pb.TaskSpec) []string {
	if t := spec.GetTarget(); t != "" {
		return []string{t}
	}
	return nil
}
