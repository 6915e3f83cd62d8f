package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

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
func retried(task *fsmpb.Task) bool {
	return len(task.EarlierServers) > 0 || len(task.EarlierMoves) > 0
}

// doneBefore reports whether a retried task's goal is what the topology
// shows. Only retries count: a first attempt that finds the work done was
// asked for something that already is, which is an error.
func doneBefore(task *fsmpb.Task, topo *seaweed.Topology) (*AlreadyDone, bool) {
	if !retried(task) {
		return nil, false
	}
	v, present := topo.Volumes[task.VolumeId]
	switch task.Type {
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		e, ec := topo.EcVolumes[task.VolumeId]
		if present || !ec || e.ShardCount() < placement.TotalShards {
			return nil, false
		}
		ch := &fsmpb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: task.Collection}
		for shard := uint32(0); shard < placement.TotalShards; shard++ {
			if servers := e.Shards[shard]; len(servers) > 0 {
				ch.Shards = append(ch.Shards, &fsmpb.ShardPlacement{ShardId: shard, Server: servers[0]})
			}
		}
		return &AlreadyDone{Change: ch}, true
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
// it as unknown.
func PlanSpecAsOf(task *fsmpb.Task, topo *seaweed.Topology, asked time.Time, th Thresholds) (*pb.TaskSpec, error) {
	if err := earlierMoveAbsent(task, topo); err != nil {
		return nil, err
	}
	if done, ok := doneBefore(task, topo); ok {
		return nil, done
	}
	spec := &pb.TaskSpec{Task: task, GarbageThreshold: th.VacuumGarbage, EarlierServers: task.EarlierServers}
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
			return nil, placement.Errorf("volume %d is already erasure coded", task.VolumeId)
		}
		if !asked.IsZero() && asked.UnixNano() < task.CreatedAt+int64(ClockSkewMargin) {
			return nil, placement.Waitf("volume %d is not in the master's topology yet: it was fetched before the task was submitted; waiting for a newer one", task.VolumeId)
		}
		return nil, placement.Errorf("volume %d not found in the master's topology", task.VolumeId)
	}
	spec.Size, spec.DeletedBytes, spec.DiskType, spec.ReplicaPlacement = v.Size, v.DeletedBytes, v.DiskType, v.ReplicaPlacement
	for _, r := range v.Replicas {
		spec.Replicas = append(spec.Replicas, r.Server.Addr.String())
	}
	switch task.Type {
	case fsmpb.TaskType_TASK_TYPE_VACUUM:
		return spec, nil
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		targets, err := placement.PlaceShards(v, topo)
		if err != nil {
			return nil, err
		}
		spec.ShardTargets = targets
		spec.EcShardHolders = shardHolders(topo, task.VolumeId)
		if foreign := foreignHolders(topo, spec.EcShardHolders, task.EarlierServers); len(foreign) > 0 {
			return nil, placement.Errorf("volume %d already has EC shards on %s, where no earlier attempt of this task put any (another encode, or this replica came back after the volume was encoded elsewhere): not encoding over them; compare the shards with the replicas and delete whichever is stale first (weed shell ec.decode or volume.delete)",
				task.VolumeId, strings.Join(foreign, ", "))
		}
		return spec, nil
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		src, dst, err := placement.PlanMove(task, v, topo)
		if err != nil {
			return nil, err
		}
		spec.Source, spec.Target = src.Addr.String(), dst.Addr.String()
		return spec, nil
	}
	return nil, placement.Errorf("unknown task type %d", int32(task.Type))
}

// finishSpec plans a retried erasure coding whose volume the topology lists
// as EC-only without a complete generation (doneBefore takes that): an
// earlier attempt deleted the originals and its worker died before
// reporting, while the master does not list every shard yet (or any more).
// Only when every server the master lists with shards is one of the
// earlier attempts': the spec then names no replica and no target, only
// those servers, and the worker finishes the earlier attempt if it finds a
// complete, verified generation there; it never sweeps or encodes.
//
// A topology that does not list the volume's originals does not say they
// are gone: a replica's server may be restarting, not re-registered yet or
// cut off from the master. So the finish spec waits (ErrPlanWait) until
// every earlier server of the task is in the topology; the worker then
// asks each of them for the volume too (it trusts no topology for that).
// nil, nil: not a finish.
func finishSpec(task *fsmpb.Task, topo *seaweed.Topology, spec *pb.TaskSpec) (*pb.TaskSpec, error) {
	if !retried(task) || len(task.EarlierServers) == 0 {
		return nil, nil
	}
	holders := shardHolders(topo, task.VolumeId)
	if len(holders) == 0 || len(foreignHolders(topo, holders, task.EarlierServers)) > 0 {
		return nil, nil
	}
	for _, e := range task.EarlierServers {
		if _, ok := topo.FindServer(e); !ok {
			return nil, placement.Waitf("volume %d is EC-only in the master's topology, but earlier server %s is missing from it (it may still hold an original): waiting for it to come back before finishing, or cancel the task", task.VolumeId, e)
		}
	}
	spec.EcShardHolders = holders
	return spec, nil
}

// SpecServers are the servers an attempt of spec acts on: for erasure
// coding the replicas (one generates the shards) and the shard targets, for
// a move its source and target. The assignment records them in the task
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
// of the volume (in the form replicas use); a volume being encoded has none
// unless an earlier attempt left some.
func shardHolders(topo *seaweed.Topology, vid uint32) []string {
	e, ok := topo.EcVolumes[vid]
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, ids := range e.Shards {
		for _, id := range ids {
			name := id
			if s, ok := topo.FindServer(id); ok {
				name = s.Addr.String()
			}
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}
