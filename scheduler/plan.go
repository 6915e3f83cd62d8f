package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// earlierMoveAbsent refuses to judge a retried move while a server of an
// earlier attempt is missing from the topology: every earlier move's target
// (a copy it made may come back with it: planning a move elsewhere and
// deleting the source would leave that copy a stale writable replica) and
// the source of the newest earlier move whose target holds the volume (a
// restarting source is not a deleted one: completing the move would leave
// the volume over-replicated when it returns).
func earlierMoveAbsent(task *fsmpb.Task, topo *seaweed.Topology) error {
	if task.Type != fsmpb.TaskType_TASK_TYPE_BALANCE {
		return nil
	}
	for _, m := range task.EarlierMoves {
		if t := m.GetTarget(); t != "" {
			if _, ok := topo.FindServer(t); !ok {
				return placement.Waitf("volume %d: waiting for earlier move target %s to come back (it may hold a copy of the volume), or cancel the task", task.VolumeId, t)
			}
		}
	}
	v, ok := topo.Volumes[task.VolumeId]
	if !ok {
		return nil
	}
	if m, _, _, ok := placement.LastLandedMove(task, v, topo); ok {
		if _, okS := topo.FindServer(m.GetSource()); !okS {
			return placement.Waitf("volume %d: waiting for earlier move source %s to come back (it may still hold the volume), or cancel the task", task.VolumeId, m.GetSource())
		}
	}
	return nil
}

// earlierServerAbsent refuses to plan a retried erasure coding while a
// server of an earlier attempt is missing from the topology: it may hold an
// original the topology does not show (its server restarting, not
// re-registered yet, cut off from the master). Planned without it, the
// retry would finish or encode beside it, and the original would come back
// writable next to the EC volume. Its executor asks every earlier server
// for an original (probeOriginals), which a server away cannot answer.
//
// Unless the topology lists at least as many replicas of the volume as its
// placement asks for: the earlier servers include the shard targets, and
// the usual reason an attempt fails is a dead target, which may never come
// back (or come back under another address). The absent server then holds
// no original the placement asks for, only leftover shards (or a copy
// beyond the placement, which any encode leaves behind): the retry is
// planned, and its executor, which cannot ask the absent server, fails it
// retryably before changing anything, so the task ends after its retries
// instead of waiting forever. With fewer replicas listed (an earlier
// attempt deleted some, or the volume is listed EC-only) an original may
// be on the absent server, and the retry waits.
func earlierServerAbsent(task *fsmpb.Task, topo *seaweed.Topology) error {
	if task.Type != fsmpb.TaskType_TASK_TYPE_ERASURE_CODING {
		return nil
	}
	if v, ok := topo.Volumes[task.VolumeId]; ok && len(v.Replicas) >= placement.Copies(v.ReplicaPlacement) {
		return nil
	}
	for _, e := range task.EarlierServers {
		if _, ok := topo.FindServer(e); !ok {
			return placement.Waitf("volume %d: earlier server %s is missing from the master's topology (it may still hold an original): waiting for it to come back before encoding or finishing, or cancel the task; if %s is gone for good, cancel this task and submit a new one (a retry keeps the history and would wait again)", task.VolumeId, e, e)
		}
	}
	return nil
}

// replicasListed refuses to plan an erasure coding that is not a retry
// while the topology lists fewer replicas of v than its replica placement
// asks for: the unlisted one (its server restarting or cut off) is not
// encoded, frozen or deleted, and would come back writable beside the EC
// volume. A retry is exempt: an earlier attempt may have deleted
// originals, and its executor asks every earlier server (the first
// attempt's replicas among them) for one.
func replicasListed(task *fsmpb.Task, v *seaweed.Volume, history bool) error {
	if retried(task, history) {
		return nil
	}
	if want := placement.Copies(v.ReplicaPlacement); len(v.Replicas) < want {
		return placement.Waitf("volume %d: replica missing from the master's topology (it lists %d of the %d copies its placement %03d asks for; the missing one would survive the encode): waiting for it, or cancel the task (weed shell volume.fix.replication restores a lost copy)", v.ID, len(v.Replicas), want, v.ReplicaPlacement)
	}
	return nil
}

