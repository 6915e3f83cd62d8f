package worker

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

func spec(id, fence uint64) *pb.TaskSpec {
	return &pb.TaskSpec{Task: &fsmpb.Task{Id: id, Fence: fence, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(id)}}
}

func ids(t *testing.T, j *Journal) map[uint64]*Entry {
	t.Helper()
	all, err := j.All()
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*Entry{}
	for _, e := range all {
		out[e.Spec.Task.Id] = e
	}
	return out
}

func TestJournalSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(&Entry{Spec: spec(1, 10)}); err != nil {
		t.Fatal(err)
	}
	done := &pb.TaskCompleted{TaskId: 2, Fence: 20, Change: &fsmpb.CapacityChange{OldSize: 5, NewSize: 3}}
	if err := j.Put(&Entry{Spec: spec(2, 20), Completed: done}); err != nil {
		t.Fatal(err)
	}
	if err := j.db.Close(); err != nil { // a crash: no Flush, no Close bookkeeping
		t.Fatal(err)
	}
	j, err = OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	got := ids(t, j)
	if len(got) != 2 || got[1].Completed != nil || got[2].Completed.GetChange().GetNewSize() != 3 {
		t.Fatalf("after reopen: %v", got)
	}
}

func TestJournalDeleteIsDeferredAndFenced(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		if err := j.Put(&Entry{Spec: spec(id, id*10)}); err != nil {
			t.Fatal(err)
		}
	}
	j.Delete(1, 10) // current fence: goes
	j.Delete(2, 99) // stale fence: stays
	if got := ids(t, j); len(got) != 3 {
		t.Fatalf("deletes applied before any write: %d entries", len(got))
	}
	if err := j.Put(&Entry{Spec: spec(4, 40)}); err != nil { // carries the deletes
		t.Fatal(err)
	}
	got := ids(t, j)
	if _, ok := got[1]; ok {
		t.Fatal("task 1 still journalled after its delete rode along with a put")
	}
	if _, ok := got[2]; !ok {
		t.Fatal("task 2 deleted with a stale fence")
	}
	j.Delete(3, 30)
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ids(t, j)[3]; ok {
		t.Fatal("task 3 still journalled after Flush")
	}
	// A delete queued for a task that is then re-put (a new attempt) must
	// not remove the new entry.
	j.Delete(4, 40)
	if err := j.Put(&Entry{Spec: spec(4, 41)}); err != nil {
		t.Fatal(err)
	}
	if e := ids(t, j)[4]; e == nil || e.Spec.Task.Fence != 41 {
		t.Fatalf("new attempt of task 4 lost: %v", e)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestJournalRefusesSecondOpener(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := OpenJournal(dir); err == nil {
		t.Fatal("a second worker process opened the same journal")
	}
}
