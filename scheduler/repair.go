package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Repair detection: which volumes are at reduced redundancy, since when,
// and which of them are due a repair. Pure functions of the topology, the
// previous tracker and the time; the detection round (Scheduler.detect)
// gathers the inputs and proposes. Detection of repairs runs only where
// routine detection runs: on a trusted topology (masterView.trust: never a
// refilling or partial one, which would make every server still to
// re-register look lost) while the locks allow it (gate). A round that is
// not allowed to detect leaves the tracker as it was.

// Loss is a volume at reduced redundancy as a loss detector reports it:
// Have of the Want copies (a regular volume) or distinct shards (an EC
// volume, EC set) are present.
type Loss struct {
	Volume     uint32
	Collection string
	EC         bool
	Have, Want int
}

// minimum is the fewest copies (shards) the volume's data survives with.
func (l Loss) minimum() int {
	if l.EC {
		return placement.DataShards
	}
	return 1
}

// Repairable reports whether a repair can restore the loss: a replica
// left to copy from, or at least DataShards shards to rebuild from. One
// that is not is reported (operators' status, metrics) and never touched.
func (l Loss) Repairable() bool { return l.Have >= l.minimum() }

// RepairPriorityBase is the priority of every repair task: above each
// routine type's (vacuum 10, erasure coding 5, balance 1), so Ready
// assigns repairs first.
const RepairPriorityBase = 100

// Priority orders repairs: the least redundant first. It is
// RepairPriorityBase plus the share (in percent) of the spare copies (those
// beyond the minimum the data survives with) the volume has lost: a 001
// volume with one copy left and an EC volume with 10 shards left both get
// 200, a 002 volume with two of its three copies 150, an EC volume with 13
// shards 125.
func (l Loss) Priority() int32 {
	spare := l.Want - l.minimum()
	if spare <= 0 {
		return RepairPriorityBase
	}
	lost := min(max(l.Want-l.Have, 0), spare)
	return int32(RepairPriorityBase + 100*lost/spare)
}

func (l Loss) String() string {
	if l.EC {
		return fmt.Sprintf("%d of %d EC shards", l.Have, l.Want)
	}
	return fmt.Sprintf("%d of %d copies", l.Have, l.Want)
}

// LossDetector finds the losses of one kind in a trusted topology:
// ReplicaLosses for regular volumes, ECShardLosses (fewer than
// TotalShards distinct shards mounted) for erasure-coded ones. The
// tracker, the repair-after wait, the priorities, the metrics and the
// status count cover every detector alike; RepairProposals makes a
// regular volume's due loss a replicate and an EC volume's an ec_rebuild.
type LossDetector func(topo *seaweed.Topology) []Loss

// RepairDetectors are the loss detectors a detection round runs.
var RepairDetectors = []LossDetector{ReplicaLosses, ECShardLosses}

// ReplicaLosses lists the regular volumes held by fewer servers than
// their replica placement asks for (SeaweedFS's "xyz": 1+x+y+z copies),
// by volume id. A cloud-tiered volume (its data is remote) and a volume
// the topology also lists EC shards of (an encode that did not finish, or
// a stale copy come back: the operator's to resolve) are left out.
func ReplicaLosses(topo *seaweed.Topology) []Loss {
	return replicaCounts(topo, func(have, want int) bool { return have < want })
}

// replicaCounts lists, by volume id, the regular volumes whose count of
// servers holding them (have) against their placement's copies (want)
// satisfies pick, leaving out cloud-tiered volumes and those the topology
// also lists EC shards of (ReplicaLosses, ReplicaExtras).
func replicaCounts(topo *seaweed.Topology, pick func(have, want int) bool) []Loss {
	var out []Loss
	for id, v := range topo.Volumes {
		if v.CloudTiered() {
			continue
		}
		if _, ec := topo.EcVolumes[id]; ec {
			continue
		}
		if have, want := copiesOf(v), placement.Copies(v.ReplicaPlacement); pick(have, want) {
			out = append(out, Loss{Volume: id, Collection: v.Collection, Have: have, Want: want})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Volume < out[j].Volume })
	return out
}

// Losses runs the detectors over topo, by volume id (a regular volume
// before an EC one of the same id).
func Losses(topo *seaweed.Topology, detectors []LossDetector) []Loss {
	var out []Loss
	for _, d := range detectors {
		out = append(out, d(topo)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Volume != out[j].Volume {
			return out[i].Volume < out[j].Volume
		}
		return !out[i].EC && out[j].EC
	})
	return out
}

// lossKey names a tracked loss: a volume id, regular or erasure coded.
type lossKey struct {
	volume uint32
	ec     bool
}

// TrackedLoss is a loss and when it was first seen, in a row of rounds
// that all saw it.
type TrackedLoss struct {
	Loss
	Since time.Time
}

