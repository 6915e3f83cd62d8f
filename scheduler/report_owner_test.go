package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// twoWorkers is a leading scheduler, over an FSM whose members all apply
// the current command version, with sessions of workers wA and wB and task
// 1 (volume 1) assigned to wA at fence 2.
func twoWorkers(t *testing.T) (s *Scheduler, f *fsm.FSM, a, b *Session) {
	t.Helper()
	f = fsm.New()
	s = New(Config{Now: func() time.Time { return now }}, &fsmApplier{f: f, at: now, agreed: fsm.CurrentVersion}, f, nil)
	a = &Session{id: "wA", out: make(chan *pb.AdminMessage, 16), done: make(chan struct{})}
	b = &Session{id: "wB", out: make(chan *pb.AdminMessage, 16), done: make(chan struct{})}
	s.running, s.started = true, now
	for _, sess := range []*Session{a, b} {
		s.sessions[sess.id], s.lastSeen[sess.id] = sess, now
	}
	proposeAll(t, s,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "wA", nil, nil),
	)
	return s, f, a, b
}

func task1(f *fsm.FSM) (tk *fsmpb.Task, changes int) {
	f.Read(func(st *fsm.State) {
		tk, _ = st.Task(1)
		changes = len(st.CapacityChanges())
	})
	return tk, changes
}

// TestReportsOnAnotherWorkersAttemptChangeNothing: a session of worker wB
// that knows the fence of wA's attempt reports it started, progressing,
// completed (with an invented capacity change), failed and released (while
// the leader is cancelling it): nothing is proposed (the state hash is the
// same), the leader-local progress, cancel and confirmation of wA's attempt
// are untouched, wB is answered as for a stale report (a superseded Cancel,
// an unaccepted ack) and wA hears nothing. wA's own reports then work.
func TestReportsOnAnotherWorkersAttemptChangeNothing(t *testing.T) {
	s, f, a, b := twoWorkers(t)
	ctx := context.Background()
	handle := func(sess *Session, m *pb.WorkerMessage) {
		t.Helper()
		if err := s.Handle(ctx, sess, m); err != nil {
			t.Fatalf("%s's %T: %v", sess.id, m.Body, err)
		}
	}
	started := &pb.WorkerMessage{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: 1, Fence: 2}}}

	// Assigned: wB says it started wA's attempt.
	hash := f.Hash()
	handle(b, started)
	if tk, _ := task1(f); tk.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || f.Hash() != hash {
		t.Fatalf("wB's start of wA's attempt changed the state: task %s", fsm.StateName(tk.State))
	}
	if m := recv(t, b); m.GetCancel().GetTaskId() != 1 || !m.GetCancel().GetSuperseded() {
		t.Fatalf("wB got %v, want a superseded Cancel of task 1", m)
	}

	// Running, with progress, a cancel under way and a confirmation due.
	handle(a, started)
	handle(a, &pb.WorkerMessage{Body: &pb.WorkerMessage_Progress{Progress: &pb.TaskProgress{TaskId: 1, Fence: 2, Progress: 10, Step: "compact"}}})
	s.mu.Lock()
	s.cancelling[1] = cancelInfo{fence: 2, reason: "stuck", retry: true, at: now, sent: now}
	s.confirm[1] = 2
	s.mu.Unlock()
	hash = f.Hash()

	for _, m := range []*pb.WorkerMessage{
		{Body: &pb.WorkerMessage_Started{Started: &pb.TaskStarted{TaskId: 1, Fence: 2}}},
		{Body: &pb.WorkerMessage_Progress{Progress: &pb.TaskProgress{TaskId: 1, Fence: 2, Progress: 99, Step: "verify", Checkpoint: true}}},
		{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1, Fence: 2, Change: &fsmpb.CapacityChange{OldSize: 1 << 30, NewSize: 1}}}},
		{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Error: "invented", Retryable: true, RolledBack: true}}},
		{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Error: "invented", Interrupted: true, RolledBack: true}}},
		{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: 2, RolledBack: true}}},
	} {
		handle(b, m)
		tk, changes := task1(f)
		if tk.State != fsmpb.TaskState_TASK_STATE_RUNNING || tk.Attempt != 1 || changes != 0 || f.Hash() != hash {
			t.Fatalf("after wB's %T on wA's attempt: task %s attempt %d, %d capacity changes, hash changed %v; want it untouched",
				m.Body, fsm.StateName(tk.State), tk.Attempt, changes, f.Hash() != hash)
		}
		// Answered as a stale report is.
		var reply *pb.AdminMessage
		select {
		case reply = <-b.Out():
		default:
		}
		switch m.Body.(type) {
		case *pb.WorkerMessage_Started, *pb.WorkerMessage_Progress:
			if reply.GetCancel().GetTaskId() != 1 || !reply.GetCancel().GetSuperseded() {
				t.Errorf("wB got %v for its %T, want a superseded Cancel", reply, m.Body)
			}
		case *pb.WorkerMessage_Completed, *pb.WorkerMessage_Failed:
			if reply.GetAck().GetTaskId() != 1 || reply.GetAck().GetAccepted() {
				t.Errorf("wB got %v for its %T, want an ack that does not accept it", reply, m.Body)
			}
		case *pb.WorkerMessage_Released:
			if reply.GetAck().GetTaskId() != 1 {
				t.Errorf("wB got %v for its release, want an ack", reply)
			}
		}
	}
	if p, step, _ := s.Progress(1); p != 10 || step != "compact" {
		t.Errorf("wA's progress is %v %q after wB's reports; want 10 compact", p, step)
	}
	s.mu.Lock()
	_, cancelling := s.cancelling[1]
	s.mu.Unlock()
	if !cancelling {
		t.Error("wB's reports dropped the cancel under way for wA's attempt")
	}

	// wB's heartbeat listing wA's attempt confirms nothing for wA.
	s.confirmRunning(ctx, b, []*pb.RunningTask{{TaskId: 1, Fence: 2}})
	s.mu.Lock()
	_, due := s.confirm[1]
	s.mu.Unlock()
	if !due {
		t.Error("wB's heartbeat confirmed wA's attempt")
	}
	s.confirmRunning(ctx, a, []*pb.RunningTask{{TaskId: 1, Fence: 2}})
	s.mu.Lock()
	_, due = s.confirm[1]
	delete(s.cancelling, 1)
	s.mu.Unlock()
	if due {
		t.Error("wA's own heartbeat did not confirm its attempt")
	}
	if len(a.Out()) != 0 {
		t.Errorf("wA was sent %v because of wB's reports", <-a.Out())
	}

	// wA's own completion works, its change recorded.
	handle(a, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1, Fence: 2, Change: &fsmpb.CapacityChange{OldSize: 100, NewSize: 60}}}})
	if tk, changes := task1(f); tk.State != fsmpb.TaskState_TASK_STATE_COMPLETED || changes != 1 {
		t.Fatalf("after wA's completion: task %s, %d capacity changes; want completed with 1", fsm.StateName(tk.State), changes)
	}
	if m := recv(t, a); !m.GetAck().GetAccepted() {
		t.Fatalf("wA got %v, want an accepted ack", m)
	}
}

