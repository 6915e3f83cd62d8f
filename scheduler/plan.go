package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ErrPlan marks a task that cannot be planned against the topology; another
// attempt on the same topology would fail the same way. PlanSpec's
// *PlanError matches it (errors.Is) unless it is a wait.
var ErrPlan = errors.New("cannot plan task")

// ErrPlanWait marks a task that must not be planned against this topology
// but may be against a later one (a server an earlier attempt acted on is
// missing from it): the attempt is retried with backoff, touching nothing.
// PlanSpec's *PlanError matches it (errors.Is) when it is a wait.
var ErrPlanWait = errors.New("cannot plan task yet")

// PlanError is why PlanSpec cannot plan a task. Its message is the marker
// (ErrPlan's or ErrPlanWait's) followed by Reason; the task's recorded error
// is Reason alone.
type PlanError struct {
	// Reason says why, for operators (e.g. "volume 7 not found in the
	// master's topology").
	Reason string
	// Wait: the task may be planned against a later topology (ErrPlanWait);
	// otherwise it cannot be (ErrPlan).
	Wait bool
}

func (e *PlanError) Error() string { return e.marker().Error() + ": " + e.Reason }

// Is matches ErrPlan or ErrPlanWait, whichever e is.
func (e *PlanError) Is(target error) bool { return target == e.marker() }

func (e *PlanError) marker() error {
	if e.Wait {
		return ErrPlanWait
	}
	return ErrPlan
}

func planErr(format string, args ...any) error {
	return &PlanError{Reason: fmt.Sprintf(format, args...)}
}

func planWait(format string, args ...any) error {
	return &PlanError{Reason: fmt.Sprintf(format, args...), Wait: true}
}