// AlreadyDone is PlanSpec's answer for a retried erasure coding or move
// whose end state the master already shows: an earlier attempt finished the
// work but its completion never got committed (its worker lost the leader,
// the report came after the requeue and was refused as stale). Planned
// again, it would fail ("already erasure coded", "not on the source"); it
// is completed instead, with Change describing what the topology shows.
type AlreadyDone struct {
	Change *fsmpb.CapacityChange
}

func (a *AlreadyDone) Error() string {
	return fmt.Sprintf("volume %d: the master already shows the %s done", a.Change.VolumeId, typeWord(a.Change.Type))
}

func typeWord(t fsmpb.TaskType) string {
	if t == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING {
		return "erasure coding"
	}
	return "move"
}

// retried reports whether an earlier attempt of the task acted on servers:
// a requeued attempt that was assigned, or a task `ctl task retry`
// submitted with the history of the one it retries. Not the attempt
// number: an attempt requeued while planning waited (ErrPlanWait) never
// ran, and a task that never ran must not take work someone else did
// meanwhile (weed shell ec.encode, volume.move) for its own.
//
// Unless the cluster keeps no history (history false: no entry of
// fsm.HistoryVersion is written yet, during a rolling upgrade): no task
// has any then, and a retry is told by whether an attempt started
// (StartedAt, which only a worker's start sets; a plan wait assigns and
// requeues, never starts). Not by the attempt number either: every
// requeue counts one, plan waits included, so a first encode waiting for
// a replica would count as a retry after one wait and be planned without
// it. An attempt whose worker acted but whose start was never committed
// (its leader died first) is judged as one that never ran: its plan waits
// for every replica, or it fails as already encoded, but it is never
// completed from the topology. A task whose attempts ran before the first
// history entry and that is planned after it has no history either, and
// is judged as one that never ran.
func retried(task *fsmpb.Task, history bool) bool {
	if !history && task.StartedAt != 0 {
		return true
	}
	return len(task.EarlierServers) > 0 || len(task.EarlierMoves) > 0
}

// doneBefore reports whether a retried task's goal is what the topology
// shows. Only retries count: a first attempt that finds the work done was
// asked for something that already is, which is an error.
//
// An erasure coding with history is not done from the topology alone:
// a topology that lists every shard and no volume does not say the
// originals are gone (a replica's server may be restarting, not
// re-registered or cut off from the master, and its original would come
// back writable beside the EC volume). finishSpec plans it instead: the
// worker asks every earlier server for an original and deletes what it
// finds before it completes (unless a shard was moved where no attempt
// put it, which a finish cannot handle: see movedShardsDone for why the
// topology suffices then). Without history (history false) there is no
// earlier server to ask, and the topology is all there is.
func doneBefore(task *fsmpb.Task, topo *seaweed.Topology, history bool) (*AlreadyDone, bool) {
	if !retried(task, history) {
		return nil, false
	}
	v, present := topo.Volumes[task.VolumeId]
	switch task.Type {
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		if len(task.EarlierServers) > 0 {
			return nil, false
		}
		if present {
			return nil, false
		}
		return encodedDone(task, topo)
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		if !present {
			return nil, false
		}
		// The newest earlier move whose target holds the volume decides:
		// its source gone, that move finished.
		if m, src, _, ok := placement.LastLandedMove(task, v, topo); ok {
			if src != nil {
				return nil, false // its source still holds it: PlanMove retries it
			}
			if _, okS := topo.FindServer(m.GetSource()); !okS {
				return nil, false // a restarting source is not a deleted one
			}
			if v.ReadOnly {
				// Its copy may still be frozen (an adopting attempt stopped
				// between the source's delete and the copy's unfreeze):
				// PlanMove sends the move again, and its executor finishes it.
				return nil, false
			}
			return movedDone(task, v, m.GetSource(), m.GetTarget()), true
		}
		if task.Source == "" || task.Target == "" {
			return nil, false
		}
		src, okS := topo.FindServer(task.Source)
		dst, okD := topo.FindServer(task.Target)
		if !okS || !okD || placement.HasReplica(v, src.ID) || !placement.HasReplica(v, dst.ID) {
			return nil, false
		}
		return movedDone(task, v, task.Source, task.Target), true
	}
	return nil, false
}