// TestOwnReportsStillApplyWithTheWorkerCheck: with every member at the
// current command version (the worker written into each report), a worker's
// own failure is retried and its release while cancelling ends the attempt
// as before.
func TestOwnReportsStillApplyWithTheWorkerCheck(t *testing.T) {
	s, f, a, _ := twoWorkers(t)
	ctx := context.Background()
	if err := s.Handle(ctx, a, &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Error: "disk full", Retryable: true, RolledBack: true}}}); err != nil {
		t.Fatal(err)
	}
	if tk, _ := task1(f); tk.State != fsmpb.TaskState_TASK_STATE_PENDING || tk.RetryCount != 1 {
		t.Fatalf("after wA's failure: task %s, %d retries; want pending with 1", fsm.StateName(tk.State), tk.RetryCount)
	}
	proposeAll(t, s, fsm.AssignCmd(1, "wA", nil, nil))
	tk, _ := task1(f)
	s.mu.Lock()
	s.cancelling[1] = cancelInfo{fence: tk.Fence, reason: "stuck", retry: true, at: now, sent: now}
	s.mu.Unlock()
	if err := s.Handle(ctx, a, &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: tk.Fence, RolledBack: true}}}); err != nil {
		t.Fatal(err)
	}
	if tk, _ := task1(f); tk.State != fsmpb.TaskState_TASK_STATE_PENDING || tk.Attempt != 3 {
		t.Fatalf("after wA's release: task %s attempt %d; want pending, attempt 3", fsm.StateName(tk.State), tk.Attempt)
	}
}
