package fsm

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// FSM adapts State to raft.FSM and raft.BatchingFSM, and guards it for
// concurrent readers.
type FSM struct {
	mu    sync.RWMutex
	state *State
	// onApply, if set, is called after each batch with the applied index.
	onApply func(index uint64)
	// onRestore, if set, is called after the state was replaced by a snapshot.
	onRestore func()
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over an empty state.
func New() *FSM { return &FSM{state: NewState()} }

// OnApply registers a callback run (outside the lock) after commands are applied.
// Call it before raft starts.
func (f *FSM) OnApply(fn func(index uint64)) { f.onApply = fn }

// OnRestore registers a callback run (outside the lock) each time a snapshot
// replaces the state: at start-up, when a follower installs the leader's
// snapshot, and when an operator restores one. Call it before raft starts.
func (f *FSM) OnRestore(fn func()) { f.onRestore = fn }

// Apply applies a single committed log entry.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries under one lock acquisition. Each result
// is a *pb.ApplyResult (nil for configuration entries).
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	cmds := make([]*pb.Command, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		cmd, err := Decode(l.Data)
		if err != nil {
			out[i] = &pb.ApplyResult{Index: l.Index, ErrorCode: pb.ErrorCode_ERROR_CODE_INVALID, Error: err.Error()}
			continue
		}
		cmds[i] = cmd
	}
	var last uint64
	f.mu.Lock()
	for i, l := range logs {
		last = l.Index
		if cmds[i] == nil {
			if l.Index > f.state.appliedIndex {
				f.state.appliedIndex = l.Index
			}
			continue
		}
		out[i] = f.state.Apply(l.Index, cmds[i])
	}
	f.mu.Unlock()
	if f.onApply != nil && last > 0 {
		f.onApply(last)
	}
	return out
}

// Read runs fn with the state under a read lock. fn must not keep or modify
// anything it is given beyond the immutable values it returns.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// Hash returns the state digest.
func (f *FSM) Hash() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Hash()
}

// HashAt returns the state digest and the index it reflects, read together.
func (f *FSM) HashAt() (index uint64, hash string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.appliedIndex, f.state.Hash()
}

// Snapshot captures the state quickly; the encoding happens in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{snap: f.state.Snapshot()}, nil
}

// Restore replaces the state with one read from a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	st, snap, err := DecodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply(snap.AppliedIndex)
	}
	if f.onRestore != nil {
		f.onRestore()
	}
	return nil
}

type fsmSnapshot struct{ snap *pb.StateSnapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	b, err := MarshalSnapshot(s.snap)
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// DecodeSnapshot decodes and checks the bytes of a persisted snapshot,
// returning the state they hold. It changes nothing: callers use it to
// vet a snapshot before handing it to raft (which cannot take a refusal).
func DecodeSnapshot(b []byte) (*State, *pb.StateSnapshot, error) {
	var snap pb.StateSnapshot
	if err := proto.Unmarshal(b, &snap); err != nil {
		return nil, nil, fmt.Errorf("decode snapshot: %w", err)
	}
	st, err := FromSnapshot(&snap)
	if err != nil {
		return nil, nil, fmt.Errorf("restore snapshot: %w", err)
	}
	return st, &snap, nil
}