// encodedDone is the change of an erasure coding the topology shows done:
// every one of the 14 shards listed (the volume itself is the caller's to
// check). Not done with a shard missing.
func encodedDone(task *fsmpb.Task, topo *seaweed.Topology) (*AlreadyDone, bool) {
	e, ok := topo.EcVolumes[task.VolumeId]
	if !ok {
		return nil, false
	}
	ch := &fsmpb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: task.Collection}
	for shard := uint32(0); shard < placement.TotalShards; shard++ {
		servers := e.Shards[shard]
		if len(servers) == 0 {
			return nil, false
		}
		ch.Shards = append(ch.Shards, &fsmpb.ShardPlacement{ShardId: shard, Server: servers[0]})
	}
	return &AlreadyDone{Change: ch}, true
}

func movedDone(task *fsmpb.Task, v *seaweed.Volume, source, target string) *AlreadyDone {
	return &AlreadyDone{Change: &fsmpb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: task.Collection,
		OldSize: v.Size, NewSize: v.Size, Source: source, Target: target}}
}

// PlanSpec resolves where a task's attempt must act, from the topology. The
// returned spec carries the task as given (with its fence). A retry whose
// work the topology shows done gets an *AlreadyDone error. It is
// PlanSpecAsOf for a topology of unknown age.
func PlanSpec(task *fsmpb.Task, topo *seaweed.Topology, th Thresholds) (*pb.TaskSpec, error) {
	return PlanSpecAsOf(task, topo, time.Time{}, th)
}

// ClockSkewMargin is how much later than a task's CreatedAt a topology must
// have been asked for to prove its volume unknown. CreatedAt is the
// proposing leader's clock and asked the current leader's: a new leader
// whose clock runs ahead by less than this does not fail a fresh task at
// once. It only delays such a failure (by at most this plus a poll).
const ClockSkewMargin = 2 * time.Second

// PlanSpecAsOf is PlanSpec for a topology the leader asked the master for
// at asked (zero: unknown). A volume the topology does not list is waited
// for (ErrPlanWait) while the topology was asked for before the task was
// submitted (its CreatedAt, stamped by the proposer) plus ClockSkewMargin:
// the submitter saw a newer one. Only a topology asked for after that fails
// it as unknown. It plans for a cluster that keeps attempt history.
func PlanSpecAsOf(task *fsmpb.Task, topo *seaweed.Topology, asked time.Time, th Thresholds) (*pb.TaskSpec, error) {
	return planSpec(task, topo, asked, th, true, false)
}

// planSpec is PlanSpecAsOf; history says whether the cluster keeps attempt
// history (see retried), refilling whether topo is the last complete one
// while the master's own is not (refilling, or unreachable): a volume it
// does not list then waits for a complete topology rather than failing.
func planSpec(task *fsmpb.Task, topo *seaweed.Topology, asked time.Time, th Thresholds, history, refilling bool) (*pb.TaskSpec, error) {
	return planSpecLoaded(task, topo, asked, th, history, refilling, nil)
}

// planSpecLoaded is planSpec given load, the attempts in flight that may
// create data on each server (by server id), which a replicate's target
// takes into account (placement.PlanReplicateLoaded).
func planSpecLoaded(task *fsmpb.Task, topo *seaweed.Topology, asked time.Time, th Thresholds, history, refilling bool, load map[string]int) (*pb.TaskSpec, error) {
	spec, err := planTypeSpec(task, topo, asked, th, history, refilling, load)
	if err == nil && spec != nil {
		fillShardDisks(spec, topo)
	}
	return spec, err
}

