package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestCancelRequestedStopsAttemptFirst: an operator's cancel of a running
// task sends its worker a Cancel and leaves the task active (its volume
// reserved) until the attempt is reported stopped, however it stopped;
// then the task is cancelled in the same attempt, never requeued.
func TestCancelRequestedStopsAttemptFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  *pb.WorkerMessage
		want string
	}{
		{"released", &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: 2, RolledBack: true}}}, ""},
		{"released, rollback incomplete", &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: 2, Error: "mark writable: unavailable"}}}, "rollback incomplete: mark writable: unavailable"},
		{"failed, retryable", &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Step: "compact", Error: "context canceled", Retryable: true, RolledBack: true}}}, "compact: context canceled"},
		{"failed for good", &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Step: "compact", Error: "bad volume", RolledBack: true}}}, "bad volume"},
		{"interrupted", &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Error: "lost contact", Retryable: true, RolledBack: true, Interrupted: true}}}, "lost contact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, f, sess := leadingWith(t,
				fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
				fsm.AssignCmd(1, "w1", nil, nil),
				fsm.StartCmd(1, 2, ""),
				fsm.RequestCancelCmd(1, "operator"),
			)
			task := func() *fsmpb.Task {
				var tk *fsmpb.Task
				f.Read(func(st *fsm.State) { tk, _ = st.Task(1) })
				return tk
			}
			s.maintain(context.Background())
			m := recv(t, sess)
			if c := m.GetCancel(); c.GetTaskId() != 1 || c.GetFence() != 2 {
				t.Fatalf("worker got %v, want a Cancel of task 1 fence 2", m)
			}
			// Further rounds do not re-send at once, and change nothing.
			s.maintain(context.Background())
			if len(sess.Out()) != 0 {
				t.Fatalf("Cancel sent again within the same heartbeat period")
			}
			if tk := task(); tk.State != fsmpb.TaskState_TASK_STATE_RUNNING {
				t.Fatalf("task %s before its attempt stopped; want still running", fsm.StateName(tk.State))
			}
			// The worker's heartbeat still lists it: say it again, later.
			s.cfg.Now = func() time.Time { return now.Add(5 * time.Second) }
			if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{
				Running: []*pb.RunningTask{{TaskId: 1, Fence: 2}}}}}); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, sess); m.GetCancel().GetTaskId() != 1 {
				t.Fatalf("heartbeat listing the attempt got %v, want the Cancel again", m)
			}
			recv(t, sess) // heartbeat ack

			if err := s.Handle(context.Background(), sess, tc.end); err != nil {
				t.Fatal(err)
			}
			tk := task()
			if !strings.HasPrefix(tk.LastError, "operator") {
				t.Errorf("cancelled task's error %q does not start with the operator's reason", tk.LastError)
			}
			if tc.want != "" && !strings.Contains(tk.LastError, tc.want) {
				t.Errorf("cancelled task's error %q does not say %q", tk.LastError, tc.want)
			}
			if tk.State != fsmpb.TaskState_TASK_STATE_CANCELLED || tk.Attempt != 1 || tk.RetryCount != 0 {
				t.Fatalf("task ended %s on attempt %d with %d retries (%q); want cancelled on attempt 1",
					fsm.StateName(tk.State), tk.Attempt, tk.RetryCount, tk.LastError)
			}
			s.mu.Lock()
			_, still := s.cancelling[1]
			s.mu.Unlock()
			if still {
				t.Fatal("the stopped attempt is still in the cancelling set")
			}
		})
	}
}

func recv(t *testing.T, sess *Session) *pb.AdminMessage {
	t.Helper()
	select {
	case m := <-sess.Out():
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message for the worker")
		return nil
	}
}

// TestStartedForEndedTaskIsCancelled: a worker that reports starting an
// attempt of a task that has ended meanwhile (cancelled) is told to stop.
func TestStartedForEndedTaskIsCancelled(t *testing.T) {
	s, _, sess := leadingWith(t,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "w1", nil, nil),
		fsm.CancelCmd(1, 2, "", "operator"),
	)
	if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: 1, Fence: 2}}}); err != nil {
		t.Fatal(err)
	}
	// Superseded: the task is over and another attempt may own the volume,
	// so the worker must not even roll back.
	if m := recv(t, sess); m.GetCancel().GetTaskId() != 1 || m.GetCancel().GetFence() != 2 || !m.GetCancel().GetSuperseded() {
		t.Fatalf("worker got %v, want a superseded Cancel of task 1 fence 2", m)
	}
}

// leadingWith returns a leading scheduler over a fresh FSM with worker w1's
// session attached, after proposing cmds in order.
func leadingWith(t *testing.T, cmds ...*fsmpb.Command) (*Scheduler, *fsm.FSM, *Session) {
	t.Helper()
	f := fsm.New()
	s := New(Config{Now: func() time.Time { return now }}, &fsmApplier{f: f, at: now}, f, nil)
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 16), done: make(chan struct{})}
	s.sessions["w1"] = sess
	s.running, s.started, s.lastSeen["w1"] = true, now, now
	for _, c := range cmds {
		if _, err := s.propose(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	return s, f, sess
}
