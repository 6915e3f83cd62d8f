package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// gateComplete holds every CompleteTask proposal until release closes.
type gateComplete struct {
	fsmApplier
	entered, release chan struct{}
}

func (a *gateComplete) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	if cmd.GetCompleteTask() != nil {
		close(a.entered)
		<-a.release
	}
	return a.fsmApplier.Apply(ctx, cmd)
}

// TestDispatchHeartbeatSeesEarlierCompletion: after a restore (the attempt's
// confirmation pending), a worker reports Completed(X), then heartbeats
// without X. The heartbeat must be handled only after the completion is
// committed: handled first, it would requeue X, and the completion would be
// refused. The report's ack goes out before the heartbeat's.
func TestDispatchHeartbeatSeesEarlierCompletion(t *testing.T) {
	f := fsm.New()
	a := &gateComplete{fsmApplier: fsmApplier{f: f, at: now}, entered: make(chan struct{}), release: make(chan struct{})}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	proposeAll(t, s,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "w1", nil, nil),
		fsm.StartCmd(1, 2, "w1"),
	)
	s.running = true
	s.confirm[1] = 2
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 16), done: make(chan struct{})}
	s.sessions["w1"] = sess
	ctx := context.Background()
	if err := s.Dispatch(ctx, sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1, Fence: 2}}}); err != nil {
		t.Fatal(err)
	}
	<-a.entered
	hb := make(chan error, 1)
	go func() {
		hb <- s.Dispatch(ctx, sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{}}})
	}()
	// The heartbeat must be waiting for the completion, not handled.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sess.lanes.mu.Lock()
		waiting := sess.lanes.waiting
		sess.lanes.mu.Unlock()
		if waiting > 0 {
			break
		}
		select {
		case err := <-hb:
			t.Fatalf("the heartbeat was handled (%v) while the completion received before it was still being committed", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat neither waited for the earlier report nor was handled")
		}
		time.Sleep(time.Millisecond) // polling the lanes, not waiting for an event
	}
	close(a.release)
	if err := <-hb; err != nil {
		t.Fatal(err)
	}
	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	if task.State != fsmpb.TaskState_TASK_STATE_COMPLETED {
		t.Fatalf("task 1 is %v after its completion and a heartbeat; want completed (the heartbeat ran before the earlier report)", task.State)
	}
	if m := <-sess.Out(); m.GetAck() == nil || !m.GetAck().GetAccepted() {
		t.Fatalf("first message to the worker %v; want the completion's accepted ack", m)
	}
	if m := <-sess.Out(); m.GetHeartbeatAck() == nil {
		t.Fatalf("second message to the worker %v; want the heartbeat's ack", m)
	}
}
