package cluster

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// memSink is a raft.SnapshotSink over a bytes.Buffer.
type memSink struct {
	bytes.Buffer
	failWrite         bool
	closed, cancelled bool
}

func (m *memSink) ID() string { return "mem" }

func (m *memSink) Write(p []byte) (int, error) {
	if m.failWrite {
		return 0, errors.New("disk full")
	}
	return m.Buffer.Write(p)
}

func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// readCloser records whether Restore closed it.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// TestRaftFSMLogTypes: only raft's command entries reach the FSM as
// commands; its own entries (configuration, no-op, barrier, ...) give a nil
// response and only advance the applied index, one by one or batched.
func TestRaftFSMLogTypes(t *testing.T) {
	b := encode(t, submitCmd(1, fsmpb.TaskType_TASK_TYPE_VACUUM))
	own := []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogBarrier, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated}
	t.Run("Apply", func(t *testing.T) {
		f := fsm.New()
		a := &raftFSM{f: f}
		if res, ok := a.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: b}).(*fsmpb.ApplyResult); !ok || fsm.ResultError(res) != nil {
			t.Fatalf("command entry: %v", res)
		}
		before := f.Hash()
		for i, typ := range own {
			if resp := a.Apply(&raft.Log{Index: uint64(2 + i), Type: typ, Data: b}); resp != nil {
				t.Fatalf("%v: response %v", typ, resp)
			}
		}
		if idx, _ := f.HashAt(); idx != uint64(1+len(own)) || taskCount(f) != 1 {
			t.Fatalf("applied index %d, %d tasks; want %d and 1", idx, taskCount(f), 1+len(own))
		}
		if f.Hash() != before {
			t.Fatal("raft's own entries changed the state's content")
		}
	})
	t.Run("ApplyBatch", func(t *testing.T) {
		f := fsm.New()
		logs := []*raft.Log{{Index: 1, Type: raft.LogCommand, Data: b}}
		for i, typ := range own {
			logs = append(logs, &raft.Log{Index: uint64(2 + i), Type: typ, Data: b})
		}
		out := (&raftFSM{f: f}).ApplyBatch(logs)
		if len(out) != len(logs) {
			t.Fatalf("%d results for %d entries", len(out), len(logs))
		}
		if _, ok := out[0].(*fsmpb.ApplyResult); !ok {
			t.Fatalf("command entry: %v", out[0])
		}
		for i, resp := range out[1:] {
			if resp != nil {
				t.Fatalf("%v: response %v", own[i], resp)
			}
		}
		if idx, _ := f.HashAt(); idx != uint64(len(logs)) || taskCount(f) != 1 {
			t.Fatalf("applied index %d, %d tasks; want %d and 1", idx, taskCount(f), len(logs))
		}
	})
}

// TestRaftFSMSnapshotRestore: Persist writes the snapshot into the sink and
// closes it; Restore reads it into another FSM, closes the reader, and the
// two hash alike.
func TestRaftFSMSnapshotRestore(t *testing.T) {
	a := &raftFSM{f: fsm.New()}
	a.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: encode(t, submitCmd(1, fsmpb.TaskType_TASK_TYPE_VACUUM))})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v; want closed only", sink.closed, sink.cancelled)
	}
	b := &raftFSM{f: fsm.New()}
	rc := &readCloser{Reader: bytes.NewReader(sink.Bytes())}
	if err := b.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if !rc.closed {
		t.Error("Restore did not close the reader")
	}
	if b.f.Hash() != a.f.Hash() {
		t.Error("restored hash differs from the snapshotted one")
	}

	garbage := &readCloser{Reader: bytes.NewReader([]byte("garbage\xff\x00"))}
	if err := b.Restore(garbage); err == nil {
		t.Error("Restore accepted garbage")
	}
	if !garbage.closed {
		t.Error("a failed Restore did not close the reader")
	}
}

// TestRaftFSMPersistWriteError: a sink that fails to write is cancelled,
// not closed, and Persist says so.
func TestRaftFSMPersistWriteError(t *testing.T) {
	a := &raftFSM{f: fsm.New()}
	a.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: encode(t, submitCmd(1, fsmpb.TaskType_TASK_TYPE_VACUUM))})
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{failWrite: true}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist ignored a write error")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink closed=%v cancelled=%v; want cancelled only", sink.closed, sink.cancelled)
	}
}
