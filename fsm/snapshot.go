package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// SnapshotVersion is the snapshot format this build writes and reads.
const SnapshotVersion = 1

// Snapshot captures the whole state with every list sorted by key. It shares
// the immutable values with the state, so it is cheap and safe to take under
// the apply lock and to marshal after the lock is released.
func (s *State) Snapshot() *fsmpb.StateSnapshot {
	snap := &fsmpb.StateSnapshot{
		Version:          SnapshotVersion,
		NextTaskId:       s.nextTaskID,
		AppliedIndex:     s.appliedIndex,
		Tasks:            s.Tasks(TaskFilter{}),
		CapacityChanges:  s.CapacityChanges(),
		RetiredChanges:   s.RetiredChanges(),
		Workers:          s.Workers(),
		TestCommandIndex: s.testCommandIndex,
	}
	if s.written > CommandVersion {
		// 0 for the base version keeps such snapshots (and hashes) as
		// earlier builds wrote them.
		snap.MaxCommandVersion = s.written
	}
	if s.policy != nil {
		// Only once set: the default policy leaves snapshots (and
		// hashes) as builds before the policy wrote them.
		snap.Policy, snap.PolicyHistory = s.policy, s.PolicyHistory()
	}
	for id, addr := range s.admins {
		snap.Admins = append(snap.Admins, &fsmpb.AdminNode{Id: id, GrpcAddr: addr, MaxCommandVersion: s.versions[id]})
	}
	sort.Slice(snap.Admins, func(i, j int) bool { return snap.Admins[i].Id < snap.Admins[j].Id })
	return snap
}

// FromSnapshot builds a fresh state from a snapshot, checking it is coherent.
func FromSnapshot(snap *fsmpb.StateSnapshot) (*State, error) {
	if snap.Version != SnapshotVersion {
		return nil, fmt.Errorf("snapshot version %d is not supported (this build reads version %d)", snap.Version, SnapshotVersion)
	}
	if snap.NextTaskId == 0 {
		return nil, fmt.Errorf("snapshot has next task id 0 (ids start at 1)")
	}
	s := NewState()
	s.nextTaskID, s.appliedIndex = snap.NextTaskId, snap.AppliedIndex
	s.testCommandIndex = snap.TestCommandIndex
	for _, t := range snap.Tasks {
		if t.Id == 0 || t.Id >= s.nextTaskID {
			return nil, fmt.Errorf("snapshot task id %d is outside 1..%d", t.Id, s.nextTaskID-1)
		}
		if _, dup := s.tasks[t.Id]; dup {
			return nil, fmt.Errorf("snapshot holds task %d twice", t.Id)
		}
		if Active(t.State) {
			if other, busy := s.active[t.VolumeId]; busy {
				return nil, fmt.Errorf("snapshot has two active tasks (%d, %d) on volume %d", other, t.Id, t.VolumeId)
			}
		}
		s.putTask(t)
	}
	for _, c := range snap.CapacityChanges {
		if _, dup := s.changes[c.TaskId]; dup {
			return nil, fmt.Errorf("snapshot holds the capacity change of task %d twice", c.TaskId)
		}
		s.addChange(c)
	}
	for _, c := range snap.RetiredChanges {
		if _, dup := s.retired[c.TaskId]; dup {
			return nil, fmt.Errorf("snapshot holds the retired change of task %d twice", c.TaskId)
		}
		s.remember(c)
	}
	for _, w := range snap.Workers {
		s.workers[w.Id] = w
	}
	s.written = max(snap.MaxCommandVersion, CommandVersion)
	if snap.Policy != nil {
		s.policy, s.policyHistory = snap.Policy, slices.Clone(snap.PolicyHistory)
	}
	for _, a := range snap.Admins {
		s.admins[a.Id] = a.GrpcAddr
		// What replaying the SetAdminAddr of a build that advertised
		// nothing gives, so restored and replayed states hash alike.
		s.versions[a.Id] = max(a.MaxCommandVersion, CommandVersion)
	}
	return s, nil
}

// MaxCounter bounds the ids, indexes and terms of a snapshot an operator
// restores: no cluster reaches them (it would take centuries of
// commands), and counting on from near 2^64 would wrap.
const MaxCounter = 1 << 62

// CheckCounters checks, beyond what FromSnapshot checks (every task id
// below the next one), that the counters of a snapshot an operator
// restores are sane for a snapshot taken at raft index index: the next
// task id is at most MaxCounter, and no index the state records (the one
// it was applied to, its first test command's, a task's fence, which is
// the index of its assignment) lies beyond index; and that its records
// could have come from commands (checkRecords). It is not part of
// FromSnapshot, so what raft itself restores is decoded as before.
func CheckCounters(snap *fsmpb.StateSnapshot, index uint64) error {
	if snap.NextTaskId > MaxCounter {
		return fmt.Errorf("its next task id %d is beyond %d", snap.NextTaskId, uint64(MaxCounter))
	}
	if snap.AppliedIndex > index {
		return fmt.Errorf("it was applied up to index %d, beyond the snapshot's own index %d", snap.AppliedIndex, index)
	}
	if snap.TestCommandIndex > index {
		return fmt.Errorf("its first test command is at index %d, beyond the snapshot's own index %d", snap.TestCommandIndex, index)
	}
	for _, t := range snap.Tasks {
		if t.Fence > index {
			return fmt.Errorf("task %d's fence %d is beyond the snapshot's own index %d", t.Id, t.Fence, index)
		}
	}
	return checkRecords(snap)
}

// MarshalSnapshot encodes a snapshot deterministically.
func MarshalSnapshot(snap *fsmpb.StateSnapshot) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(snap)
}

// WithoutIndex returns the bytes of a vetted snapshot with its applied
// index cleared: what an operator's restore hands to raft. Raft gives the
// restored state a new index of its own choosing, so the saved one would
// be wrong (and behind); 0 means "not known until the next entry".
func WithoutIndex(b []byte) ([]byte, error) {
	_, snap, err := DecodeSnapshot(b)
	if err != nil {
		return nil, err
	}
	snap.AppliedIndex = 0
	return MarshalSnapshot(snap)
}

// Hash is a digest of the whole state's content (not of the index it was
// reached at): equal states give equal hashes on every node, whatever
// order their maps were filled in.
func (s *State) Hash() string {
	snap := s.Snapshot()
	snap.AppliedIndex = 0
	b, err := MarshalSnapshot(snap)
	if err != nil {
		// Marshalling our own well-formed messages cannot fail; make it loud if it does.
		panic(fmt.Sprintf("fsm: marshal state for hash: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
