package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// applyAll feeds commands to an FSM as raft log entries at indexes 1, 2, ...
func applyAll(t *testing.T, f *fsm.FSM, at time.Time, cmds ...*fsmpb.Command) {
	t.Helper()
	for i, c := range cmds {
		b, err := fsm.Encode(at.UnixNano(), c)
		if err != nil {
			t.Fatal(err)
		}
		res := f.Apply(fsm.Entry{Index: uint64(i + 1), Command: true, Data: b}).(*fsmpb.ApplyResult)
		if err := fsm.ResultError(res); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
}

func TestResendLostAssignment(t *testing.T) {
	f := fsm.New()
	assignedAt := now.Add(-time.Minute)
	applyAll(t, f, assignedAt,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 2}),
		fsm.AssignCmd(1, "w1", nil, nil),
		fsm.AssignCmd(2, "w1", nil, nil),
	)
	s := New(Config{Now: func() time.Time { return now }}, nil, f, nil)
	s.view.topo, s.view.topoOK = build(30, srv(sid(1), 8, v(1, 10<<20), v(2, 10<<20))), true
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}

	// The worker runs task 2 but never heard of task 1.
	s.resendLost(sess, []*pb.RunningTask{{TaskId: 2, Fence: 4}})
	select {
	case m := <-sess.Out():
		spec := m.GetAssign().GetSpec()
		if spec.GetTask().GetId() != 1 || spec.GetTask().GetFence() != 3 || len(spec.Replicas) != 1 {
			t.Fatalf("re-sent %v, want task 1 with fence 3 and its replica", m)
		}
	default:
		t.Fatal("the lost assignment was not re-sent")
	}
	select {
	case m := <-sess.Out():
		t.Fatalf("re-sent an assignment the worker runs: %v", m)
	default:
	}

	// A fresh assignment may still be on its way: leave it alone.
	s.cfg.Now = func() time.Time { return assignedAt.Add(s.cfg.Heartbeat) }
	s.resendLost(sess, nil)
	if len(sess.Out()) != 0 {
		t.Fatal("re-sent an assignment younger than two heartbeats")
	}
}

// fsmApplier applies proposals straight to an FSM at the next raft index.
type fsmApplier struct {
	mu    sync.Mutex // a pass proposes from several goroutines; a log applies one entry at a time
	f     *fsm.FSM
	index uint64
	at    time.Time
	// agreed is the command version every member applies (0: the base
	// version, whose commands carry neither attempt history nor the
	// reporting worker).
	agreed uint32
	// interpose, if set, may return a command to commit just before cmd,
	// as another proposer's entry lands between a read and a proposal.
	interpose func(cmd *fsmpb.Command) *fsmpb.Command
}

// schedulerAtNow is a scheduler over a fresh FSM, with its clock and its
// applier standing at now.
func schedulerAtNow() (*Scheduler, *fsmApplier) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now}
	return New(Config{Now: func() time.Time { return now }}, a, f, nil), a
}

// applyAll applies cmds in order through a, failing the test on an error
// or a refused command.
func (a *fsmApplier) applyAll(t *testing.T, cmds ...*fsmpb.Command) {
	t.Helper()
	for _, c := range cmds {
		if res, err := a.Apply(context.Background(), c); err != nil || fsm.ResultError(res) != nil {
			t.Fatalf("%T: %v %v", c.Body, err, fsm.ResultError(res))
		}
	}
}

