package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// gatedApplier holds every RequeueTask proposal until release is closed,
// after closing entered: a requeue whose commit is still in flight.
type gatedApplier struct {
	fsmApplier
	mu       sync.Mutex
	entered  chan struct{}
	release  chan struct{}
	requeues int
}

func (a *gatedApplier) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	if cmd.GetRequeueTask() != nil {
		a.mu.Lock()
		a.requeues++
		if a.requeues == 1 {
			close(a.entered)
		}
		a.mu.Unlock()
		<-a.release
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fsmApplier.Apply(ctx, cmd)
}

// requeuesEntered counts the RequeueTask proposals that reached the applier.
func (a *gatedApplier) requeuesEntered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requeues
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.EventuallyTrue(t, 10*time.Second, what, cond)
}

// TestHelloDuringALeaseExpiryRequeue: a restarted worker's hello that
// arrives while the lease expiry's requeue of its attempt is being
// committed must not leave the worker owning it. Before, the hello was
// reconciled against the state from before the requeue, judged the owner,
// and got no cancel: the worker rolled the journalled attempt back under a
// fresh lease while the task was pending or reassigned.
// The interleaving is forced: the requeue is held in the applier while the
// hello is handled (or, with the fix, blocks on the worker's ownership lock).
func TestHelloDuringALeaseExpiryRequeue(t *testing.T) {
	f := fsm.New()
	long := now.Add(-time.Minute)
	applyAll(t, f, long,
		fsm.RegisterCmd(&fsmpb.Worker{Id: "w1", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, MaxConcurrent: 1}),
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
		fsm.AssignCmd(1, "w1", nil, nil),
		fsm.StartCmd(1, 3, ""),
	)
	a := &gatedApplier{fsmApplier: fsmApplier{f: f, at: now, index: 4}, entered: make(chan struct{}), release: make(chan struct{})}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	// Leading for a minute; w1 last heard from a minute ago, session gone.
	s.running, s.started, s.lastSeen["w1"] = true, long, long
	var active []*fsmpb.Task
	f.Read(func(st *fsm.State) {
		active = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_RUNNING}})
	})
	if len(active) != 1 || active[0].Id != 1 || active[0].Fence != 3 {
		t.Fatalf("set-up: active %v, want task 1 running under fence 3", active)
	}

	expired := make(chan struct{})
	go func() { defer close(expired); s.expireLeases(context.Background(), active, now) }()
	<-a.entered // decided, requeue in flight

	type attached struct {
		sess *Session
		err  error
	}
	hello := make(chan attached, 1)
	go func() {
		sess, _, err := s.Attach(context.Background(), &pb.Hello{WorkerId: "w1", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
			MaxConcurrent: 1, Running: []*pb.RunningTask{{TaskId: 1, Fence: 3, Step: "interrupted by a worker restart"}}})
		hello <- attached{sess, err}
	}()
	// Let the hello be handled as far as it can while the requeue is in
	// flight: all the way (it must then not have been judged the owner),
	// or up to the ownership lock.
	var got *attached
	waitFor(t, "the hello neither finished nor waited for the requeue", func() bool {
		select {
		case h := <-hello:
			got = &h
		default:
		}
		return got != nil || s.owners.waiters("w1") == 1
	})
	close(a.release)
	<-expired
	if got == nil {
		h := <-hello
		got = &h
	}
	if got.err != nil {
		t.Fatal(got.err)
	}

	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	if task.State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("task after the expiry: %s, want pending (requeued)", fsm.StateName(task.State))
	}
	var cancelled bool
	for len(got.sess.Out()) > 0 {
		m := <-got.sess.Out()
		if c := m.GetCancel(); c.GetTaskId() == 1 && c.GetFence() == 3 && c.GetSuperseded() {
			cancelled = true
		}
	}
	if !cancelled {
		t.Fatal("the worker that said hello while its attempt was being requeued was not told the attempt is superseded: it would roll it back as its own")
	}
}
