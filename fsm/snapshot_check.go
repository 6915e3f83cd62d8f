package fsm

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// checkRecords refuses a snapshot whose records no sequence of commands
// could have produced: the state Apply keeps (each task's fields and fence,
// each capacity change's task, each worker's capabilities) must hold from
// the first entry applied after an operator's restore, or a crafted or
// corrupt file that decodes cleanly would leave a cluster whose next
// command meets a state Apply never makes. Like CheckCounters, which calls
// it, it runs where a restore enters (not in FromSnapshot: raft's own
// installs and restarts carry states this cluster made). It goes through
// the snapshot's lists in their (sorted) order.
func checkRecords(snap *fsmpb.StateSnapshot) error {
	tasks := make(map[uint64]*fsmpb.Task, len(snap.Tasks))
	for _, t := range snap.Tasks {
		if err := checkTask(t, snap.AppliedIndex); err != nil {
			return fmt.Errorf("task %d: %w", t.Id, err)
		}
		tasks[t.Id] = t
	}
	for _, c := range snap.CapacityChanges {
		t, ok := tasks[c.TaskId]
		switch {
		case !ok:
			return fmt.Errorf("capacity change of task %d: no such task", c.TaskId)
		case t.State != completed || c.VolumeId != t.VolumeId || c.Type != t.Type:
			return fmt.Errorf("capacity change of task %d does not match the task (%s, volume %d)", c.TaskId, StateName(t.State), t.VolumeId)
		case !slices.IsSortedFunc(c.Shards, func(a, b *fsmpb.ShardPlacement) int { return int(a.ShardId) - int(b.ShardId) }):
			return fmt.Errorf("capacity change of task %d: shards not in order", c.TaskId)
		}
	}
	for _, w := range snap.Workers {
		if w.Id == "" {
			return fmt.Errorf("a worker with an empty id")
		}
		for i, c := range w.Capabilities {
			if !ValidType(c) || (i > 0 && w.Capabilities[i-1] > c) {
				return fmt.Errorf("worker %q: capabilities %v are not distinct known task types in order", w.Id, w.Capabilities)
			}
		}
	}
	if err := checkPolicy(snap.Policy, snap.PolicyHistory); err != nil {
		return err
	}
	for _, a := range snap.Admins {
		if a.Id == "" || a.GrpcAddr == "" {
			return fmt.Errorf("admin %q with address %q", a.Id, a.GrpcAddr)
		}
	}
	return nil
}

// checkTask holds a task to what submit, assign and the reports leave.
func checkTask(t *fsmpb.Task, applied uint64) error {
	switch {
	case t.Attempt < 1:
		return fmt.Errorf("attempt %d (the first is 1)", t.Attempt)
	case !ValidType(t.Type):
		return fmt.Errorf("unknown type %v", t.Type)
	case t.VolumeId == 0:
		return fmt.Errorf("volume 0")
	case !knownState(t.State):
		return fmt.Errorf("unknown state %v", t.State)
	case t.Progress < 0 || t.Progress > 100 || math.IsNaN(t.Progress):
		return fmt.Errorf("progress %v outside 0-100", t.Progress)
	}
	for i := 1; i < len(t.Params); i++ {
		if t.Params[i-1].Key >= t.Params[i].Key {
			return fmt.Errorf("parameters not in strict key order (%q, %q)", t.Params[i-1].Key, t.Params[i].Key)
		}
	}
	switch t.State {
	case pending:
		if t.Fence != 0 || t.WorkerId != "" {
			return fmt.Errorf("pending with fence %d and worker %q", t.Fence, t.WorkerId)
		}
	case assigned, running:
		if t.Fence == 0 || t.WorkerId == "" || t.Fence > applied {
			return fmt.Errorf("%s with fence %d (applied index %d) and worker %q", StateName(t.State), t.Fence, applied, t.WorkerId)
		}
	}
	return nil
}

func knownState(s fsmpb.TaskState) bool {
	_, ok := stateNames[s]
	return ok
}

// checkPolicy holds a snapshot's policy and history to what SetPolicy
// leaves: a valid policy in canonical form, set at least once, and at most
// MaxPolicyHistory changes in revision order, the last one the policy's.
func checkPolicy(p *fsmpb.Policy, history []*fsmpb.PolicyChange) error {
	if p == nil {
		if len(history) > 0 {
			return fmt.Errorf("a policy history without a policy")
		}
		return nil
	}
	if errs := ValidatePolicy(p); len(errs) > 0 {
		return fmt.Errorf("policy: %s", strings.Join(errs, "; "))
	}
	canon := NormalizePolicy(p)
	canon.Revision, canon.UpdatedAt, canon.UpdatedBy = p.Revision, p.UpdatedAt, p.UpdatedBy
	switch {
	case p.Revision == 0:
		return fmt.Errorf("policy at revision 0 (a set policy is at 1 or above)")
	case !proto.Equal(canon, p):
		return fmt.Errorf("policy not in canonical form (types sorted, distinct, none at the default)")
	case len(history) == 0 || len(history) > MaxPolicyHistory:
		return fmt.Errorf("policy history of %d changes (1 to %d)", len(history), MaxPolicyHistory)
	case history[len(history)-1].GetRevision() != p.Revision:
		return fmt.Errorf("policy history ends at revision %d, not at the policy's %d", history[len(history)-1].GetRevision(), p.Revision)
	}
	for i := 1; i < len(history); i++ {
		if history[i].GetRevision() != history[i-1].GetRevision()+1 {
			return fmt.Errorf("policy history revisions %d, %d are not consecutive", history[i-1].GetRevision(), history[i].GetRevision())
		}
	}
	return nil
}
