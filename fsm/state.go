package fsm

import (
	"slices"
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// State is the replicated state machine without any raft or locking. Stored
// *fsmpb.Task, *fsmpb.CapacityChange and *fsmpb.Worker values are immutable: a change
// replaces the pointer with a modified copy, so readers and snapshots may keep
// pointers without copying.
type State struct {
	nextTaskID   uint64
	appliedIndex uint64
	tasks        map[uint64]*fsmpb.Task
	// byState indexes task ids by state, so the scheduler's frequent reads of
	// pending and running tasks do not scan the whole history.
	byState map[fsmpb.TaskState]map[uint64]struct{}
	// active maps a volume to its one active (pending/assigned/running) task.
	active map[uint32]uint64
	// changes holds committed-but-unreported capacity changes by task id.
	changes map[uint64]*fsmpb.CapacityChange
	// retired holds changes retired within RetiredKeep, by task id (see
	// RecentlyRetired).
	retired map[uint64]*fsmpb.CapacityChange
	// retiredByVolume counts the remembered retired changes per volume.
	retiredByVolume map[uint32]int
	// changesByVolume counts unretired changes per volume.
	changesByVolume map[uint32]int
	// volumeChanges lists each volume's unretired changes, so a read of one
	// volume does not copy and sort every change.
	volumeChanges map[uint32][]*fsmpb.CapacityChange
	workers       map[string]*fsmpb.Worker
	admins        map[string]string
	// versions holds each admin's advertised command version (at least
	// CommandVersion for every admin with an address).
	versions map[string]uint32
	// testCommandIndex is the index of the first test-only TestCommand.
	testCommandIndex uint64
	// written is the highest command version among the entries applied (at
	// least CommandVersion): a build that applies less may not hold this
	// state, and a node that applies less may not join (the ratchet).
	written uint32
	// policy is the maintenance policy (nil: never set, the default) and
	// policyHistory its last changes, oldest first (MaxPolicyHistory).
	policy        *fsmpb.Policy
	policyHistory []*fsmpb.PolicyChange
	// maxVersion is the highest command version this build applies (0:
	// CurrentVersion). A property of the build, not of the replicated state.
	maxVersion uint32
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		nextTaskID:      1,
		tasks:           map[uint64]*fsmpb.Task{},
		byState:         map[fsmpb.TaskState]map[uint64]struct{}{},
		active:          map[uint32]uint64{},
		changes:         map[uint64]*fsmpb.CapacityChange{},
		retired:         map[uint64]*fsmpb.CapacityChange{},
		retiredByVolume: map[uint32]int{},
		changesByVolume: map[uint32]int{},
		volumeChanges:   map[uint32][]*fsmpb.CapacityChange{},
		workers:         map[string]*fsmpb.Worker{},
		admins:          map[string]string{},
		versions:        map[string]uint32{},
		written:         CommandVersion,
	}
}

// MaxVersion is the highest command version this state's build applies.
func (s *State) MaxVersion() uint32 {
	if s.maxVersion == 0 {
		return CurrentVersion
	}
	return s.maxVersion
}

// AdminVersion returns the command version an admin advertised (ok false:
// the admin published nothing).
func (s *State) AdminVersion(id string) (version uint32, ok bool) {
	v, ok := s.versions[id]
	return v, ok
}

// AdminVersions maps every admin that published its address to its
// advertised command version.
func (s *State) AdminVersions() map[string]uint32 {
	out := make(map[string]uint32, len(s.versions))
	for id, v := range s.versions {
		out[id] = v
	}
	return out
}

// WrittenVersion is the highest command version among the entries the
// state reflects (at least CommandVersion).
func (s *State) WrittenVersion() uint32 { return max(s.written, CommandVersion) }

// TestCommandIndex is the index of the first test-only TestCommand applied (0: none).
func (s *State) TestCommandIndex() uint64 { return s.testCommandIndex }

// AppliedIndex is the raft index of the last command applied.
func (s *State) AppliedIndex() uint64 { return s.appliedIndex }

// Task returns the task with the given id. The result must not be modified.
func (s *State) Task(id uint64) (*fsmpb.Task, bool) {
	t, ok := s.tasks[id]
	return t, ok
}

// ActiveTask returns the active task holding a volume's reservation, if any.
func (s *State) ActiveTask(volume uint32) (*fsmpb.Task, bool) {
	id, ok := s.active[volume]
	if !ok {
		return nil, false
	}
	return s.tasks[id], true
}

// TaskFilter selects tasks; zero values match everything.
type TaskFilter struct {
	States   []fsmpb.TaskState
	VolumeID uint32
	// Types, if any, are the task types to select.
	Types []fsmpb.TaskType
}