// fillShardDisks names, for an EC spec, the disk of the volume's disk type
// each server a shard copy goes to (its shard targets, its rebuilder)
// takes the copy on (placement.ShardDisk): left to choose, a server with
// disks of two types puts an ssd volume's shard on its hdd. A server that
// holds shards of the volume already is left to choose (the disk beside
// them), except for an erasure coding, whose executor tears down what an
// earlier attempt left before it spreads.
func fillShardDisks(spec *pb.TaskSpec, topo *seaweed.Topology) {
	typ := spec.GetDiskType()
	e := topo.EcVolumes[spec.GetTask().GetVolumeId()]
	if spec.GetTask().GetType() == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING {
		e = nil
	}
	servers := []string{spec.GetRebuilder()}
	for _, st := range spec.GetShardTargets() {
		servers = append(servers, st.GetServer())
	}
	for _, addr := range servers {
		s, ok := topo.FindServer(addr)
		if addr == "" || !ok || placement.HoldsShards(e, s.ID) {
			continue
		}
		if id, ok := placement.ShardDisk(s, typ); ok && id != 0 {
			if spec.ShardDisks == nil {
				spec.ShardDisks = map[string]uint32{}
			}
			spec.ShardDisks[addr] = id
		}
	}
}

// planTypeSpec is planSpecLoaded before the shard disks are named.
func planTypeSpec(task *fsmpb.Task, topo *seaweed.Topology, asked time.Time, th Thresholds, history, refilling bool, load map[string]int) (*pb.TaskSpec, error) {
	if err := earlierMoveAbsent(task, topo); err != nil {
		return nil, err
	}
	if err := earlierServerAbsent(task, topo); err != nil {
		return nil, err
	}
	if done, ok := doneBefore(task, topo, history); ok {
		return nil, done
	}
	spec := &pb.TaskSpec{Task: task, GarbageThreshold: th.VacuumGarbage, EarlierServers: task.EarlierServers}
	if task.Type == fsmpb.TaskType_TASK_TYPE_EC_REBUILD {
		return planEcRebuild(task, topo, spec, history)
	}
	if task.Type == fsmpb.TaskType_TASK_TYPE_EC_BALANCE {
		return planEcBalance(task, topo, spec, history)
	}
	if task.Type == fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA {
		return planRemoveExtra(task, topo, spec)
	}
	v, ok := topo.Volumes[task.VolumeId]
	if !ok {
		if _, ec := topo.EcVolumes[task.VolumeId]; ec && task.Type == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING {
			finish, err := finishSpec(task, topo, spec)
			if err != nil {
				return nil, err
			}
			if finish != nil {
				return finish, nil
			}
			if done, ok := movedShardsDone(task, topo); ok {
				return nil, done
			}
			return nil, placement.Errorf("volume %d is already erasure coded: the master lists its EC shards and no replica of it, and not as this task's earlier attempts left them", task.VolumeId)
		}
		if !asked.IsZero() && asked.UnixNano() < task.CreatedAt+int64(ClockSkewMargin) {
			return nil, placement.Waitf("volume %d is not in the master's topology yet: it was fetched before the task was submitted; waiting for a newer one", task.VolumeId)
		}
		if refilling {
			return nil, placement.Waitf("volume %d is not in the last complete topology, and the master's is not complete now (refilling or unreachable): waiting for a complete one", task.VolumeId)
		}
		return nil, placement.Errorf("volume %d not found in the master's topology", task.VolumeId)
	}
	if err := placement.CloudTiered(v); err != nil {
		return nil, err
	}
	if task.Collection != v.Collection {
		if task.Collection != "" {
			return nil, placement.Errorf("volume %d is in collection %q, not %q as the task names: submit it with --collection %q",
				task.VolumeId, v.Collection, task.Collection, v.Collection)
		}
		// A manual submit that named no collection: the volume servers'
		// RPCs need the volume's own (SeaweedFS refuses EC generation and
		// copies under another), so the spec carries the master's.
		named := proto.Clone(task).(*fsmpb.Task)
		named.Collection = v.Collection
		spec.Task = named
	}
	spec.Size, spec.DeletedBytes, spec.DiskType, spec.ReplicaPlacement = v.Size, v.DeletedBytes, v.DiskType, v.ReplicaPlacement
	for _, r := range v.Replicas {
		spec.Replicas = append(spec.Replicas, r.Server.Addr.String())
	}
	switch task.Type {
	case fsmpb.TaskType_TASK_TYPE_VACUUM:
		return spec, nil
	case fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
		return planDeleteEmpty(task, v, spec)
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		spec.EcShardHolders = shardHolders(topo, task.VolumeId)
		if foreign := foreignHolders(topo, spec.EcShardHolders, task.EarlierServers); len(foreign) > 0 {
			return nil, placement.Errorf("volume %d already has EC shards on %s, where no earlier attempt of this task put any (another encode, or this replica came back after the volume was encoded elsewhere): not encoding over them; compare the shards with the replicas and delete whichever is stale first (weed shell ec.decode or volume.delete)",
				task.VolumeId, strings.Join(foreign, ", "))
		}
		if err := replicasListed(task, v, history); err != nil {
			return nil, err
		}
		targets, err := placement.PlaceShards(v, topo)
		if err != nil {
			return nil, err
		}
		spec.ShardTargets = targets
		return spec, nil
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		src, dst, err := placement.PlanMove(task, v, topo)
		if err != nil {
			return nil, err
		}
		spec.Source, spec.Target = src.Addr.String(), dst.Addr.String()
		return spec, nil
	case fsmpb.TaskType_TASK_TYPE_REPLICATE:
		src, dst, err := placement.PlanReplicateLoaded(task, v, topo, load)
		if err != nil {
			return nil, err
		}
		spec.Source, spec.Target = src.Addr.String(), dst.Addr.String()
		return spec, nil
	}
	return nil, placement.Errorf("unknown task type %d", int32(task.Type))
}