// RepairTracker is the leader-local record of the volumes at reduced
// redundancy. It is not replicated: a new leader starts an empty one, so
// a failover restarts the repair-after wait (a repair comes later, never
// sooner).
type RepairTracker map[lossKey]TrackedLoss

// TrackLosses is the tracker after a detection round at now that found
// losses: a loss seen before keeps when it was first seen (its counts are
// updated), a new one is seen now, and a volume whole again drops out.
func TrackLosses(prev RepairTracker, losses []Loss, now time.Time) RepairTracker {
	next := make(RepairTracker, len(losses))
	for _, l := range losses {
		k := lossKey{l.Volume, l.EC}
		since := now
		if p, ok := prev[k]; ok {
			since = p.Since
		}
		next[k] = TrackedLoss{Loss: l, Since: since}
	}
	return next
}

// Sorted lists the tracked losses by volume id.
func (t RepairTracker) Sorted() []TrackedLoss {
	out := make([]TrackedLoss, 0, len(t))
	for _, l := range t {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Volume != out[j].Volume {
			return out[i].Volume < out[j].Volume
		}
		return !out[i].EC && out[j].EC
	})
	return out
}

// RepairSummary is the tracker as operators see it.
type RepairSummary struct {
	// Underreplicated counts regular volumes with fewer copies than their
	// placement asks for; ECMissingShards EC volumes with fewer than 14.
	Underreplicated, ECMissingShards int
	// Unrepairable counts losses no repair can restore (no copy, or fewer
	// than 10 shards, left).
	Unrepairable int
	// Oldest is when the oldest loss still tracked was first seen (zero:
	// none).
	Oldest time.Time
}

// Summary counts the tracked losses.
func (t RepairTracker) Summary() RepairSummary {
	var s RepairSummary
	for _, l := range t {
		if l.EC {
			s.ECMissingShards++
		} else {
			s.Underreplicated++
		}
		if !l.Repairable() {
			s.Unrepairable++
		}
		if s.Oldest.IsZero() || l.Since.Before(s.Oldest) {
			s.Oldest = l.Since
		}
	}
	return s
}

// RepairProposals are the repairs due at now: the tracked, repairable
// losses first seen at least after ago, whose volume busy does not
// report, highest priority first (then by volume id). A regular volume
// gets a replicate, an EC volume an ec_rebuild.
func RepairProposals(t RepairTracker, busy Busy, after time.Duration, now time.Time) []Proposal {
	var out []Proposal
	for _, l := range t.Sorted() {
		if !l.Repairable() || now.Sub(l.Since) < after || busy(l.Volume) {
			continue
		}
		typ := fsmpb.TaskType_TASK_TYPE_REPLICATE
		if l.EC {
			typ = fsmpb.TaskType_TASK_TYPE_EC_REBUILD
		}
		out = append(out, Proposal{Type: typ, VolumeID: l.Volume, Collection: l.Collection, Priority: l.Priority(),
			Reason: fmt.Sprintf("%s since %s", l, now.Sub(l.Since).Truncate(time.Second))})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority > out[j].Priority })
	return out
}