// proposeAll has s propose cmds in order, failing the test on an error.
func proposeAll(t *testing.T, s *Scheduler, cmds ...*fsmpb.Command) {
	t.Helper()
	for _, c := range cmds {
		if _, err := s.propose(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func (a *fsmApplier) Apply(_ context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The leader's gate, as admin's localApplier has it.
	if need := fsm.RequiredVersion(cmd); need > max(a.agreed, fsm.CommandVersion) {
		return nil, fmt.Errorf("command needs version %d: %w", need, fsm.ErrVersionNotAgreed)
	}
	if a.interpose != nil {
		if pre := a.interpose(cmd); pre != nil {
			b, err := fsm.EncodeAgreed(a.at.UnixNano(), max(a.agreed, fsm.CommandVersion), pre)
			if err != nil {
				return nil, err
			}
			a.index++
			a.f.Apply(fsm.Entry{Index: a.index, Command: true, Data: b})
		}
	}
	b, err := fsm.EncodeAgreed(a.at.UnixNano(), max(a.agreed, fsm.CommandVersion), cmd)
	if err != nil {
		return nil, err
	}
	a.index++
	return a.f.Apply(fsm.Entry{Index: a.index, Command: true, Data: b}).(*fsmpb.ApplyResult), nil
}

func TestInterruptedAttemptDoesNotUseRetryBudget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failed      *pb.TaskFailed
		wantRetries uint32
		backoff     bool
	}{
		{name: "interrupted", failed: &pb.TaskFailed{Error: "lost contact with the leader", Retryable: true, RolledBack: true, Interrupted: true}, wantRetries: 0},
		{name: "failed step", failed: &pb.TaskFailed{Step: "compact", Error: "disk full", Retryable: true, RolledBack: true}, wantRetries: 1, backoff: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, a := schedulerAtNow()
			f := a.f
			proposeAll(t, s,
				fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
				fsm.AssignCmd(1, "w1", nil, nil),
			)
			sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
			tc.failed.TaskId, tc.failed.Fence = 1, 2
			if err := s.handleFailed(context.Background(), sess, tc.failed); err != nil {
				t.Fatal(err)
			}
			var task *fsmpb.Task
			f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
			if task.State != fsmpb.TaskState_TASK_STATE_PENDING || task.Attempt != 2 || task.RetryCount != tc.wantRetries {
				t.Fatalf("task after the report: state %v attempt %d retries %d; want pending, 2, %d", task.State, task.Attempt, task.RetryCount, tc.wantRetries)
			}
			if got := task.NotBefore > now.UnixNano(); got != tc.backoff {
				t.Fatalf("backoff before the next attempt: %v, want %v", got, tc.backoff)
			}
			if m := <-sess.Out(); m.GetAck().GetTaskId() != 1 {
				t.Fatalf("worker got %v, want an ack of task 1", m)
			}
		})
	}
}

// flakyApplier fails the proposals it is told to (as raft does when
// leadership is lost mid-apply: the outcome is unknown), else applies them.
type flakyApplier struct {
	fsmApplier
	fail bool
}

func (a *flakyApplier) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	if a.fail {
		return nil, errors.New("apply: leadership lost while applying; outcome unknown")
	}
	return a.fsmApplier.Apply(ctx, cmd)
}

// TestReportNotAckedWhenItsOutcomeIsUnknown: a worker's failure or release
// report is acknowledged only once its consequence (requeue, fail) is
// committed or refused. Found by the fault harness: a requeue lost with the
// leadership was acknowledged all the same, the worker forgot its report,
// and the task stayed running on a worker that no longer ran it.
func TestReportNotAckedWhenItsOutcomeIsUnknown(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *pb.WorkerMessage
	}{
		{"interrupted", &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Step: "restart", Error: "worker restarted", Retryable: true, Interrupted: true}}}},
		{"failed step", &pb.WorkerMessage{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 2, Step: "compact", Error: "disk full", Retryable: true, RolledBack: true}}}},
		// Released without this leader having asked: a previous leader
		// cancelled it (stuck) and lost leadership before requeueing.
		{"released", &pb.WorkerMessage{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: 2, RolledBack: true, Error: "stuck"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fsm.New()
			a := &flakyApplier{fsmApplier: fsmApplier{f: f, at: now}}
			s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
			proposeAll(t, s,
				fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
				fsm.AssignCmd(1, "w1", nil, nil),
			)
			s.running = true
			sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
			s.sessions["w1"] = sess

			a.fail = true
			if err := s.Handle(context.Background(), sess, tc.msg); err == nil {
				t.Fatal("a report whose requeue was lost was handled without error")
			}
			if len(sess.Out()) != 0 {
				t.Fatalf("worker got %v for a report whose requeue was lost, want nothing (it must send it again)", <-sess.Out())
			}
			// The worker sends it again, to a leader that can commit.
			a.fail = false
			if err := s.Handle(context.Background(), sess, tc.msg); err != nil {
				t.Fatal(err)
			}
			var task *fsmpb.Task
			f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
			if task.State != fsmpb.TaskState_TASK_STATE_PENDING || task.Attempt != 2 {
				t.Fatalf("task after the re-sent report: state %v attempt %d; want pending, attempt 2", task.State, task.Attempt)
			}
			if m := <-sess.Out(); m.GetAck().GetTaskId() != 1 || !m.GetAck().GetAccepted() {
				t.Fatalf("worker got %v, want an ack of task 1", m)
			}
		})
	}
}

