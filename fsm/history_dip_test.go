package fsm

import (
	"slices"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestEncodingVersionNeverDipsBelowWritten: while a member is being added
// (it has advertised nothing yet, so it counts as the base version), the
// leader still writes attempt history in the version already written: a
// requeue written as version 1 would not move attempt 1's servers into
// the task's history, and the next version-2 assignment would overwrite
// them.
func TestEncodingVersionNeverDipsBelowWritten(t *testing.T) {
	f := New()
	idx := uint64(1)
	ids := []string{"leader", "joining"} // neither advertised anything
	apply := func(agreed uint32, c *fsmpb.Command) {
		t.Helper()
		b, err := EncodeAgreed(int64(idx), agreed, c)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(Entry{Index: idx, Command: true, Data: b})
		idx++
	}
	task := func() *fsmpb.Task {
		var tk *fsmpb.Task
		f.Read(func(s *State) { tk, _ = s.Task(1) })
		return tk
	}
	apply(HistoryVersion, submitCmd(ecType, 7))
	apply(HistoryVersion, &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: 1, WorkerId: "w", Servers: []string{"a:1.2", "b:1.2"}}}})
	if v := f.EncodingVersion(ids); v != HistoryVersion {
		t.Fatalf("EncodingVersion after a version-%d entry, members not advertised: %d", HistoryVersion, v)
	}
	apply(f.EncodingVersion(ids), &fsmpb.Command{Body: &fsmpb.Command_RequeueTask{RequeueTask: &fsmpb.RequeueTask{TaskId: 1, Fence: task().Fence}}})
	apply(f.EncodingVersion(ids), &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: 1, WorkerId: "w", Servers: []string{"c:1.2"}}}})
	apply(f.EncodingVersion(ids), &fsmpb.Command{Body: &fsmpb.Command_RequeueTask{RequeueTask: &fsmpb.RequeueTask{TaskId: 1, Fence: task().Fence}}})
	got := task().EarlierServers
	for _, want := range []string{"a:1.2", "b:1.2", "c:1.2"} {
		if !slices.Contains(got, want) {
			t.Errorf("history after two attempts %v lacks %s", got, want)
		}
	}
	// A fresh state has written nothing: the base version.
	if v := New().EncodingVersion(ids); v != CommandVersion {
		t.Errorf("EncodingVersion of an empty state: %d, want %d", v, CommandVersion)
	}
}
