package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// persisted returns the bytes raft would store for f's snapshot now.
func persisted(t *testing.T, f *FSM) string {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink strings.Builder
	if _, err := snap.WriteTo(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.String()
}

// TestRestoreRefusesNewerSnapshot: a snapshot records the highest command
// version the state reflects, and a build that applies less refuses it and
// halts for good (told once, with the sentence), keeping its state; raft
// only logs a refused install, so the halt is what stops the process. A
// build that knows the version restores it.
func TestRestoreRefusesNewerSnapshot(t *testing.T) {
	v2, err := Encode(3, testCmd())
	if err != nil {
		t.Fatal(err)
	}
	up := NewWithVersion(TestCommandVersion)
	up.ApplyBatch([]Entry{
		{Index: 3, Command: true, Data: rawBytes(t, &fsmpb.Command{Version: CommandVersion, Body: submitCmd(vacuum, 1).Body})},
		{Index: 4, Command: true, Data: v2},
	})
	data := persisted(t, up)

	old := New()
	var halts []error
	old.OnHalt(func(err error) { halts = append(halts, err) })
	before := old.Hash()
	err = old.Restore(strings.NewReader(data))
	var tooNew *SnapshotTooNewError
	if !errors.As(err, &tooNew) || tooNew.Version != TestCommandVersion || tooNew.Index != 4 {
		t.Fatalf("restore of a snapshot past a version-%d entry: %v; want a SnapshotTooNewError at 4", TestCommandVersion, err)
	}
	if len(halts) != 1 || old.Halted() == nil {
		t.Fatalf("halt reported %d times, Halted() = %v; want once", len(halts), old.Halted())
	}
	for _, want := range []string{fmt.Sprintf("version %d", TestCommandVersion), "upgrade this node's binary"} {
		if !strings.Contains(halts[0].Error(), want) {
			t.Errorf("halt %q does not say %q", halts[0], want)
		}
	}
	if old.Hash() != before {
		t.Error("the refused snapshot changed the state")
	}
	// Raft installs it again (the leader resends; a restart restores it
	// from disk): still refused, and the halt is not reported twice.
	if err := old.Restore(strings.NewReader(data)); err == nil || len(halts) != 1 {
		t.Errorf("second restore: %v, %d halts; want a refusal and still one halt", err, len(halts))
	}

	again := NewWithVersion(TestCommandVersion)
	if err := again.Restore(strings.NewReader(data)); err != nil {
		t.Fatalf("a build that knows version 2 refused the snapshot: %v", err)
	}
	if again.Hash() != up.Hash() {
		t.Error("restored state differs from the snapshotted one")
	}
	var w uint32
	again.Read(func(s *State) { w = s.WrittenVersion() })
	if w != TestCommandVersion {
		t.Errorf("restored written version %d; want %d", w, TestCommandVersion)
	}
}

// TestBaseVersionSnapshotUnchanged: a state that only ever saw base-version
// commands records no version in its snapshot (as earlier builds wrote
// them), and restores from an earlier build's snapshot to the same hash.
func TestBaseVersionSnapshotUnchanged(t *testing.T) {
	f := New()
	f.ApplyBatch([]Entry{{Index: 3, Command: true, Data: rawBytes(t, &fsmpb.Command{Version: CommandVersion, Body: submitCmd(vacuum, 1).Body})}})
	var snap *fsmpb.StateSnapshot
	f.Read(func(s *State) { snap = s.Snapshot() })
	if snap.MaxCommandVersion != 0 {
		t.Errorf("base-version snapshot records version %d; want 0 (unset)", snap.MaxCommandVersion)
	}
}

// TestOldBuildSnapshotHashesLike: a node that replayed an earlier build's
// SetAdminAddr (no version advertised) and one that restored that build's
// snapshot covering it hold equal states, and stay equal after the admin
// republishes: the record is the version alone, not when it was seen.
func TestOldBuildSnapshotHashesLikeReplay(t *testing.T) {
	old := func() *fsmpb.Command {
		return &fsmpb.Command{Version: 1, Body: &fsmpb.Command_SetAdminAddr{SetAdminAddr: &fsmpb.SetAdminAddr{Id: "a", GrpcAddr: "10.0.0.1:7000"}}}
	}
	replayed := NewState()
	replayed.Apply(50, old())
	restored, err := FromSnapshot(&fsmpb.StateSnapshot{Version: SnapshotVersion, NextTaskId: 1, AppliedIndex: 50,
		Admins: []*fsmpb.AdminNode{{Id: "a", GrpcAddr: "10.0.0.1:7000"}}})
	if err != nil {
		t.Fatal(err)
	}
	if replayed.Hash() != restored.Hash() {
		t.Errorf("at 50: replayed and restored states differ")
	}
	for _, v := range []uint32{1, 2} {
		rep := old()
		rep.GetSetAdminAddr().MaxCommandVersion = v
		replayed.Apply(120+uint64(v), rep)
		restored.Apply(120+uint64(v), proto.Clone(rep).(*fsmpb.Command))
		if replayed.Hash() != restored.Hash() {
			t.Errorf("after republishing version %d: replayed and restored states differ", v)
		}
	}
}

// TestFSMHaltsAtUnknownNestedField: a known command carrying a field this
// build does not know, deep inside its body, halts the FSM like an unknown
// body would (applying it would silently drop what a newer build meant);
// commands whose every field this build knows, nested lists included, do
// not.
func TestFSMHaltsAtUnknownNestedField(t *testing.T) {
	withUnknown := &fsmpb.SubmitTask{Type: vacuum, VolumeId: 7, Params: []*fsmpb.Param{{Key: "k", Value: "v"}}}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	bad := rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 1, Body: &fsmpb.Command_SubmitTask{SubmitTask: withUnknown}})

	// Also deeper: an unknown field in a ShardPlacement of a CompleteTask.
	sp := &fsmpb.ShardPlacement{ShardId: 1, Server: "s1"}
	sp.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 42, protowire.BytesType), []byte("x")))
	deep := rawBytes(t, completeCmdV(9, 9, &fsmpb.CapacityChange{TaskId: 9, Shards: []*fsmpb.ShardPlacement{{ShardId: 0, Server: "s0"}, sp}}))

	known := [][]byte{
		rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 1, Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: vacuum, VolumeId: 8, Params: []*fsmpb.Param{{Key: "k", Value: "v"}}}}}),
		rawBytes(t, completeCmdV(9, 9, &fsmpb.CapacityChange{TaskId: 9, Shards: []*fsmpb.ShardPlacement{{ShardId: 0, Server: "s0"}}})),
		rawBytes(t, &fsmpb.Command{Version: CommandVersion, Body: &fsmpb.Command_RegisterWorker{RegisterWorker: &fsmpb.RegisterWorker{Worker: &fsmpb.Worker{Id: "w", Capabilities: []fsmpb.TaskType{vacuum}}}}}),
		rawBytes(t, &fsmpb.Command{Version: CommandVersion, Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: 1, WorkerId: "w", Servers: []string{"a"}}}}),
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"in SubmitTask", bad}, {"in a ShardPlacement of CompleteTask", deep}} {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			var halts []error
			f.OnHalt(func(err error) { halts = append(halts, err) })
			var logs []Entry
			for i, b := range known {
				logs = append(logs, Entry{Index: uint64(i + 1), Command: true, Data: b})
			}
			logs = append(logs, Entry{Index: 10, Command: true, Data: tc.data})
			out := f.ApplyBatch(logs)
			for i := range known {
				if _, ok := out[i].(*fsmpb.ApplyResult); !ok {
					t.Errorf("known command %d: result %v; want it applied", i+1, out[i])
				}
			}
			var u *UnknownCommandError
			if len(halts) != 1 || !errors.As(halts[0], &u) || u.Index != 10 || !u.Fields {
				t.Fatalf("halts %v; want one UnknownCommandError for fields at index 10", halts)
			}
			if !strings.Contains(halts[0].Error(), "fields this build does not know") {
				t.Errorf("halt %q does not say it holds unknown fields", halts[0])
			}
			var tasks int
			f.Read(func(s *State) { tasks = len(s.Tasks(TaskFilter{})) })
			if tasks != 1 {
				t.Errorf("%d tasks; want 1 (the entry with the unknown field not applied)", tasks)
			}
		})
	}
}

func completeCmdV(id, fence uint64, ch *fsmpb.CapacityChange) *fsmpb.Command {
	c := completeCmd(id, fence, ch)
	c.Version = CommandVersion
	return c
}

// TestHaltedEntryOutcomeUnknown: an entry committed after the halt is
// answered with a HaltedError (its outcome is unknown on this node, whose
// peers may have applied it), not with a refusal.
func TestHaltedEntryOutcomeUnknown(t *testing.T) {
	v2, err := Encode(3, testCmd())
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	out := f.ApplyBatch([]Entry{
		{Index: 4, Command: true, Data: v2},
		{Index: 5, Command: true, Data: rawBytes(t, &fsmpb.Command{Version: CommandVersion, Body: submitCmd(vacuum, 1).Body})},
	})
	for i, o := range out {
		var h *HaltedError
		err, _ := o.(error)
		if !errors.As(err, &h) || h.Index != uint64(4+i) || !strings.Contains(err.Error(), "outcome is unknown") {
			t.Errorf("entry %d: result %v; want a HaltedError saying its outcome is unknown", 4+i, o)
		}
	}
}
