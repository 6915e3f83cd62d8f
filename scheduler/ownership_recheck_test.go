package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// expiryFixture is a leader whose worker w1 runs n vacuum tasks (volumes
// 1..n) and was last heard from a minute ago; proposals go through a
// gatedApplier (RequeueTask held until release is closed, unless open).
type expiryFixture struct {
	f     *fsm.FSM
	a     *gatedApplier
	s     *Scheduler
	tasks []*fsmpb.Task // the running attempts, as the leader read them

	mu    sync.Mutex
	clock time.Time
}

func (x *expiryFixture) now() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.clock
}

func (x *expiryFixture) setNow(t time.Time) {
	x.mu.Lock()
	x.clock = t
	x.mu.Unlock()
}

func newExpiryFixture(t *testing.T, n int, open bool) *expiryFixture {
	t.Helper()
	f := fsm.New()
	long := now.Add(-time.Minute)
	cmds := []*fsmpb.Command{fsm.RegisterCmd(&fsmpb.Worker{Id: "w1",
		Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: uint32(n)})}
	for i := 1; i <= n; i++ {
		cmds = append(cmds, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(i)}))
	}
	for i := 1; i <= n; i++ {
		cmds = append(cmds, fsm.AssignCmd(uint64(i), "w1", nil, nil))
	}
	applyAll(t, f, long, cmds...)
	// Start each at the fence its assignment got.
	var starts []*fsmpb.Command
	f.Read(func(st *fsm.State) {
		for i := 1; i <= n; i++ {
			tk, _ := st.Task(uint64(i))
			starts = append(starts, fsm.StartCmd(tk.Id, tk.Fence, ""))
		}
	})
	x := &expiryFixture{f: f, clock: now}
	x.a = &gatedApplier{fsmApplier: fsmApplier{f: f, at: long, index: uint64(len(cmds))}, entered: make(chan struct{}), release: make(chan struct{})}
	if open {
		close(x.a.release)
	}
	for _, c := range starts {
		if res, err := x.a.Apply(context.Background(), c); err != nil || fsm.ResultError(res) != nil {
			t.Fatalf("start: %v %v", err, fsm.ResultError(res))
		}
	}
	x.a.at = now
	x.s = New(Config{Now: x.now}, x.a, f, nil)
	x.s.running, x.s.started, x.s.lastSeen["w1"] = true, long, long
	f.Read(func(st *fsm.State) {
		x.tasks = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_RUNNING}})
	})
	if len(x.tasks) != n {
		t.Fatalf("set-up: %d running, want %d", len(x.tasks), n)
	}
	return x
}

func (x *expiryFixture) limit() time.Duration { return x.s.cfg.Lease + x.s.cfg.Grace }

func (x *expiryFixture) state(id uint64) fsmpb.TaskState {
	var tk *fsmpb.Task
	x.f.Read(func(st *fsm.State) { tk, _ = st.Task(id) })
	return tk.State
}

func (x *expiryFixture) hello(ctx context.Context, running ...*fsmpb.Task) (*Session, error) {
	h := &pb.Hello{WorkerId: "w1", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: uint32(len(x.tasks))}
	for _, tk := range running {
		h.Running = append(h.Running, &pb.RunningTask{TaskId: tk.Id, Fence: tk.Fence, Step: "interrupted by a worker restart"})
	}
	sess, _, err := x.s.Attach(ctx, h)
	return sess, err
}

// TestRecheckCountsAFreshDisconnectedWorkerAlive: the expiry's re-check
// uses the expiry's own rule (heard from within lease+grace), not "has a
// session". A worker whose hello and acknowledged heartbeat were just
// handled, and whose stream then broke, may still roll back under its
// lease guard for lease + 0.8·grace: requeueing its attempt now would let
// the next attempt run beside that rollback. Before, the re-check counted
// only a connected worker alive and requeued.
func TestRecheckCountsAFreshDisconnectedWorkerAlive(t *testing.T) {
	x := newExpiryFixture(t, 1, true)
	sess, err := x.hello(context.Background(), x.tasks[0])
	if err != nil {
		t.Fatal(err)
	}
	x.s.Detach(sess)
	x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit())
	if st := x.state(x.tasks[0].Id); st != fsmpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("task of a worker heard from just now: %s, want running (not requeued under its live lease)", fsm.StateName(st))
	}
}