// earlierMoveAbsent refuses to judge a retried move while a server of an
// earlier attempt is missing from the topology: every earlier move's target
// (a copy it made may come back with it: planning a move elsewhere and
// deleting the source would leave that copy a stale writable replica) and
// the source of the newest earlier move whose target holds the volume (a
// restarting source is not a deleted one: completing the move would leave
// the volume over-replicated when it returns).
func earlierMoveAbsent(task *pb.Task, topo *seaweed.Topology) error {
	if task.Type != pb.TaskType_TASK_TYPE_BALANCE {
		return nil
	}
	for _, m := range task.EarlierMoves {
		if t := m.GetTarget(); t != "" {
			if _, ok := topo.FindServer(t); !ok {
				return planWait("volume %d: waiting for earlier move target %s to come back (it may hold a copy of the volume), or cancel the task", task.VolumeId, t)
			}
		}
	}
	v, ok := topo.Volumes[task.VolumeId]
	if !ok {
		return nil
	}
	if m, _, _, ok := lastLandedMove(task, v, topo); ok {
		if _, okS := topo.FindServer(m.GetSource()); !okS {
			return planWait("volume %d: waiting for earlier move source %s to come back (it may still hold the volume), or cancel the task", task.VolumeId, m.GetSource())
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
	Change *pb.CapacityChange
}

func (a *AlreadyDone) Error() string {
	return fmt.Sprintf("volume %d: the master already shows the %s done", a.Change.VolumeId, typeWord(a.Change.Type))
}

func typeWord(t pb.TaskType) string {
	if t == pb.TaskType_TASK_TYPE_ERASURE_CODING {
		return "erasure coding"
	}
	return "move"
}

// retried reports whether the task has attempts before this one: a
// requeued attempt, or a task `ctl task retry` submitted with the history
// of the one it retries.
func retried(task *pb.Task) bool {
	return task.Attempt > 1 || len(task.EarlierServers) > 0 || len(task.EarlierMoves) > 0
}

// doneBefore reports whether a retried task's goal is what the topology
// shows. Only retries count: a first attempt that finds the work done was
// asked for something that already is, which is an error.
func doneBefore(task *pb.Task, topo *seaweed.Topology) (*AlreadyDone, bool) {
	if !retried(task) {
		return nil, false
	}
	v, present := topo.Volumes[task.VolumeId]
	switch task.Type {
	case pb.TaskType_TASK_TYPE_ERASURE_CODING:
		e, ec := topo.EcVolumes[task.VolumeId]
		if present || !ec || e.ShardCount() < TotalShards {
			return nil, false
		}
		ch := &pb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: task.Collection}
		for shard := uint32(0); shard < TotalShards; shard++ {
			if servers := e.Shards[shard]; len(servers) > 0 {
				ch.Shards = append(ch.Shards, &pb.ShardPlacement{ShardId: shard, Server: servers[0]})
			}
		}
		return &AlreadyDone{Change: ch}, true
	case pb.TaskType_TASK_TYPE_BALANCE:
		if !present {
			return nil, false
		}
		// The newest earlier move whose target holds the volume decides:
		// its source gone, that move finished.
		if m, src, _, ok := lastLandedMove(task, v, topo); ok {
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
		if !okS || !okD || hasReplica(v, src.ID) || !hasReplica(v, dst.ID) {
			return nil, false
		}
		return movedDone(task, v, task.Source, task.Target), true
	}
	return nil, false
}

func movedDone(task *pb.Task, v *seaweed.Volume, source, target string) *AlreadyDone {
	return &AlreadyDone{Change: &pb.CapacityChange{TaskId: task.Id, Type: task.Type, VolumeId: task.VolumeId, Collection: task.Collection,
		OldSize: v.Size, NewSize: v.Size, Source: source, Target: target}}
}

// lastLandedMove finds the newest earlier move of the task whose target
// holds a replica now: an earlier attempt's copy (a move's target never
// holds the volume before it, see PlanMove and the executor's probe). src
// is that move's source if it still holds a replica (the attempt was
// abandoned before deleting it), nil if it does not (the move finished) or
// is missing from the topology (PlanSpec waits for it: earlierMoveAbsent).
func lastLandedMove(task *pb.Task, v *seaweed.Volume, topo *seaweed.Topology) (m *pb.Move, src, dst *seaweed.Server, ok bool) {
	for i := len(task.EarlierMoves) - 1; i >= 0; i-- {
		m := task.EarlierMoves[i]
		d, okD := topo.FindServer(m.GetTarget())
		if !okD || !hasReplica(v, d.ID) {
			continue
		}
		if s, okS := topo.FindServer(m.GetSource()); okS && hasReplica(v, s.ID) && s.ID != d.ID {
			return m, s, d, true
		}
		return m, nil, d, true
	}
	return nil, nil, nil, false
}

// placementCopies is the number of copies a SeaweedFS replica placement
// asks for ("xyz": 1 + x + y + z).
func placementCopies(rp uint32) int {
	return 1 + int(rp/100%10) + int(rp/10%10) + int(rp%10)
}

// PlanSpec resolves where a task's attempt must act, from the topology. The
// returned spec carries the task as given (with its fence). A retry whose
// work the topology shows done gets an *AlreadyDone error.
func PlanSpec(task *pb.Task, topo *seaweed.Topology, th Thresholds) (*pb.TaskSpec, error) {
	if err := earlierMoveAbsent(task, topo); err != nil {
		return nil, err
	}
	if done, ok := doneBefore(task, topo); ok {
		return nil, done
	}
	spec := &pb.TaskSpec{Task: task, GarbageThreshold: th.VacuumGarbage, EarlierServers: task.EarlierServers}
	v, ok := topo.Volumes[task.VolumeId]
	if !ok {
		if _, ec := topo.EcVolumes[task.VolumeId]; ec && task.Type == pb.TaskType_TASK_TYPE_ERASURE_CODING {
			return nil, planErr("volume %d is already erasure coded", task.VolumeId)
		}
		return nil, planErr("volume %d not found in the master's topology", task.VolumeId)
	}
	spec.Size, spec.DeletedBytes, spec.DiskType, spec.ReplicaPlacement = v.Size, v.DeletedBytes, v.DiskType, v.ReplicaPlacement
	for _, r := range v.Replicas {
		spec.Replicas = append(spec.Replicas, r.Server.Addr.String())
	}
	switch task.Type {
	case pb.TaskType_TASK_TYPE_VACUUM:
		return spec, nil
	case pb.TaskType_TASK_TYPE_ERASURE_CODING:
		targets, err := PlaceShards(v, topo)
		if err != nil {
			return nil, err
		}
		spec.ShardTargets = targets
		spec.EcShardHolders = shardHolders(topo, task.VolumeId)
		if foreign := foreignHolders(topo, spec.EcShardHolders, task.EarlierServers); len(foreign) > 0 {
			return nil, planErr("volume %d already has EC shards on %s, where no earlier attempt of this task put any (another encode, or this replica came back after the volume was encoded elsewhere): not encoding over them; compare the shards with the replicas and delete whichever is stale first (weed shell ec.decode or volume.delete)",
				task.VolumeId, strings.Join(foreign, ", "))
		}
		return spec, nil
	case pb.TaskType_TASK_TYPE_BALANCE:
		src, dst, err := PlanMove(task, v, topo)
		if err != nil {
			return nil, err
		}
		spec.Source, spec.Target = src.Addr.String(), dst.Addr.String()
		return spec, nil
	}
	return nil, planErr("unknown task type %d", int32(task.Type))
}

// SpecServers are the servers an attempt of spec acts on: for erasure
// coding the replicas (one generates the shards) and the shard targets, for
// a move its source and target. The assignment records them in the task
// (AssignTask.servers), so that a retry knows where an abandoned attempt
// may have left shards or a partial copy.
func SpecServers(spec *pb.TaskSpec) []string {
	var out []string
	switch spec.GetTask().GetType() {
	case pb.TaskType_TASK_TYPE_ERASURE_CODING:
		out = append(out, spec.GetReplicas()...)
		for _, st := range spec.GetShardTargets() {
			out = append(out, st.GetServer())
		}
	case pb.TaskType_TASK_TYPE_BALANCE:
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
func SpecMove(spec *pb.TaskSpec) *pb.Move {
	if spec.GetTask().GetType() != pb.TaskType_TASK_TYPE_BALANCE {
		return nil
	}
	return &pb.Move{Source: spec.GetSource(), Target: spec.GetTarget()}
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

// PlaceShards spreads the 14 shards round-robin over the servers with the
// most free slots, starting with the volume's first replica (which generates
// them), using at least MinECServers servers. The capacity projection
// places an encoding in flight where this would place it now.
func PlaceShards(v *seaweed.Volume, topo *seaweed.Topology) ([]*pb.ShardPlacement, error) {
	if len(v.Replicas) == 0 {
		return nil, planErr("volume %d has no replica to encode", v.ID)
	}
	source := v.Replicas[0].Server
	type cand struct {
		s    *seaweed.Server
		free int64
	}
	var cands []cand
	for _, s := range topo.Servers {
		var free int64
		for _, d := range s.Disks {
			free += d.FreeSlots
		}
		if s.ID != source.ID && free <= 0 {
			continue
		}
		cands = append(cands, cand{s, free})
	}
	if len(cands) < MinECServers {
		return nil, planErr("erasure coding needs at least %d volume servers with free slots; the topology has %d", MinECServers, len(cands))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if (cands[i].s.ID == source.ID) != (cands[j].s.ID == source.ID) {
			return cands[i].s.ID == source.ID
		}
		if cands[i].free != cands[j].free {
			return cands[i].free > cands[j].free
		}
		return cands[i].s.ID < cands[j].s.ID
	})
	n := min(len(cands), TotalShards)
	out := make([]*pb.ShardPlacement, TotalShards)
	for shard := 0; shard < TotalShards; shard++ {
		out[shard] = &pb.ShardPlacement{ShardId: uint32(shard), Server: cands[shard%n].s.Addr.String()}
	}
	return out, nil
}

// MaxShardsPerServer is the most shards of one volume PlaceShards puts on
// one server (round-robin over at least MinECServers servers): losing any
// one server then loses at most as many shards as there are parity shards.
const MaxShardsPerServer = (TotalShards + MinECServers - 1) / MinECServers

// CheckSpread checks a layout of the 14 shards (shard count by server)
// against PlaceShards' spread rule: at least MinECServers servers, at most
// MaxShardsPerServer shards on any one. nil if a fresh plan could have
// placed it so.
func CheckSpread(perServer map[string]int) error {
	n, total := 0, 0
	for s, c := range perServer {
		if c <= 0 {
			continue
		}
		n, total = n+1, total+c
		if c > MaxShardsPerServer {
			return fmt.Errorf("%s holds %d of the %d shards, more than the %d a plan puts on one server", s, c, TotalShards, MaxShardsPerServer)
		}
	}
	if total != TotalShards {
		return fmt.Errorf("the layout holds %d of the %d shards", total, TotalShards)
	}
	if n < MinECServers {
		return fmt.Errorf("the shards are on %d servers, fewer than the %d a plan uses", n, MinECServers)
	}
	return nil
}

// PlanMove resolves a balance task's source and target. Either may be left
// empty by an operator: the fullest replica holder and the emptiest server
// without the volume are chosen. The capacity projection moves a balance in
// flight as this would move it now.
func PlanMove(task *pb.Task, v *seaweed.Volume, topo *seaweed.Topology) (src, dst *seaweed.Server, err error) {
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
	if m, es, ed, ok := lastLandedMove(task, v, topo); ok && es == nil {
		// The move finished but the volume is read-only (doneBefore): the
		// executor, finding the source gone and this copy frozen by the
		// attempt, makes it writable and completes.
		s, okS := topo.FindServer(m.GetSource())
		if !okS {
			return nil, nil, planWait("volume %d: waiting for earlier move source %s to come back, or cancel the task", v.ID, m.GetSource())
		}
		if task.Source != "" && !sameID(topo, task.Source, s.ID) || task.Target != "" && !sameID(topo, task.Target, ed.ID) {
			return nil, nil, planErr("volume %d: an earlier attempt's copy on %s from %s is not the move asked for", v.ID, ed.ID, s.ID)
		}
		return s, ed, nil
	}
	if _, es, ed, ok := lastLandedMove(task, v, topo); ok && es != nil {
		if task.Source != "" && !sameID(topo, task.Source, es.ID) || task.Target != "" && !sameID(topo, task.Target, ed.ID) {
			return nil, nil, planErr("volume %d: an earlier attempt's copy on %s from %s is not the move asked for", v.ID, ed.ID, es.ID)
		}
		if len(v.Replicas)-1 < placementCopies(v.ReplicaPlacement) {
			return nil, nil, planErr("volume %d has %d replicas, among them an earlier attempt's copy on %s from %s; deleting %s would leave fewer than the %d copies its placement %03d asks for: not moving (check the replicas with weed shell volume.check.disk, then delete the extra one)",
				v.ID, len(v.Replicas), ed.ID, es.ID, es.ID, placementCopies(v.ReplicaPlacement), v.ReplicaPlacement)
		}
		return es, ed, nil
	}
	if task.Source != "" {
		s, ok := topo.FindServer(task.Source)
		if !ok {
			return nil, nil, planErr("source server %s is not in the topology", task.Source)
		}
		if !hasReplica(v, s.ID) {
			return nil, nil, planErr("volume %d not found on source server %s", v.ID, task.Source)
		}
		src = s
	} else {
		for _, r := range v.Replicas {
			if src == nil || usage(r.Server) > usage(src) {
				src = r.Server
			}
		}
		if src == nil {
			return nil, nil, planErr("volume %d has no replica to move", v.ID)
		}
	}
	if task.Target != "" {
		s, ok := topo.FindServer(task.Target)
		if !ok {
			return nil, nil, planErr("target server %s is not in the topology", task.Target)
		}
		dst = s
	} else {
		for _, s := range topo.Servers {
			if hasReplica(v, s.ID) || freeSlots(s) <= 0 {
				continue
			}
			if dst == nil || usage(s) < usage(dst) {
				dst = s
			}
		}
	}
	if dst == nil {
		return nil, nil, planErr("no server without a replica of volume %d has a free slot to move it to", v.ID)
	}
	if hasReplica(v, dst.ID) {
		return nil, nil, planErr("target server %s already holds volume %d", dst.ID, v.ID)
	}
	if freeSlots(dst) <= 0 {
		return nil, nil, planErr("target server %s has no free volume slot", dst.ID)
	}
	return src, dst, nil
}

func freeSlots(s *seaweed.Server) int64 {
	var free int64
	for _, d := range s.Disks {
		free += d.FreeSlots
	}
	return free
}

// sameID reports whether name resolves to the server with the given id.
func sameID(topo *seaweed.Topology, name, id string) bool {
	s, ok := topo.FindServer(name)
	return ok && s.ID == id
}
