package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// journalled returns a data dir whose journal holds attempt (id, fence)
// as unfinished: a worker opened on it restores that attempt.
func journalled(t *testing.T, id, fence uint64) string {
	t.Helper()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(&Entry{Spec: spec(id, fence)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rollbackProbe's Rollback hands out its context, then returns what it is
// given on result, or its context's error once that ends.
type rollbackProbe struct {
	statsExecutor
	ctxs   chan context.Context
	result chan error
}

func newRollbackProbe() *rollbackProbe {
	return &rollbackProbe{ctxs: make(chan context.Context, 4), result: make(chan error, 4)}
}

func (p *rollbackProbe) Rollback(ctx context.Context, _ *pb.TaskSpec) error {
	p.ctxs <- ctx
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// released returns the Released the worker sent for (id, fence), if any.
func released(rs *recordStream, id, fence uint64) *pb.TaskReleased {
	for _, m := range rs.messages() {
		if r := m.GetReleased(); r.GetTaskId() == id && r.GetFence() == fence {
			return r
		}
	}
	return nil
}

// TestPlainCancelOfARestoredAttemptRollsItBack: a restarted worker told to
// cancel a journalled attempt the leader still counts as current (an
// operator's cancel, re-sent before the hello's ack) rolls it back and
// then reports it released, rolled back. Before, it dropped the attempt
// as "not running here" without touching SeaweedFS: the replicas stayed
// read-only and stray shards remained, and the leader did not even say the
// rollback was incomplete. A superseded cancel still leaves it alone.
func TestPlainCancelOfARestoredAttemptRollsItBack(t *testing.T) {
	t.Run("current", func(t *testing.T) {
		ex := &gateExecutor{began: make(chan string, 4), release: make(chan struct{})}
		w := newTestWorker(t, journalled(t, 5, 50), ex)
		rs := &recordStream{}
		w.stream = rs
		w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: 5, Fence: 50, Reason: "operator"}}})
		if r := released(rs, 5, 50); r != nil {
			t.Fatalf("the current attempt was released (%q) without a rollback", r.Error)
		}
		select {
		case got := <-ex.began:
			if got != "rollback" {
				t.Fatalf("began %s, want the rollback", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the cancelled journalled attempt was not rolled back")
		}
		w.sendHeartbeat(rs)
		if !rs.lastHeartbeat(t)[att{5, 50}] {
			t.Fatal("the attempt being rolled back is not listed")
		}
		close(ex.release)
		waitFor(t, "the release after the rollback", func() bool { return released(rs, 5, 50) != nil })
		if r := released(rs, 5, 50); !r.RolledBack || r.Error == notRunningHereMsg {
			t.Fatalf("released %+v, want rolled back", r)
		}
	})
	t.Run("superseded", func(t *testing.T) {
		ex := &gateExecutor{began: make(chan string, 4), release: make(chan struct{})}
		w := newTestWorker(t, journalled(t, 5, 50), ex)
		rs := &recordStream{}
		w.stream = rs
		w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_Cancel{Cancel: &pb.Cancel{TaskId: 5, Fence: 50, Reason: "no longer current", Superseded: true}}})
		if r := released(rs, 5, 50); r == nil || r.RolledBack || r.Error != notRunningHereMsg {
			t.Fatalf("released %+v, want released at once without touching the volume", r)
		}
		if len(ex.began) != 0 {
			t.Fatal("a superseded journalled attempt was rolled back")
		}
	})
}

// notRunningHereMsg is what the worker answers for an attempt it leaves alone.
const notRunningHereMsg = "not running here"