// TestHelloBetweenExpiryDecisionAndRecheck: a restarted worker's hello
// handled after expireLeases decided to requeue its attempt, but before the
// re-check, re-attaches the attempt it lists: no requeue, no cancel.
func TestHelloBetweenExpiryDecisionAndRecheck(t *testing.T) {
	x := newExpiryFixture(t, 1, true)
	var sess *Session
	var helloErr error
	calls := 0
	x.s.beforeRecheck = func(ctx context.Context, worker string) {
		calls++
		sess, helloErr = x.hello(ctx, x.tasks[0])
	}
	x.s.expireLeases(context.Background(), x.tasks, now)
	if calls != 1 {
		t.Fatalf("the expiry decided to requeue %d times, want once (set-up)", calls)
	}
	if helloErr != nil {
		t.Fatal(helloErr)
	}
	if st := x.state(x.tasks[0].Id); st != fsmpb.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("task after a hello in the re-check window: %s, want running (re-attached)", fsm.StateName(st))
	}
	if x.a.requeuesEntered() != 0 {
		t.Fatal("a requeue was proposed for an attempt its worker re-attached")
	}
	for len(sess.Out()) > 0 {
		if c := (<-sess.Out()).GetCancel(); c != nil {
			t.Fatalf("the re-attached attempt was cancelled: %v", c)
		}
	}
}

// TestHelloInRecheckWindowRequeuesUnlistedAttempts: a hello in the re-check
// window keeps the worker's expired attempts, but its next heartbeat must
// list them: one it does not (its data dir was wiped, say) is requeued then.
// Before, such attempts stayed running on nobody until they counted as
// stuck. Not at the hello already: an attempt that ended before the
// restart has its outcome re-sent after the hello, and must complete.
func TestHelloInRecheckWindowRequeuesUnlistedAttempts(t *testing.T) {
	heartbeat := func(x *expiryFixture, sess *Session, running ...*fsmpb.Task) {
		t.Helper()
		hb := &pb.Heartbeat{}
		for _, tk := range running {
			hb.Running = append(hb.Running, &pb.RunningTask{TaskId: tk.Id, Fence: tk.Fence})
		}
		if err := x.s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: hb}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("lost", func(t *testing.T) {
		x := newExpiryFixture(t, 2, true)
		listed, unlisted := x.tasks[0], x.tasks[1]
		sess, err := x.hello(context.Background(), listed)
		if err != nil {
			t.Fatal(err)
		}
		x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit())
		heartbeat(x, sess, listed)
		if st := x.state(listed.Id); st != fsmpb.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("listed attempt: %s, want running", fsm.StateName(st))
		}
		if st := x.state(unlisted.Id); st != fsmpb.TaskState_TASK_STATE_PENDING {
			t.Fatalf("expired attempt neither hello nor heartbeat listed: %s, want pending (requeued)", fsm.StateName(st))
		}
	})
	t.Run("ended", func(t *testing.T) {
		x := newExpiryFixture(t, 2, true)
		listed, ended := x.tasks[0], x.tasks[1]
		sess, err := x.hello(context.Background(), listed)
		if err != nil {
			t.Fatal(err)
		}
		x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit())
		if err := x.s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{
			TaskId: ended.Id, Fence: ended.Fence, Change: &fsmpb.CapacityChange{OldSize: 2, NewSize: 1}}}}); err != nil {
			t.Fatal(err)
		}
		heartbeat(x, sess, listed)
		if st := x.state(ended.Id); st != fsmpb.TaskState_TASK_STATE_COMPLETED {
			t.Fatalf("attempt whose outcome came after the hello: %s, want completed", fsm.StateName(st))
		}
		if st := x.state(listed.Id); st != fsmpb.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("listed attempt: %s, want running", fsm.StateName(st))
		}
	})
}

