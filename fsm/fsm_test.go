package fsm

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("network reset") }

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// logEntries wraps encoded commands as log entries and sprinkles entries
// that are not commands (raft's configuration, no-op and barrier entries,
// with or without data) and one undecodable command between them,
// numbering everything 1, 2, 3, ...
func logEntries(log [][]byte, seed uint64) []Entry {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []Entry
	add := func(command bool, data []byte) {
		out = append(out, Entry{Index: uint64(len(out) + 1), Command: command, Data: data})
	}
	for i, b := range log {
		switch r.IntN(12) {
		case 0:
			add(false, []byte("not a command"))
		case 1, 2:
			add(false, nil)
		}
		if i == len(log)/2 {
			add(true, []byte{0xff, 0xff, 0xff}) // undecodable
		}
		if cmd, err := Decode(b); err == nil && (cmd.Version != CommandVersion || cmd.Body == nil) {
			// A command this build does not know halts the FSM (see
			// TestFSMHaltsAtUnknownCommand); these logs stay within the known.
			continue
		}
		add(true, b)
	}
	return out
}

// TestFSMApplyBatchMatchesOneByOne: ApplyBatch over random chunks, FSM.Apply
// one entry at a time and State.Apply on the decoded commands all give the
// same results and the same Hash.
func TestFSMApplyBatchMatchesOneByOne(t *testing.T) {
	for seed := uint64(3000); seed < 3010; seed++ {
		logs := logEntries(randomLog(t, seed, propSteps), seed)
		batched, single := New(), New()
		var notified []uint64
		batched.OnApply(func(i uint64) { notified = append(notified, i) })

		r := rand.New(rand.NewPCG(seed, 2))
		var batchOut []interface{}
		var lastOfBatches []uint64
		for i := 0; i < len(logs); {
			n := min(1+r.IntN(16), len(logs)-i)
			out := batched.ApplyBatch(logs[i : i+n])
			if len(out) != n {
				t.Fatalf("ApplyBatch returned %d results for %d logs", len(out), n)
			}
			batchOut = append(batchOut, out...)
			lastOfBatches = append(lastOfBatches, logs[i+n-1].Index)
			i += n
		}
		if !equalU64(notified, lastOfBatches) {
			t.Fatalf("OnApply got %v, want %v", notified, lastOfBatches)
		}

		direct := NewState()
		for i, l := range logs {
			got := single.Apply(l)
			if !l.Command {
				if got != nil || batchOut[i] != nil {
					t.Fatalf("entry %d (not a command): response %v / %v, want nil", l.Index, got, batchOut[i])
				}
				continue
			}
			ra, ok1 := got.(*fsmpb.ApplyResult)
			rb, ok2 := batchOut[i].(*fsmpb.ApplyResult)
			if !ok1 || !ok2 || !proto.Equal(ra, rb) {
				t.Fatalf("entry %d: %v vs %v", l.Index, got, batchOut[i])
			}
			cmd, err := Decode(l.Data)
			if err != nil {
				if ra.ErrorCode != codeInvalid || ra.Index != l.Index {
					t.Fatalf("undecodable entry gave %v", ra)
				}
				continue
			}
			if rd := direct.Apply(l.Index, cmd); !proto.Equal(rd, ra) {
				t.Fatalf("entry %d: State.Apply %v, FSM %v", l.Index, rd, ra)
			}
		}
		if batched.Hash() != single.Hash() {
			t.Fatalf("seed %d: batched and single hashes differ", seed)
		}
		// State.Apply never saw the trailing non-command entries' indexes.
		var last uint64
		single.Read(func(s *State) { last = s.AppliedIndex(); checkInvariants(t, s) })
		if last != logs[len(logs)-1].Index {
			t.Fatalf("applied index %d, want %d", last, logs[len(logs)-1].Index)
		}
		if c, _ := FromSnapshot(direct.Snapshot()); c != nil {
			c.appliedIndex = last
			if c.Hash() != single.Hash() {
				t.Fatalf("seed %d: FSM and State differ", seed)
			}
		}
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFSMNonCommandEntries: entries that are not commands give a nil
// response and change nothing but the applied index, even with data that
// decodes as a command.
func TestFSMNonCommandEntries(t *testing.T) {
	f := New()
	b, _ := Encode(1, submitCmd(vacuum, 1))
	f.Apply(Entry{Index: 1, Command: true, Data: b})
	before := f.Hash()
	for i := uint64(2); i <= 5; i++ {
		if resp := f.Apply(Entry{Index: i, Data: b}); resp != nil {
			t.Fatalf("entry %d: response %v", i, resp)
		}
	}
	var st *State
	f.Read(func(s *State) { st = s })
	if st.AppliedIndex() != 5 || len(st.tasks) != 1 {
		t.Fatalf("applied %d tasks %d", st.AppliedIndex(), len(st.tasks))
	}
	if f.Hash() != before {
		t.Fatalf("the hash digests the applied index, not only the content")
	}
}

// TestFSMSnapshotRestore: Snapshot + WriteTo, Restore on a new FSM gives the
// same Hash, and both stay equal as more entries are applied. The snapshot
// is point-in-time even if WriteTo runs after more applies.
func TestFSMSnapshotRestore(t *testing.T) {
	logs := logEntries(randomLog(t, 4000, 2*propSteps), 4000)
	half := len(logs) / 2
	a := New()
	a.ApplyBatch(logs[:half])
	want := a.Hash()

	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// raft may persist after further entries are applied.
	a.ApplyBatch(logs[half : half+10])
	var sink bytes.Buffer
	if n, err := snap.WriteTo(&sink); err != nil || n != int64(sink.Len()) {
		t.Fatalf("WriteTo: %d bytes, %v; wrote %d", n, err, sink.Len())
	}

	b := New()
	var restoredAt uint64
	b.OnApply(func(i uint64) { restoredAt = i })
	if err := b.Restore(bytes.NewReader(sink.Bytes())); err != nil {
		t.Fatal(err)
	}
	if b.Hash() != want {
		t.Fatalf("restored hash differs from the state at snapshot time")
	}
	if restoredAt != logs[half-1].Index {
		t.Fatalf("OnApply after restore got %d, want %d", restoredAt, logs[half-1].Index)
	}
	b.Read(func(s *State) { checkInvariants(t, s) })

	b.ApplyBatch(logs[half : half+10])
	if a.Hash() != b.Hash() {
		t.Fatalf("hashes differ after catching up")
	}
	for _, l := range logs[half+10:] {
		ra, rb := a.Apply(l), b.Apply(l)
		if ra != nil || rb != nil {
			if !proto.Equal(ra.(*fsmpb.ApplyResult), rb.(*fsmpb.ApplyResult)) {
				t.Fatalf("entry %d: %v vs %v", l.Index, ra, rb)
			}
		}
	}
	if a.Hash() != b.Hash() {
		t.Fatalf("hashes differ after the rest of the log")
	}
}

func TestFSMSnapshotWriteError(t *testing.T) {
	f := New()
	b, _ := Encode(1, submitCmd(vacuum, 1))
	f.Apply(Entry{Index: 1, Command: true, Data: b})
	snap, _ := f.Snapshot()
	if _, err := snap.WriteTo(errWriter{}); err == nil {
		t.Fatalf("WriteTo ignored a write error")
	}
}

// TestFSMRestoreGarbage: a bad snapshot makes Restore fail and leaves the
// current state (and its readers) intact.
func TestFSMRestoreGarbage(t *testing.T) {
	f := New()
	f.ApplyBatch(logEntries(randomLog(t, 5000, propSteps), 5000))
	want := f.Hash()
	called := false
	f.OnApply(func(uint64) { called = true })

	mk := func(snap *fsmpb.StateSnapshot) []byte {
		b, err := MarshalSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r := rand.New(rand.NewPCG(5000, 3))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(r.UintN(256))
	}
	good, _ := MarshalSnapshot(NewState().Snapshot())
	cases := map[string]io.Reader{
		"garbage":        bytes.NewReader([]byte("garbage\xff\x00")),
		"random":         bytes.NewReader(random),
		"empty":          bytes.NewReader(nil),
		"truncated":      bytes.NewReader(mk(f.state.Snapshot())[:100]),
		"wrong version":  bytes.NewReader(mk(&fsmpb.StateSnapshot{Version: SnapshotVersion + 1, NextTaskId: 1})),
		"two active":     bytes.NewReader(mk(&fsmpb.StateSnapshot{Version: SnapshotVersion, NextTaskId: 3, Tasks: []*fsmpb.Task{{Id: 1, VolumeId: 1, State: pending}, {Id: 2, VolumeId: 1, State: running}}})),
		"read error":     io.MultiReader(bytes.NewReader(good), errReader{}),
		"task id beyond": bytes.NewReader(mk(&fsmpb.StateSnapshot{Version: SnapshotVersion, NextTaskId: 1, Tasks: []*fsmpb.Task{{Id: 1, VolumeId: 1, State: completed}}})),
	}
	for name, rd := range cases {
		if err := f.Restore(rd); err == nil {
			t.Errorf("%s: Restore accepted it", name)
		}
		if f.Hash() != want {
			t.Fatalf("%s: failed Restore changed the state", name)
		}
	}
	if called {
		t.Fatalf("OnApply called for a failed Restore")
	}
	f.Read(func(s *State) { checkInvariants(t, s) })
}