// TestRestoredRollbackOutlivesLostContact: a restored attempt's rollback
// runs on a detached context, like an executor's own: losing contact with
// the leader for a lease (watchLease's stopAll) does not stop it half-way;
// the call guard does, once the lease may be gone, and then no outcome is
// journalled: the attempt waits in restored again. Before, stopAll
// cancelled it after one lease without an ack, earlier than the guard's
// limit, and a Failed{RolledBack: false} was journalled, so no restart
// ever rolled it back again.
func TestRestoredRollbackOutlivesLostContact(t *testing.T) {
	ex := newRollbackProbe()
	w := newTestWorker(t, journalled(t, 5, 50), ex)
	rs := &recordStream{}
	w.stream = rs
	w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	rctx := <-ex.ctxs
	w.mu.Lock()
	a := w.attempts[5]
	w.mu.Unlock()
	stopped := make(chan struct{})
	go func() { defer close(stopped); w.stopAll("lost contact with the leader") }()
	waitFor(t, "stopAll to stop the attempt", func() bool { return a.ctx.Err() != nil })
	if rctx.Err() != nil {
		t.Fatal("losing contact for a lease cancelled the rollback of a restored attempt; the lease guard allows it longer")
	}
	// The guard then refuses a call: the lease may be gone.
	ex.result <- errors.New("rpc error: code = Aborted desc = lease guard: VolumeMarkWritable not sent: lease lost")
	<-stopped
	for _, m := range rs.messages() {
		if m.GetFailed() != nil || m.GetReleased() != nil {
			t.Fatalf("reported %v for a rollback the lease guard stopped", m)
		}
	}
	w.mu.Lock()
	_, waiting := w.restored[attemptKey{5, 50}]
	w.mu.Unlock()
	if !waiting {
		t.Fatal("the attempt whose rollback the lease guard stopped is no longer waiting to be rolled back")
	}
	assertUnfinishedInJournal(t, w, 5, 50)
}

// TestShutdownLeavesARestoredRollbackJournalled: a worker shutting down
// stops a restored attempt's rollback at once and journals no outcome, so
// the next start restores it again. Before, a Failed{RolledBack: false}
// was journalled and the rollback never redone.
func TestShutdownLeavesARestoredRollbackJournalled(t *testing.T) {
	ex := newRollbackProbe()
	w := newTestWorker(t, journalled(t, 5, 50), ex)
	w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	<-ex.ctxs
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not shut down")
	}
	assertUnfinishedInJournal(t, w, 5, 50)
}

// assertUnfinishedInJournal fails unless the journal holds attempt
// (id, fence) without an outcome.
func assertUnfinishedInJournal(t *testing.T, w *Worker, id, fence uint64) {
	t.Helper()
	if err := w.journal.Flush(); err != nil {
		t.Fatal(err)
	}
	all, err := w.journal.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Spec.Task.Id == id && e.Spec.Task.Fence == fence {
			if e.Completed != nil || e.Failed != nil {
				t.Fatalf("journal holds an outcome for the interrupted rollback: failed %v, completed %v", e.Failed, e.Completed)
			}
			return
		}
	}
	t.Fatal("the interrupted rollback's attempt is gone from the journal")
}

// TestAssignOfARestoredAttemptIsNotRun: an assignment of the very attempt
// a restart interrupted (journalled, waiting in restored) is not run from
// the start beside its pending rollback; it is dropped, as one of a task
// already running here is.
func TestAssignOfARestoredAttemptIsNotRun(t *testing.T) {
	ex := &gateExecutor{began: make(chan string, 4), release: make(chan struct{})}
	w := newTestWorker(t, journalled(t, 5, 50), ex)
	rs := &recordStream{}
	w.stream = rs
	w.start(t.Context(), spec(5, 50))
	for _, m := range rs.messages() {
		if m.GetStarted() != nil {
			t.Fatal("the assignment of an attempt waiting to be rolled back was started")
		}
	}
	w.mu.Lock()
	_, running := w.attempts[5]
	_, waiting := w.restored[attemptKey{5, 50}]
	w.mu.Unlock()
	if running || !waiting {
		t.Fatalf("running %v, still restored %v: want not run, still waiting for the leader's word", running, waiting)
	}
	assertUnfinishedInJournal(t, w, 5, 50)
}

// TestRestoredRollbackThatKeepsCopiesIsNotRetryable: a restored attempt's
// rollback that refuses to destroy a copy holding acknowledged changes
// (a permanent error: both copies kept read-only for an operator) must be
// reported as not retryable, and not as an interruption, which the leader
// requeues at once: a retry would run into the same copies.
func TestRestoredRollbackThatKeepsCopiesIsNotRetryable(t *testing.T) {
	ex := newRollbackProbe()
	w := newTestWorker(t, journalled(t, 5, 50), ex)
	rs := &recordStream{}
	w.stream = rs
	w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	<-ex.ctxs
	ex.result <- permanent("the copy took a write; keeping both, read-only")
	var f *pb.TaskFailed
	waitFor(t, "the failure of the restored attempt", func() bool {
		for _, m := range rs.messages() {
			if m.GetFailed().GetTaskId() == 5 {
				f = m.GetFailed()
				return true
			}
		}
		return false
	})
	if f.Retryable || f.RolledBack || f.Interrupted {
		t.Fatalf("failed %+v; want neither retryable, rolled back nor an interruption (which the leader requeues)", f)
	}
}
