package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestProgressForUnknownTasksDropped: progress reports for tasks that do
// not exist, for a stale fence, or for a task no attempt runs leave the
// leader-local progress map as it was; the current attempt's is recorded.
func TestProgressForUnknownTasksDropped(t *testing.T) {
	f := fsm.New()
	applyAll(t, f, now,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 2}),
		fsm.AssignCmd(1, "w1", nil, nil), // fence 3
	)
	s := New(Config{Now: func() time.Time { return now }}, nil, f, nil)
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	ctx := context.Background()
	for id := uint64(100); id < 10_100; id++ {
		if err := s.handleProgress(ctx, sess, &pb.TaskProgress{TaskId: id, Fence: id, Progress: 0.5, Step: "copy"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*pb.TaskProgress{
		{TaskId: 1, Fence: 2, Progress: 0.5}, // stale fence
		{TaskId: 2, Fence: 0, Progress: 0.5}, // pending: no attempt runs
	} {
		if err := s.handleProgress(ctx, sess, p); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	n := len(s.progress)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("the progress map holds %d entries after reports for no current attempt, want 0", n)
	}
	if err := s.handleProgress(ctx, sess, &pb.TaskProgress{TaskId: 1, Fence: 3, Progress: 0.25, Step: "compact"}); err != nil {
		t.Fatal(err)
	}
	if p, step, ok := s.Progress(1); !ok || p != 0.25 || step != "compact" {
		t.Fatalf("progress of the current attempt: %v %q %v, want 0.25 compact", p, step, ok)
	}
}
