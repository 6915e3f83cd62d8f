package cluster

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
)

// raftFSM adapts the fsm package's FSM to raft.FSM and raft.BatchingFSM:
// the only code that hands raft's log entries and snapshots to it.
type raftFSM struct{ f *fsm.FSM }

var (
	_ raft.FSM         = (*raftFSM)(nil)
	_ raft.BatchingFSM = (*raftFSM)(nil)
)

// Apply applies a single committed log entry.
func (a *raftFSM) Apply(l *raft.Log) interface{} {
	return a.f.Apply(entry(l))
}

// ApplyBatch applies committed entries together (see fsm.FSM.ApplyBatch).
func (a *raftFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	entries := make([]fsm.Entry, len(logs))
	for i, l := range logs {
		entries[i] = entry(l)
	}
	return a.f.ApplyBatch(entries)
}

// entry is what the FSM needs of a raft log entry: raft's own entries
// (configuration, no-op, barrier) only advance its applied index.
func entry(l *raft.Log) fsm.Entry {
	return fsm.Entry{Index: l.Index, Command: l.Type == raft.LogCommand, Data: l.Data}
}

// Snapshot captures the state quickly; the encoding happens in Persist.
func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.f.Snapshot()
	if err != nil {
		return nil, err
	}
	return &raftSnapshot{s: s}, nil
}

// Restore replaces the state with one read from a snapshot.
func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return a.f.Restore(rc)
}

type raftSnapshot struct{ s *fsm.Snapshot }

func (s *raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *raftSnapshot) Release() {}
