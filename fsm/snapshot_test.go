package fsm

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func validSnapshot() *fsmpb.StateSnapshot {
	return &fsmpb.StateSnapshot{
		Version:      SnapshotVersion,
		NextTaskId:   5,
		AppliedIndex: 40,
		Tasks: []*fsmpb.Task{
			{Id: 1, Type: vacuum, VolumeId: 1, State: completed, Attempt: 1, Fence: 3},
			{Id: 2, Type: vacuum, VolumeId: 1, State: running, Attempt: 2, Fence: 30, WorkerId: "w1"},
			{Id: 4, Type: ecType, VolumeId: 2, State: pending, Attempt: 1},
		},
		CapacityChanges: []*fsmpb.CapacityChange{{TaskId: 1, Type: vacuum, VolumeId: 1}},
		Workers:         []*fsmpb.Worker{{Id: "w1", Capabilities: []fsmpb.TaskType{vacuum}}},
		Admins:          []*fsmpb.AdminNode{{Id: "a1", GrpcAddr: "x:1"}},
	}
}

func TestFromSnapshotAcceptsValid(t *testing.T) {
	s, err := FromSnapshot(validSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, s)
	if s.AppliedIndex() != 40 || s.nextTaskID != 5 || !s.HasUnreportedChange(1) {
		t.Fatalf("restored %v", s.Snapshot())
	}
	if at, ok := s.ActiveTask(1); !ok || at.Id != 2 {
		t.Fatalf("volume 1 reservation not rebuilt")
	}
	if a, _ := s.AdminAddr("a1"); a != "x:1" {
		t.Fatalf("admin %q", a)
	}
	// The restored state keeps working: ids continue from NextTaskId and the
	// running task's fence is honoured.
	c := submitCmd(balance, 3)
	c.Version = CommandVersion
	if r := s.Apply(41, c); r.Task.GetId() != 5 {
		t.Fatalf("new task %v", r)
	}
	c = progressCmd(2, 30, 10, "")
	c.Version = CommandVersion
	if r := s.Apply(42, c); r.ErrorCode != codeNone {
		t.Fatalf("progress after restore: %v", r)
	}
	checkInvariants(t, s)
}

// TestFromSnapshotRejects: incoherent snapshots are refused.
func TestFromSnapshotRejects(t *testing.T) {
	// withTask is the mutation that adds task to a snapshot's tasks.
	withTask := func(task *fsmpb.Task) func(*fsmpb.StateSnapshot) {
		return func(s *fsmpb.StateSnapshot) { s.Tasks = append(s.Tasks, task) }
	}
	cases := []struct {
		name   string
		mutate func(*fsmpb.StateSnapshot)
		want   string
	}{
		{"version 0", func(s *fsmpb.StateSnapshot) { s.Version = 0 }, "version"},
		{"version 2", func(s *fsmpb.StateSnapshot) { s.Version = SnapshotVersion + 1 }, "version"},
		{"two active on one volume", withTask(&fsmpb.Task{Id: 3, Type: balance, VolumeId: 1, State: assigned, Attempt: 1, Fence: 9}), "two active"},
		{"two pending on one volume", withTask(&fsmpb.Task{Id: 3, Type: balance, VolumeId: 2, State: pending, Attempt: 1}), "two active"},
		{"duplicate task id", withTask(&fsmpb.Task{Id: 1, Type: vacuum, VolumeId: 9, State: failed, Attempt: 1}), "twice"},
		{"duplicate active task id", withTask(&fsmpb.Task{Id: 4, Type: ecType, VolumeId: 2, State: pending, Attempt: 1}), ""},
		{"task id == next", withTask(&fsmpb.Task{Id: 5, Type: vacuum, VolumeId: 9, State: failed, Attempt: 1}), "outside"},
		{"task id > next", withTask(&fsmpb.Task{Id: 500, Type: vacuum, VolumeId: 9, State: failed, Attempt: 1}), "outside"},
		{"task id 0", withTask(&fsmpb.Task{Id: 0, Type: vacuum, VolumeId: 9, State: failed, Attempt: 1}), "outside"},
		{"next id 0 with tasks", func(s *fsmpb.StateSnapshot) { s.NextTaskId = 0 }, "next task id 0"},
		{"next id 0 without tasks", func(s *fsmpb.StateSnapshot) { s.NextTaskId = 0; s.Tasks = nil; s.CapacityChanges = nil }, "next task id 0"},
		{"duplicate capacity change", func(s *fsmpb.StateSnapshot) {
			s.CapacityChanges = append(s.CapacityChanges, &fsmpb.CapacityChange{TaskId: 1, VolumeId: 1}, &fsmpb.CapacityChange{TaskId: 1, VolumeId: 1})
		}, "twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := validSnapshot()
			tc.mutate(snap)
			s, err := FromSnapshot(snap)
			if err == nil {
				t.Fatalf("accepted: %v", s.Snapshot())
			}
			if s != nil {
				t.Fatalf("returned a state with the error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestSnapshotSorted: every list in a snapshot is sorted by its key, whatever
// order the maps were filled in.
func TestSnapshotSorted(t *testing.T) {
	h := newHarness(t)
	for _, vol := range []uint32{9, 3, 7, 1, 5} {
		tk := h.taskIn(running, vol)
		h.ok(completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{}))
	}
	for _, w := range []string{"w9", "w1", "w5"} {
		h.ok(registerCmd(&fsmpb.Worker{Id: w}))
	}
	for _, a := range []string{"z", "a", "m"} {
		h.ok(adminCmd(a, a+":1"))
	}
	snap := h.s.Snapshot()
	for i := 1; i < len(snap.Tasks); i++ {
		if snap.Tasks[i-1].Id >= snap.Tasks[i].Id {
			t.Fatalf("tasks unsorted")
		}
	}
	for i := 1; i < len(snap.CapacityChanges); i++ {
		if snap.CapacityChanges[i-1].TaskId >= snap.CapacityChanges[i].TaskId {
			t.Fatalf("changes unsorted")
		}
	}
	if snap.Workers[0].Id != "w1" || snap.Workers[2].Id != "w9" || snap.Admins[0].Id != "a" || snap.Admins[2].Id != "z" {
		t.Fatalf("workers/admins unsorted: %v %v", snap.Workers, snap.Admins)
	}
	if len(h.s.Tasks(TaskFilter{VolumeID: 3})) != 1 || len(h.s.Tasks(TaskFilter{States: []fsmpb.TaskState{completed}})) != 5 ||
		len(h.s.Tasks(TaskFilter{States: []fsmpb.TaskState{pending, running}})) != 0 {
		t.Fatalf("TaskFilter")
	}
}