func (f TaskFilter) match(t *fsmpb.Task) bool {
	if f.VolumeID != 0 && t.VolumeId != f.VolumeID {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, t.Type) {
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	for _, st := range f.States {
		if t.State == st {
			return true
		}
	}
	return false
}

// Tasks returns the matching tasks ordered by id. Results must not be modified.
func (s *State) Tasks(f TaskFilter) []*fsmpb.Task {
	var out []*fsmpb.Task
	if len(f.States) == 0 {
		out = make([]*fsmpb.Task, 0, len(s.tasks))
		for _, t := range s.tasks {
			if f.match(t) {
				out = append(out, t)
			}
		}
	} else {
		seen := map[fsmpb.TaskState]bool{}
		for _, st := range f.States {
			if seen[st] {
				continue
			}
			seen[st] = true
			for id := range s.byState[st] {
				if t := s.tasks[id]; f.match(t) {
					out = append(out, t)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// CapacityChanges returns the unretired capacity changes ordered by task id.
func (s *State) CapacityChanges() []*fsmpb.CapacityChange {
	out := make([]*fsmpb.CapacityChange, 0, len(s.changes))
	for _, c := range s.changes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskId < out[j].TaskId })
	return out
}

// RecentlyRetired returns a volume's changes retired within RetiredKeep,
// ordered by task id. The leader retires a change once its own poll of the
// master shows it; another node's copy of the topology may be up to a poll
// older, and with these it can tell whether its copy shows the change yet.
func (s *State) RecentlyRetired(volume uint32) []*fsmpb.CapacityChange {
	var out []*fsmpb.CapacityChange
	for _, c := range s.retired {
		if c.VolumeId == volume {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskId < out[j].TaskId })
	return out
}

// VolumeChanges returns one volume's unretired capacity changes ordered by
// task id (nil if none): CapacityChanges filtered to the volume, without a
// pass over every change. The changes must not be modified.
func (s *State) VolumeChanges(volume uint32) []*fsmpb.CapacityChange {
	cs := s.volumeChanges[volume]
	if len(cs) == 0 {
		return nil
	}
	out := append([]*fsmpb.CapacityChange(nil), cs...)
	sort.Slice(out, func(i, j int) bool { return out[i].TaskId < out[j].TaskId })
	return out
}

// HasRetiredChange reports whether a volume has a recently retired change.
func (s *State) HasRetiredChange(volume uint32) bool { return s.retiredByVolume[volume] > 0 }

// remember and forget keep the retired changes and their per-volume count.
func (s *State) remember(c *fsmpb.CapacityChange) {
	s.retired[c.TaskId] = c
	s.retiredByVolume[c.VolumeId]++
}

func (s *State) forget(id uint64) {
	c := s.retired[id]
	delete(s.retired, id)
	if s.retiredByVolume[c.VolumeId]--; s.retiredByVolume[c.VolumeId] <= 0 {
		delete(s.retiredByVolume, c.VolumeId)
	}
}

// RetiredChanges returns every recently retired change ordered by task id.
func (s *State) RetiredChanges() []*fsmpb.CapacityChange {
	out := make([]*fsmpb.CapacityChange, 0, len(s.retired))
	for _, c := range s.retired {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskId < out[j].TaskId })
	return out
}

// addChange records an unretired capacity change.
func (s *State) addChange(c *fsmpb.CapacityChange) {
	s.changes[c.TaskId] = c
	s.changesByVolume[c.VolumeId]++
	s.volumeChanges[c.VolumeId] = append(s.volumeChanges[c.VolumeId], c)
}

// HasUnreportedChange reports whether a volume has a capacity change the
// master has not reflected yet.
func (s *State) HasUnreportedChange(volume uint32) bool { return s.changesByVolume[volume] > 0 }

// Workers returns the registered workers ordered by id.
func (s *State) Workers() []*fsmpb.Worker {
	out := make([]*fsmpb.Worker, 0, len(s.workers))
	for _, w := range s.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// AdminAddr returns the client gRPC address an admin node published.
func (s *State) AdminAddr(id string) (string, bool) {
	a, ok := s.admins[id]
	return a, ok
}

// putTask stores t and keeps the state and volume reservation indexes in
// step with its state.
func (s *State) putTask(t *fsmpb.Task) {
	if old, ok := s.tasks[t.Id]; ok && old.State != t.State {
		delete(s.byState[old.State], t.Id)
	}
	set := s.byState[t.State]
	if set == nil {
		set = map[uint64]struct{}{}
		s.byState[t.State] = set
	}
	set[t.Id] = struct{}{}
	s.tasks[t.Id] = t
	if Active(t.State) {
		s.active[t.VolumeId] = t.Id
	} else if s.active[t.VolumeId] == t.Id {
		delete(s.active, t.VolumeId)
	}
}

// Prunable reports whether task id may be forgotten: it exists, is terminal
// and has no unretired capacity change (the oracle still reports those).
func (s *State) Prunable(id uint64) bool {
	t, ok := s.tasks[id]
	if !ok || !Terminal(t.State) {
		return false
	}
	_, hasChange := s.changes[id]
	return !hasChange
}

// removeTask forgets a terminal task. Terminal tasks hold no volume
// reservation, so only the task and state indexes change.
func (s *State) removeTask(id uint64) {
	t := s.tasks[id]
	delete(s.byState[t.State], id)
	delete(s.tasks, id)
}

// CountByState is the number of tasks in a state.
func (s *State) CountByState(st fsmpb.TaskState) int { return len(s.byState[st]) }

// CountByTypeAndState calls fn once for every (type, state) pair that has
// tasks, with their number; for metrics, without sorting the history.
func (s *State) CountByTypeAndState(fn func(typ fsmpb.TaskType, st fsmpb.TaskState, n int)) {
	counts := map[[2]int32]int{}
	for st, ids := range s.byState {
		for id := range ids {
			if t := s.tasks[id]; t != nil {
				counts[[2]int32{int32(t.Type), int32(st)}]++
			}
		}
	}
	for k, n := range counts {
		fn(fsmpb.TaskType(k[0]), fsmpb.TaskState(k[1]), n)
	}
}