// TestHeartbeatAckedOnlyByAConfirmedLeader: a heartbeat is acknowledged
// only after a leadership verification that started after it arrived. A
// leader deposed while frozen (SIGSTOP) would otherwise, once continued,
// acknowledge heartbeats from its old sessions and keep a worker running
// attempts that the new leader is about to requeue (found by the fault
// harness). Verifications are shared by the heartbeats waiting on them.
func TestHeartbeatAckedOnlyByAConfirmedLeader(t *testing.T) {
	f := fsm.New()
	var mu sync.Mutex
	leading, calls := false, 0
	clock := now
	s := New(Config{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Millisecond); return clock },
		VerifyLeader: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if !leading {
				return errors.New("not the leader")
			}
			return nil
		}}, &fsmApplier{f: f, at: now}, f, nil)
	s.running = true
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	s.sessions["w1"] = sess
	hb := &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{}}}

	if err := s.Handle(context.Background(), sess, hb); err == nil {
		t.Fatal("a deposed leader handled a heartbeat without error")
	}
	if len(sess.Out()) != 0 {
		t.Fatalf("a deposed leader acknowledged a heartbeat: %v", <-sess.Out())
	}
	mu.Lock()
	leading = true
	mu.Unlock()
	if err := s.Handle(context.Background(), sess, hb); err != nil {
		t.Fatal(err)
	}
	if m := <-sess.Out(); m.GetHeartbeatAck() == nil {
		t.Fatalf("worker got %v, want a heartbeat ack", m)
	}
	// Each heartbeat needs a verification that started after it arrived.
	mu.Lock()
	before := calls
	mu.Unlock()
	if err := s.Handle(context.Background(), sess, hb); err != nil {
		t.Fatal(err)
	}
	<-sess.Out()
	mu.Lock()
	defer mu.Unlock()
	if calls != before+1 {
		t.Fatalf("%d verifications for a later heartbeat, want 1", calls-before)
	}
}

// TestPendingTaskWaitsForTheMasterToShowAFinishedChange: a task whose
// volume has a completed change the master does not show yet is not
// planned. Found by the fault harness: a manual vacuum submitted right as a
// balance moved its volume was planned from the topology polled before the
// move, sent to the old server, and failed for good with "volume not found".
func TestPendingTaskWaitsForTheMasterToShowAFinishedChange(t *testing.T) {
	pending := []*fsmpb.Task{{Id: 1, VolumeId: 19}, {Id: 2, VolumeId: 20}}
	got := waitForMaster(pending, map[uint32]bool{19: true})
	if len(got) != 1 || got[0].Id != 2 {
		t.Fatalf("planned %v, want only task 2 (volume 19 has an unreported change)", got)
	}
	if got := waitForMaster(pending, nil); len(got) != 2 {
		t.Fatalf("with no unreported change %d of 2 tasks are planned", len(got))
	}
}