// TestHeartbeatWhileARequeueIsInFlight: a session registered after the
// expiry's decision whose worker then went quiet for a lease (the re-check
// finds it silent) sends a heartbeat while the requeue of its attempt is
// being committed. Its reconciliation must wait for the commit and cancel
// the attempt before the ack; reconciled against the state from before the
// requeue, the ack would tell the worker the attempt is still its own.
func TestHeartbeatWhileARequeueIsInFlight(t *testing.T) {
	x := newExpiryFixture(t, 1, false)
	tk := x.tasks[0]
	sess, err := x.hello(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	for len(sess.Out()) > 0 {
		<-sess.Out()
	}
	x.setNow(now.Add(x.limit() + time.Second)) // silent since the hello
	requeued := make(chan struct{})
	go func() { defer close(requeued); x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit()) }()
	<-x.a.entered

	handled := make(chan error, 1)
	go func() {
		handled <- x.s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.Heartbeat{
			Running: []*pb.RunningTask{{TaskId: tk.Id, Fence: tk.Fence, Step: "vacuum"}}}}})
	}()
	var done bool
	var herr error
	waitFor(t, "the heartbeat neither finished nor waited for the requeue", func() bool {
		select {
		case herr = <-handled:
			done = true
		default:
		}
		return done || x.s.owners.waiters("w1") == 1
	})
	close(x.a.release)
	<-requeued
	if !done {
		herr = <-handled
	}
	if herr != nil {
		t.Fatal(herr)
	}
	if st := x.state(tk.Id); st != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("task: %s, want pending (requeued)", fsm.StateName(st))
	}
	cancelled := false
	for len(sess.Out()) > 0 {
		m := <-sess.Out()
		if c := m.GetCancel(); c.GetTaskId() == tk.Id && c.GetFence() == tk.Fence && c.GetSuperseded() {
			cancelled = true
		}
		if m.GetHeartbeatAck() != nil && !cancelled {
			t.Fatal("the heartbeat was acknowledged without cancelling the attempt being requeued: the worker keeps it as its own")
		}
	}
	if !cancelled {
		t.Fatal("no cancel for the requeued attempt")
	}
}

// TestAbandonedHelloDoesNotRegister: a hello whose stream ends while it
// waits for the worker's ownership lock (held by a requeue being committed)
// returns at once and registers nothing. Before, it waited for the lock
// regardless and then registered a stale session, which closed the
// worker's live one.
func TestAbandonedHelloDoesNotRegister(t *testing.T) {
	x := newExpiryFixture(t, 1, false)
	x.s.lastSeen["w1"] = now.Add(-time.Minute)
	requeued := make(chan struct{})
	go func() { defer close(requeued); x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit()) }()
	<-x.a.entered
	defer func() { close(x.a.release); <-requeued }()

	ctx, cancel := context.WithCancel(context.Background())
	hello := make(chan error, 1)
	go func() {
		_, err := x.hello(ctx, x.tasks[0])
		hello <- err
	}()
	waitFor(t, "the hello did not wait for the requeue", func() bool { return x.s.owners.waiters("w1") == 1 })
	cancel()
	select {
	case err := <-hello:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned hello: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an abandoned hello kept waiting for the ownership lock")
	}
	if x.s.Connected()["w1"] {
		t.Fatal("an abandoned hello registered a session")
	}
}

// TestRequeuesOfOneWorkerAreProposedTogether: an expiry proposes the
// requeues of one worker's attempts concurrently, holding the worker's
// lock for about one commit, not one per attempt.
func TestRequeuesOfOneWorkerAreProposedTogether(t *testing.T) {
	x := newExpiryFixture(t, 3, false)
	requeued := make(chan struct{})
	go func() { defer close(requeued); x.s.requeueExpired(context.Background(), "w1", x.tasks, x.limit()) }()
	deadline := time.Now().Add(5 * time.Second)
	for x.a.requeuesEntered() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := x.a.requeuesEntered()
	close(x.a.release)
	<-requeued
	if got != 3 {
		t.Fatalf("%d of 3 requeues in flight while the first was uncommitted, want all 3 together", got)
	}
	for _, tk := range x.tasks {
		if st := x.state(tk.Id); st != fsmpb.TaskState_TASK_STATE_PENDING {
			t.Fatalf("task %d: %s, want pending", tk.Id, fsm.StateName(st))
		}
	}
}

// TestRequeueDelayEnv: the test-only GROUNDSKEEPER_TEST_REQUEUE_DELAY sets
// a delay before the expiry's re-check (which gives up when the leadership
// ends); unset, there is none.
func TestRequeueDelayEnv(t *testing.T) {
	t.Setenv(testRequeueDelayEnv, "")
	if s := New(Config{}, nil, nil, nil); s.beforeRecheck != nil {
		t.Fatal("a delay without the variable")
	}
	t.Setenv(testRequeueDelayEnv, "20ms")
	s := New(Config{}, nil, nil, nil)
	if s.beforeRecheck == nil {
		t.Fatal("no delay with the variable set")
	}
	start := time.Now()
	s.beforeRecheck(context.Background(), "w1")
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("waited %s, want 20ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Setenv(testRequeueDelayEnv, "1h")
	New(Config{}, nil, nil, nil).beforeRecheck(ctx, "w1") // returns: leadership over
}