// finishSpec plans a retried erasure coding whose volume the topology lists
// as EC-only: an earlier attempt deleted the originals (or some of them:
// a replica's server may be restarting, not re-registered or cut off from
// the master) and its worker died before reporting, whether the master
// lists every shard or not (yet, or any more). Only when every server the
// master lists with shards is one of the earlier attempts': the spec then
// names no replica and no target, only those servers, and the worker
// finishes the earlier attempt if it finds a complete, verified generation
// there; it never sweeps or encodes. It asks each earlier server for an
// original (it trusts no topology for that) and deletes what it finds
// once compared with the generation, so the leader does not complete such
// a task from the topology alone; earlierServerAbsent has made the spec wait
// until every earlier server is in the topology. nil, nil: not a finish.
func finishSpec(task *fsmpb.Task, topo *seaweed.Topology, spec *pb.TaskSpec) (*pb.TaskSpec, error) {
	if len(task.EarlierServers) == 0 {
		return nil, nil
	}
	holders := shardHolders(topo, task.VolumeId)
	if len(holders) == 0 || len(foreignHolders(topo, holders, task.EarlierServers)) > 0 {
		return nil, nil
	}
	spec.EcShardHolders = holders
	return spec, nil
}

// movedShardsDone completes a retried erasure coding (with history) whose
// shards are listed beyond its earlier servers, all 14 of them, with no
// replica listed: an earlier attempt encoded the volume, and weed shell
// ec.balance (or ec.rebuild) has since moved some of its shards where no
// attempt put them. finishSpec cannot plan it (its worker never touches
// shards it did not make); failed as "already erasure coded", a done
// encode would fail.
//
// It is done from the topology, which finishSpec avoids, only because no
// original can hide from this one. An original outlives the encode only on
// a server the encode did not ask: every replica the first attempt's spec
// named is an earlier server (and replicasListed made that attempt wait
// until the topology listed as many replicas as the placement asks for;
// a copy beyond the placement is beyond any encode, weed shell ec.encode's
// included). An earlier server away from the topology (restarting, cut
// off) may hold one unlisted: none is, checked here and waited for before
// (earlierServerAbsent, which exempts no volume the topology does not
// list). An earlier server in the topology lists every volume it has
// mounted (in this SeaweedFS version a volume server loads its disks
// before its first heartbeat, which lists them all), and the topology
// lists no replica. One it holds unmounted, or failed to load, answers a
// worker's probe "not found" too, and the worker's finish treats it as
// lost the same way (see the worker's confirmGone). The topology is up to
// a poll old, but an original does not appear on a server after it
// unless an operator mounts or copies one there, which a worker's probe,
// itself the answer of a moment, would not stop either.
func movedShardsDone(task *fsmpb.Task, topo *seaweed.Topology) (*AlreadyDone, bool) {
	if len(task.EarlierServers) == 0 {
		return nil, false
	}
	if _, listed := topo.Volumes[task.VolumeId]; listed {
		return nil, false
	}
	for _, e := range task.EarlierServers {
		if _, ok := topo.FindServer(e); !ok {
			return nil, false
		}
	}
	return encodedDone(task, topo)
}

