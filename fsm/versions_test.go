package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// unknownBodyBytes is a version-1 command whose body is a oneof member
// this build has no field for (tag 99): what a newer build's new command
// looks like to this one.
func unknownBodyBytes(t *testing.T) []byte {
	b := rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 5})
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	return protowire.AppendBytes(b, []byte{0x08, 0x01})
}

func testCmd() *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}}
}

// TestFSMHaltsAtUnknownCommand: a committed entry of a command version, or
// a body, this build does not know stops the FSM before it: nothing at or
// past it is applied (in that batch or any later one), the halt is
// reported once with the index, the version and what to do, and no
// snapshot is taken or installed past it. A build that knows the version
// applies the same log through.
func TestFSMHaltsAtUnknownCommand(t *testing.T) {
	vTest, err := Encode(3, testCmd())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		unknown []byte
		version string
	}{
		{"newer version", vTest, fmt.Sprintf("version %d", TestCommandVersion)},
		{"unknown body", unknownBodyBytes(t), "version 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s1 := rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 1, Body: submitCmd(vacuum, 1).Body})
			s2 := rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 2, Body: submitCmd(vacuum, 2).Body})
			s3 := rawBytes(t, &fsmpb.Command{Version: CommandVersion, Now: 4, Body: submitCmd(vacuum, 3).Body})
			logs := []Entry{
				{Index: 1, Command: true, Data: s1},
				{Index: 2},
				{Index: 3, Command: true, Data: s2},
				{Index: 4, Command: true, Data: tc.unknown},
				{Index: 5, Command: true, Data: s3},
			}
			f := New()
			var halts []error
			f.OnHalt(func(err error) { halts = append(halts, err) })
			snapBefore, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			f.ApplyBatch(logs)
			f.ApplyBatch([]Entry{{Index: 6, Command: true, Data: s3}})

			var tasks int
			f.Read(func(s *State) { tasks = len(s.Tasks(TaskFilter{})) })
			if tasks != 2 {
				t.Errorf("%d tasks applied; want 2 (the entries before index 4 only)", tasks)
			}
			if len(halts) != 1 {
				t.Fatalf("halt reported %d times; want once", len(halts))
			}
			var u *UnknownCommandError
			if !errors.As(halts[0], &u) || u.Index != 4 {
				t.Fatalf("halt %v; want an UnknownCommandError at index 4", halts[0])
			}
			msg := halts[0].Error()
			for _, want := range []string{"raft entry 4", tc.version, "upgrade this node's binary"} {
				if !strings.Contains(msg, want) {
					t.Errorf("halt message %q does not say %q", msg, want)
				}
			}
			if f.Halted() == nil {
				t.Error("Halted() is nil after the halt")
			}
			if _, err := f.Snapshot(); err == nil {
				t.Error("a snapshot was taken past the unknown entry")
			}
			var sink strings.Builder
			if _, err := snapBefore.WriteTo(&sink); err != nil {
				t.Fatal(err)
			}
			if err := f.Restore(strings.NewReader(sink.String())); err == nil {
				t.Error("a snapshot was installed past the unknown entry")
			}

			// The upgraded binary replays the kept log and applies it all.
			if tc.name == "newer version" {
				up := NewWithVersion(TestCommandVersion)
				up.OnHalt(func(err error) { t.Errorf("test-version build halted: %v", err) })
				up.ApplyBatch(logs)
				up.Read(func(s *State) {
					if n := len(s.Tasks(TaskFilter{})); n != 3 || s.TestCommandIndex() != 4 {
						t.Errorf("upgraded build: %d tasks, test command at %d; want 3 and 4", n, s.TestCommandIndex())
					}
				})
			}
		})
	}
}

// TestAgreedVersion: the leader may write the lowest version any voter
// advertised; a voter that advertised nothing counts as the base version.
func TestAgreedVersion(t *testing.T) {
	for _, tc := range []struct {
		voters []string
		adv    map[string]uint32
		want   uint32
	}{
		{nil, nil, 1},
		{[]string{"a", "b", "c"}, map[string]uint32{"a": 2, "b": 2, "c": 2}, 2},
		{[]string{"a", "b", "c"}, map[string]uint32{"a": 2, "b": 2, "c": 1}, 1},
		{[]string{"a", "b", "c"}, map[string]uint32{"a": 2, "b": 2}, 1},
		{[]string{"a", "b"}, map[string]uint32{"a": 3, "b": 2, "x": 1}, 2},
		{[]string{"a"}, map[string]uint32{"a": 0}, 1},
	} {
		if got := AgreedVersion(tc.voters, tc.adv); got != tc.want {
			t.Errorf("AgreedVersion(%v, %v) = %d; want %d", tc.voters, tc.adv, got, tc.want)
		}
	}
}

// TestAdvertisedVersion: SetAdminAddr records the advertised version (0,
// from builds that advertised nothing, as the base version), through
// snapshots too; ForgetAdmin drops it with the address.
func TestAdvertisedVersion(t *testing.T) {
	s := NewState()
	adv := func(idx uint64, id string, v uint32) {
		c := adminCmd(id, "10.0.0.1:7000")
		c.Version = CommandVersion
		c.GetSetAdminAddr().MaxCommandVersion = v
		if r := s.Apply(idx, c); r.ErrorCode != 0 {
			t.Fatalf("advertise: %v", r.Error)
		}
	}
	adv(3, "a", 0)
	if v, ok := s.AdminVersion("a"); !ok || v != CommandVersion {
		t.Fatalf("a advertised nothing: version %d (%v); want %d", v, ok, CommandVersion)
	}
	adv(7, "a", 2)
	adv(9, "b", 1)
	if v, ok := s.AdminVersion("a"); !ok || v != 2 {
		t.Fatalf("a advertised %d (%v); want 2", v, ok)
	}
	c, err := FromSnapshot(s.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.AdminVersion("a"); v != 2 || c.Hash() != s.Hash() {
		t.Fatalf("after a snapshot: version %d, hashes equal %v", v, c.Hash() == s.Hash())
	}
	forget := &fsmpb.Command{Version: CommandVersion, Body: &fsmpb.Command_ForgetAdmin{ForgetAdmin: &fsmpb.ForgetAdmin{Id: "a"}}}
	if r := s.Apply(10, forget); r.ErrorCode != 0 {
		t.Fatalf("forget: %v", r.Error)
	}
	if _, ok := s.AdminVersion("a"); ok {
		t.Error("a's version survived ForgetAdmin")
	}
	if _, ok := s.AdminAddr("a"); ok {
		t.Error("a's address survived ForgetAdmin")
	}
	if r := s.Apply(11, forget); r.ErrorCode != 0 {
		t.Errorf("forgetting a forgotten admin: %v; want no error", r.Error)
	}
	if v, _ := s.AdminVersion("b"); v != 1 {
		t.Errorf("b's version %d after forgetting a; want 1", v)
	}
}