// TestCompletionOfAnAttemptWhoseStartWasLost: the leader that assigned a
// task died before committing its worker's TaskStarted; the worker finished
// and reports the completion to the next leader, which must complete the
// task (committing the lost start first) rather than refuse it and leave the
// task assigned to a worker that no longer runs it. Found by the fault
// harness (a kill -9 of the leader 11 ms after an assignment).
func TestCompletionOfAnAttemptWhoseStartWasLost(t *testing.T) {
	s, f, sess := leadingWith(t,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "w1", nil, nil),
	)
	change := &fsmpb.CapacityChange{OldSize: 100, NewSize: 60}
	if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 1, Fence: 2, Change: change}}}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(st *fsm.State) {
		tk, _ := st.Task(1)
		if tk.State != fsmpb.TaskState_TASK_STATE_COMPLETED || tk.Fence != 2 {
			t.Fatalf("task after the completion: %v", tk)
		}
		if !st.HasUnreportedChange(1) {
			t.Error("the completion's capacity change was not recorded")
		}
	})
	if m := recv(t, sess); m.GetAck().GetTaskId() != 1 || m.GetAck().GetError() != "" {
		t.Fatalf("worker got %v, want a clean ack of task 1", m)
	}
	// A completion carrying another attempt's fence still changes nothing.
	proposeAll(t, s,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 2}),
		fsm.AssignCmd(2, "w1", nil, nil),
	)
	if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{TaskId: 2, Fence: 1}}}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(st *fsm.State) {
		if tk, _ := st.Task(2); tk.State != fsmpb.TaskState_TASK_STATE_ASSIGNED {
			t.Fatalf("a stale completion moved task 2 to %s", fsm.StateName(tk.State))
		}
	})
}

// TestResendLostWaitsForAdminLock: an assignment committed but never
// delivered (its leader died before sending it) is not re-sent while the
// admin lock is not known to be ours: not on a new leader that has no
// answer yet, and not while another process (a `weed admin`) holds it; it
// is re-sent once the lock is ours.
func TestResendLostWaitsForAdminLock(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.AdminLockDuration = 1, 2*time.Second
	c := simtest.Start(t, cfg)
	master := simtest.Master(t, c)

	f := fsm.New()
	assignedAt := now.Add(-time.Minute)
	applyAll(t, f, assignedAt,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "w1", nil, nil),
	)
	s := New(Config{NodeID: "a1", Now: func() time.Time { return now }}, nil, f, master)
	s.view.topo, s.view.topoOK = build(30, srv(sid(1), 8, v(1, 10<<20))), true
	sess := &Session{id: "w1", out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}

	// A new leader: the lock keeper has no answer yet.
	s.view.lock = master.NewAdminLock("groundskeeper a1")
	s.resendLost(sess, nil)
	if len(sess.Out()) != 0 {
		t.Fatalf("re-sent an assignment before the admin lock was known to be ours: %v", <-sess.Out())
	}

	// Another process holds the lock.
	other := holdAdminLock(t, c.MasterServerAddress().GRPC, 500*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.view.lock.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testutil.Eventually(t, 20*time.Second, "the lock refused to us", func() (bool, string) {
		st := s.view.lock.State()
		return st.Status == seaweed.LockOther, fmt.Sprintf("%+v", st)
	})
	s.resendLost(sess, nil)
	if len(sess.Out()) != 0 {
		t.Fatalf("re-sent an assignment while another process holds the admin lock: %v", <-sess.Out())
	}

	other.release()
	testutil.Eventually(t, 20*time.Second, "the lock ours", func() (bool, string) {
		st := s.view.lock.State()
		return st.Status == seaweed.LockOurs, fmt.Sprintf("%+v", st)
	})
	s.resendLost(sess, nil)
	select {
	case m := <-sess.Out():
		if m.GetAssign().GetSpec().GetTask().GetId() != 1 {
			t.Fatalf("re-sent %v; want task 1", m)
		}
	default:
		t.Fatal("the lost assignment was not re-sent once the lock was ours")
	}
}
