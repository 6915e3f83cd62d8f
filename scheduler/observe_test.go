package scheduler

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func TestObserveCompletedAndLoad(t *testing.T) {
	f := fsm.New()
	t0 := now.Add(-time.Hour)
	index := uint64(0)
	apply := func(at time.Time, c *fsmpb.Command) {
		t.Helper()
		b, err := fsm.Encode(at.UnixNano(), c)
		if err != nil {
			t.Fatal(err)
		}
		index++
		if err := fsm.ResultError(f.Apply(fsm.Entry{Index: index, Command: true, Data: b}).(*fsmpb.ApplyResult)); err != nil {
			t.Fatalf("command %d: %v", index, err)
		}
	}
	apply(t0, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}))
	apply(t0, fsm.AssignCmd(1, "w1", nil, nil))
	apply(t0.Add(time.Second), fsm.StartCmd(1, 2, ""))
	apply(t0.Add(91*time.Second), fsm.CompleteCmd(1, 2, "", nil))

	type event struct {
		name string
		typ  fsmpb.TaskType
		d    time.Duration
	}
	var got []event
	s := New(Config{Now: func() time.Time { return now }, Observe: func(name string, typ fsmpb.TaskType, d time.Duration) {
		got = append(got, event{name, typ, d})
	}}, nil, f, nil)
	s.observeCompleted(1)
	s.observeCompleted(99) // unknown: nothing
	if len(got) != 1 || got[0] != (event{EventTaskCompleted, fsmpb.TaskType_TASK_TYPE_VACUUM, 90 * time.Second}) {
		t.Fatalf("observed %v; want one vacuum completion of 90s", got)
	}

	if w, sl, ok := s.Load(); ok || w != 0 || sl != 0 {
		t.Fatalf("Load when not running = %d, %d, %v; want 0, 0, false", w, sl, ok)
	}
	s.running = true
	s.sessions["w1"] = &Session{id: "w1", max: 2}
	s.sessions["w2"] = &Session{id: "w2", max: 3}
	if w, sl, ok := s.Load(); !ok || w != 2 || sl != 5 {
		t.Fatalf("Load = %d, %d, %v; want 2 workers, 5 slots, true", w, sl, ok)
	}
}
