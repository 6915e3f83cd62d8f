package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// expiryFixture is a leader whose worker w1 runs n vacuum tasks (volumes
// 1..n) and was last heard from a minute ago; proposals go through a
// gatedApplier (RequeueTask held until release is closed, unless open).
type expiryFixture struct {
	f     *fsm.FSM
	a     *gatedApplier
	s     *Scheduler
	tasks []*pb.Task // the running attempts, as the leader read them

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
	cmds := []*pb.Command{{Body: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorker{Worker: &pb.Worker{Id: "w1",
		Capabilities: []pb.TaskType{pb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: uint32(n)}}}}}
	for i := 1; i <= n; i++ {
		cmds = append(cmds, &pb.Command{Body: &pb.Command_SubmitTask{SubmitTask: &pb.SubmitTask{Type: pb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(i)}}})
	}
	for i := 1; i <= n; i++ {
		cmds = append(cmds, &pb.Command{Body: &pb.Command_AssignTask{AssignTask: &pb.AssignTask{TaskId: uint64(i), WorkerId: "w1"}}})
	}
	applyAll(t, f, long, cmds...)
	// Start each at the fence its assignment got.
	var starts []*pb.Command
	f.Read(func(st *fsm.State) {
		for i := 1; i <= n; i++ {
			tk, _ := st.Task(uint64(i))
			starts = append(starts, &pb.Command{Body: &pb.Command_StartTask{StartTask: &pb.StartTask{TaskId: tk.Id, Fence: tk.Fence}}})
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
		x.tasks = st.Tasks(fsm.TaskFilter{States: []pb.TaskState{pb.TaskState_TASK_STATE_RUNNING}})
	})
	if len(x.tasks) != n {
		t.Fatalf("set-up: %d running, want %d", len(x.tasks), n)
	}
	return x
}

func (x *expiryFixture) limit() time.Duration { return x.s.cfg.Lease + x.s.cfg.Grace }

func (x *expiryFixture) state(id uint64) pb.TaskState {
	var tk *pb.Task
	x.f.Read(func(st *fsm.State) { tk, _ = st.Task(id) })
	return tk.State
}

func (x *expiryFixture) hello(ctx context.Context, running ...*pb.Task) (*Session, error) {
	h := &pb.Hello{WorkerId: "w1", Capabilities: []pb.TaskType{pb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: uint32(len(x.tasks))}
	for _, tk := range running {
		h.Running = append(h.Running, &pb.RunningTask{TaskId: tk.Id, Fence: tk.Fence, Step: "interrupted by a worker restart"})
	}
	sess, _, err := x.s.Attach(ctx, h)
	return sess, err
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
	waitUntil(t, "the hello did not wait for the requeue", func() bool { return x.s.owners.waiters("w1") == 1 })
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
		if st := x.state(tk.Id); st != pb.TaskState_TASK_STATE_PENDING {
			t.Fatalf("task %d: %s, want pending", tk.Id, fsm.StateName(st))
		}
	}
}