// SpecServers are the servers an attempt of spec acts on: for erasure
// coding the replicas (one generates the shards) and the shard targets, for
// a move its source and target, for a replicate its target, for an EC
// rebuild the rebuilder and the targets of the regenerated shards. The assignment records them in the task
// (AssignTask.servers), so that a retry knows where an abandoned attempt
// may have left shards or a partial copy.
func SpecServers(spec *pb.TaskSpec) []string {
	var out []string
	switch spec.GetTask().GetType() {
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		out = append(out, spec.GetReplicas()...)
		for _, st := range spec.GetShardTargets() {
			out = append(out, st.GetServer())
		}
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		out = append(out, spec.GetSource(), spec.GetTarget())
	case fsmpb.TaskType_TASK_TYPE_REPLICATE:
		// Only the target: the source's replica is never changed, and a
		// retry finds the copy this attempt may leave (PlanReplicate).
		out = append(out, spec.GetTarget())
	case fsmpb.TaskType_TASK_TYPE_EC_BALANCE:
		// The target, where a copy may be left; the source's shard is
		// removed only once the target's is verified.
		out = append(out, ecBalanceTarget(spec)...)
	case fsmpb.TaskType_TASK_TYPE_EC_REBUILD:
		out = append(out, spec.GetRebuilder())
		for _, st := range spec.GetShardTargets() {
			out = append(out, st.GetServer())
		}
	case fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
		// Every replica: the worker marks each read-only, then deletes it.
		out = append(out, spec.GetReplicas()...)
	case fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:
		// Every copy: the worker removes the planned victim or, having
		// compared them, another one.
		out = append(out, spec.GetReplicas()...)
		for _, ps := range spec.GetPresentShards() {
			out = append(out, ps.GetServer())
		}
	}
	seen := map[string]bool{}
	var uniq []string
	for _, s := range out {
		if s != "" && !seen[s] {
			seen[s] = true
			uniq = append(uniq, s)
		}
	}
	sort.Strings(uniq)
	return uniq
}

// SpecMove is a move spec's source and target (AssignTask.move), nil for
// other tasks.
func SpecMove(spec *pb.TaskSpec) *fsmpb.Move {
	if spec.GetTask().GetType() != fsmpb.TaskType_TASK_TYPE_BALANCE {
		return nil
	}
	return &fsmpb.Move{Source: spec.GetSource(), Target: spec.GetTarget()}
}

// foreignHolders lists the holders that are none of the earlier servers:
// shards a retry did not make, which it must never sweep (they may be the
// only complete copy of the volume's newest data).
func foreignHolders(topo *seaweed.Topology, holders, earlier []string) []string {
	var out []string
	for _, h := range holders {
		hs, ok := topo.FindServer(h)
		if !slices.ContainsFunc(earlier, func(e string) bool {
			es, eok := topo.FindServer(e)
			return e == h || ok && eok && es.ID == hs.ID
		}) {
			out = append(out, h)
		}
	}
	return out
}

// shardHolders lists, sorted, every server the master reports with shards
// of the volume, or truncated copies of them (in the form replicas use); a
// volume being encoded has none unless an earlier attempt left some.
func shardHolders(topo *seaweed.Topology, vid uint32) []string {
	e, ok := topo.EcVolumes[vid]
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(id string) {
		name := id
		if s, ok := topo.FindServer(id); ok {
			name = s.Addr.String()
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, byShard := range []map[uint32][]string{e.Shards, e.Short} {
		for _, ids := range byShard {
			for _, id := range ids {
				add(id)
			}
		}
	}
	sort.Strings(out)
	return out
}