// WholeAgain lists, sorted, the pending repairs (not assigned yet, not
// cancelling) whose volume the topology shows whole again: a server came
// back before the repair started. A replicate whose earlier attempt left a
// copy on a server that now holds the volume is not listed: that copy may
// be what makes the volume whole, and the retry verifies it (PlanSpec
// plans it); likewise an ec_rebuild with an earlier attempt, whose retry
// removes the shards that attempt gathered.
func WholeAgain(pending []*fsmpb.Task, topo *seaweed.Topology) []uint64 {
	var out []uint64
	for _, t := range pending {
		if t.State != fsmpb.TaskState_TASK_STATE_PENDING || t.CancelRequested {
			continue
		}
		switch t.Type {
		case fsmpb.TaskType_TASK_TYPE_REPLICATE:
			v, ok := topo.Volumes[t.VolumeId]
			if !ok || copiesOf(v) < placement.Copies(v.ReplicaPlacement) || earlierCopy(t, v, topo) {
				continue
			}
		case fsmpb.TaskType_TASK_TYPE_EC_REBUILD:
			e, ok := topo.EcVolumes[t.VolumeId]
			if !ok || len(t.EarlierServers) > 0 || !everyShardListed(e) {
				continue
			}
		default:
			continue
		}
		out = append(out, t.Id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// everyShardListed reports whether every one of the TotalShards shards of e is
// listed on some server.
func everyShardListed(e *seaweed.EcVolume) bool {
	for shard := uint32(0); shard < placement.TotalShards; shard++ {
		if len(e.Shards[shard]) == 0 {
			return false
		}
	}
	return true
}

// earlierCopy reports whether a server of an earlier attempt of t holds a
// replica of v.
func earlierCopy(t *fsmpb.Task, v *seaweed.Volume, topo *seaweed.Topology) bool {
	for _, e := range t.EarlierServers {
		if s, ok := topo.FindServer(e); ok && placement.HasReplica(v, s.ID) {
			return true
		}
	}
	return false
}

// copiesOf is the number of distinct servers holding a replica of v.
func copiesOf(v *seaweed.Volume) int {
	n := 0
	for i, r := range v.Replicas {
		dup := false
		for _, p := range v.Replicas[:i] {
			dup = dup || p.Server.ID == r.Server.ID
		}
		if !dup {
			n++
		}
	}
	return n
}

// RepairFailureHold is how long a failed repair keeps its volume from the
// next: the failure cooldown, but at most the repair delay (at least a
// minute). A repair fails most often for want of a server that a failure
// still going on makes unreachable (retries spent while the master still
// listed a dying server); half an hour at reduced redundancy for that is
// too long, and a doomed repair is retried at most once per repair delay.
func RepairFailureHold(cooldown, repairAfter time.Duration) time.Duration {
	return min(cooldown, max(repairAfter, time.Minute))
}

// repairHolds decides, from the replicated tasks and the unretired
// capacity changes, which volumes a repair must leave alone now, and
// which pending routine tasks a due repair takes the place of.
//
// A repair is held back by an assigned or running task of its volume
// (which may be touching it), by a pending repair, by a change the master
// does not show yet, by a repair of the volume that failed within
// failedHold before now (RepairFailureHold), doubled for each other repair
// of it that failed within cooldown, up to cooldown (so a doomed repair is
// not resubmitted every round), and within cooldown by one an operator
// cancelled (a cancel is not undone). Unlike
// routine detection, it is not held back by a routine task that failed or
// was cancelled (another kind of work), nor by a repair cancelled because
// its volume was whole again.
//
// A pending routine task never assigned (its first attempt, no earlier
// servers: no attempt of it can have left anything) is preemptible: a
// balance or an erasure coding waits while its volume lacks a copy
// (placement.MoveBlocked, replicasListed), and would hold the volume from
// its repair for ever. The repair takes its place: the task is cancelled
// and the repair submitted. So is a pending balance retry: it too waits
// for the missing copy for ever, and cancelling it changes nothing on any
// server (what an earlier attempt left on its target is either a listed
// replica, which the repair counts and copies from, or unmounted files
// that neither count nor stop a copy). An erasure coding retry is not:
// an earlier attempt may have left shards the retry must sweep; unless
// no attempt of it reached a worker (each was a wait for a topology that
// lists every replica, which is what a lost server's volume never gets:
// seed 1796319199732767519 kept volume 294 at one copy for good).
func repairHolds(tasks []*fsmpb.Task, changes []*fsmpb.CapacityChange, now time.Time, failedHold, cooldown time.Duration) (busy map[uint32]bool, preemptible map[uint32]uint64) {
	busy, preemptible = map[uint32]bool{}, map[uint32]uint64{}
	since := now.Add(-cooldown).UnixNano()
	// Failed repairs of each volume within the cooldown: how many, and
	// the latest. Each failure doubles the hold (a doomed repair is not
	// resubmitted every failedHold for half an hour).
	type failures struct {
		n    int
		last int64
	}
	failed := map[uint32]failures{}
	for _, t := range tasks {
		repair := fsm.RepairType(t.Type)
		switch t.State {
		case fsmpb.TaskState_TASK_STATE_FAILED:
			if repair && t.FinishedAt >= since {
				f := failed[t.VolumeId]
				failed[t.VolumeId] = failures{n: f.n + 1, last: max(f.last, t.FinishedAt)}
			}
		case fsmpb.TaskState_TASK_STATE_CANCELLED:
			if repair && t.CancelRequested && t.FinishedAt >= since {
				busy[t.VolumeId] = true
			}
		case fsmpb.TaskState_TASK_STATE_PENDING:
			touched := len(t.EarlierServers) > 0 || len(t.EarlierMoves) > 0
			retry := t.Attempt > 1 || touched
			if t.Type == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING && !touched && t.StartedAt == 0 {
				// Every earlier attempt was a planning wait (assigned to
				// the scheduler itself, no server recorded: an attempt
				// that reached a worker records the servers of its spec,
				// shard targets included) and none ever started (an
				// attempt from before the history was written records no
				// server, but its start): nothing can have been left.
				retry = false
			}
			if repair || t.CancelRequested || retry && t.Type != fsmpb.TaskType_TASK_TYPE_BALANCE {
				busy[t.VolumeId] = true
			} else {
				preemptible[t.VolumeId] = t.Id
			}
		case fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING:
			busy[t.VolumeId] = true
		}
	}
	for v, f := range failed {
		hold := failedHold
		for i := 1; i < f.n && hold < cooldown; i++ {
			hold *= 2
		}
		if f.last >= now.Add(-min(hold, cooldown)).UnixNano() {
			busy[v] = true
		}
	}
	for _, c := range changes {
		busy[c.VolumeId] = true
	}
	for v := range busy {
		delete(preemptible, v)
	}
	return busy, preemptible
}
