package worker

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// recordStream is a session stream that records what the worker sends.
type recordStream struct {
	grpc.ClientStream
	mu   sync.Mutex
	sent []*pb.WorkerMessage
}

func (s *recordStream) Send(m *pb.WorkerMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func (s *recordStream) Recv() (*pb.AdminMessage, error) { select {} }

func (s *recordStream) messages() []*pb.WorkerMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pb.WorkerMessage(nil), s.sent...)
}

// att is (task id, fence) in these tests.
type att struct{ id, fence uint64 }

// lastHeartbeat lists (task, fence) of the last heartbeat sent.
func (s *recordStream) lastHeartbeat(t *testing.T) map[att]bool {
	t.Helper()
	ms := s.messages()
	for i := len(ms) - 1; i >= 0; i-- {
		if hb := ms[i].GetHeartbeat(); hb != nil {
			out := map[att]bool{}
			for _, r := range hb.Running {
				out[att{r.TaskId, r.Fence}] = true
			}
			return out
		}
	}
	t.Fatal("no heartbeat sent")
	return nil
}

// gateExecutor's Execute and Rollback say they began on began, then wait
// for release (or, with untilCancelled, for their context to end).
type gateExecutor struct {
	mu             sync.Mutex
	executions     int
	began          chan string
	release        chan struct{}
	untilCancelled bool
}

func (e *gateExecutor) wait(ctx context.Context, what string) error {
	e.began <- what
	if e.untilCancelled {
		<-ctx.Done()
		return ctx.Err()
	}
	<-e.release
	return nil
}

func (e *gateExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, _ Reporter) (*fsmpb.CapacityChange, error) {
	e.mu.Lock()
	e.executions++
	e.mu.Unlock()
	if err := e.wait(ctx, "execute"); err != nil {
		return nil, &Failure{Step: "test", Err: err, Retryable: true, RolledBack: true}
	}
	return &fsmpb.CapacityChange{OldSize: 2, NewSize: 1}, nil
}

func (e *gateExecutor) Rollback(ctx context.Context, _ *pb.TaskSpec) error {
	return e.wait(ctx, "rollback")
}

func newTestWorker(t *testing.T, dir string, ex Executor) *Worker {
	t.Helper()
	w, err := New(Config{ID: "w1", Admins: []string{"127.0.0.1:1"}, DataDir: dir, MaxConcurrent: 2,
		Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}, Executors: map[fsmpb.TaskType]Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: ex}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.EventuallyTrue(t, 10*time.Second, what, cond)
}

// TestRestoredAttemptsAreListedInHeartbeats: a restarted worker lists the
// journalled attempts it holds in every heartbeat, while they wait for the
// leader's word and while they are rolled back, and a superseded cancel
// stops such a rollback. Before, only the hello listed them: a leader that
// judged them its own at the hello (racing its own requeue of them) never
// heard of them again, and the rollback ran on against the attempt that
// replaced it: two attempts of one task touched the volume at once.
func TestRestoredAttemptsAreListedInHeartbeats(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(&Entry{Spec: spec(5, 50)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	ex := &gateExecutor{began: make(chan string, 4), untilCancelled: true}
	w := newTestWorker(t, dir, ex)
	rs := &recordStream{}
	w.stream = rs
	restoredKey := att{5, 50}

	w.sendHeartbeat(rs)
	if !rs.lastHeartbeat(t)[restoredKey] {
		t.Fatal("a heartbeat does not list the journalled attempt waiting for the leader's word")
	}
	// The leader acknowledges without cancelling it: the rollback starts.
	w.handle(context.Background(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	if got := <-ex.began; got != "rollback" {
		t.Fatalf("began %s, want the rollback", got)
	}
	w.sendHeartbeat(rs)
	if !rs.lastHeartbeat(t)[restoredKey] {
		t.Fatal("a heartbeat does not list the journalled attempt being rolled back")
	}
	// A leader that has since requeued the task says it is superseded: the
	// rollback stops, and the worker reports it released.
	w.cancel(context.Background(), &pb.Cancel{TaskId: 5, Fence: 50, Reason: "this attempt is no longer current", Superseded: true})
	waitFor(t, "the release of the superseded rollback", func() bool {
		for _, m := range rs.messages() {
			if r := m.GetReleased(); r.GetTaskId() == 5 && r.GetFence() == 50 {
				return true
			}
		}
		return false
	})
	w.sendHeartbeat(rs)
	if rs.lastHeartbeat(t)[restoredKey] {
		t.Fatal("the stopped rollback is still listed")
	}
}

// goroutineIn reports whether some goroutine's stack contains fn.
func goroutineIn(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			return true
		}
	}
	return false
}

// TestNoGapBetweenAttemptsAndOutbox: while an ended attempt's outcome is
// being journalled, a cancel is not answered "not running here" ahead of
// the outcome, and a re-sent assignment does not run the attempt again.
// Before, the attempt had left attempts and was not in the outbox yet, so
// a cancel or re-sent assignment found it in neither. The journal write is
// held by an open bbolt write transaction.
func TestNoGapBetweenAttemptsAndOutbox(t *testing.T) {
	ex := &gateExecutor{began: make(chan string, 4), release: make(chan struct{})}
	w := newTestWorker(t, t.TempDir(), ex)
	rs := &recordStream{}
	w.stream = rs
	ctx := context.Background()
	w.start(ctx, spec(7, 70))
	<-ex.began

	tx, err := w.journal.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	close(ex.release)
	waitFor(t, "the outcome's journal write", func() bool { return goroutineIn("(*Journal).Put") })
	w.cancel(context.Background(), &pb.Cancel{TaskId: 7, Fence: 70, Reason: "operator"})
	resent := make(chan struct{})
	go func() { defer close(resent); w.start(ctx, spec(7, 70)) }()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	<-resent
	waitFor(t, "the outcome reported", func() bool {
		for _, m := range rs.messages() {
			if m.GetCompleted() != nil {
				return true
			}
		}
		return false
	})
	w.stopAll("test over") // waits for any second run
	for _, m := range rs.messages() {
		if r := m.GetReleased(); r != nil {
			t.Fatalf("the cancel was answered %q while the attempt's outcome was being journalled", r.Error)
		}
		if m.GetCompleted() != nil {
			break
		}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.executions != 1 {
		t.Fatalf("the attempt ran %d times, want once (a re-sent assignment ran it again)", ex.executions)
	}
}

// TestJournalKeepsAttemptsApart: two attempts of one task (an earlier one
// rolled back after a restart, the task's next one) keep separate entries,
// and deletes are by attempt.
func TestJournalKeepsAttemptsApart(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	failed := &pb.TaskFailed{TaskId: 4, Fence: 40, Step: "restart", Interrupted: true}
	if err := j.Put(&Entry{Spec: spec(4, 40), Failed: failed}); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(&Entry{Spec: spec(4, 41)}); err != nil {
		t.Fatal(err)
	}
	all, err := j.All()
	if err != nil {
		t.Fatal(err)
	}
	got := map[att]*Entry{}
	for _, e := range all {
		got[att{e.Spec.Task.Id, e.Spec.Task.Fence}] = e
	}
	if len(got) != 2 || got[att{4, 40}] == nil || got[att{4, 40}].Failed == nil || got[att{4, 41}] == nil {
		t.Fatalf("journal holds %d entries (%v), want both attempts of task 4, the first with its outcome", len(got), got)
	}
	j.Delete(4, 40)
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	all, err = j.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Spec.Task.Fence != 41 {
		t.Fatalf("after deleting attempt 40: %d entries, want only attempt 41", len(all))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalOfAnOlderWorkerIsKept: a journal written by a worker that
// keyed entries by task id alone is re-keyed by attempt when opened, and
// its entries (an unfinished attempt, an unacknowledged outcome) survive.
func TestJournalOfAnOlderWorkerIsKept(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, "journal.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := &pb.TaskCompleted{TaskId: 2, Fence: 20, Change: &fsmpb.CapacityChange{OldSize: 5, NewSize: 3}}
	if err := db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucket(attemptsBucket)
		if err != nil {
			return err
		}
		for _, je := range []*pb.JournalEntry{{Spec: spec(1, 10)}, {Spec: spec(2, 20), Completed: done}} {
			b, err := proto.Marshal(je)
			if err != nil {
				return err
			}
			k := make([]byte, 8)
			binary.BigEndian.PutUint64(k, je.Spec.Task.Id)
			if err := bk.Put(k, b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	w := newTestWorker(t, dir, statsExecutor{})
	rs := &recordStream{}
	w.stream = rs
	// The unacknowledged outcome is in the outbox: a re-sent assignment
	// gets it again rather than a second run.
	w.start(context.Background(), spec(2, 20))
	if ms := rs.messages(); len(ms) != 1 || ms[0].GetCompleted().GetChange().GetNewSize() != 3 {
		t.Fatalf("the unacknowledged outcome of the old journal was lost: re-sent assignment answered %v", ms)
	}
	if err := w.journal.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(attemptsBucket).ForEach(func(k, _ []byte) error {
			if len(k) != 16 {
				t.Errorf("journal key %x is not (task id, fence)", k)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	// Re-keyed: the task's next attempt gets an entry of its own, and the
	// acknowledged outcome's delete finds its entry.
	if err := w.journal.Put(&Entry{Spec: spec(1, 11)}); err != nil {
		t.Fatal(err)
	}
	w.journal.Delete(2, 20)
	if err := w.journal.Flush(); err != nil {
		t.Fatal(err)
	}
	all, err := w.journal.All()
	if err != nil {
		t.Fatal(err)
	}
	got := map[att]bool{}
	for _, e := range all {
		got[att{e.Spec.Task.Id, e.Spec.Task.Fence}] = true
	}
	if len(got) != 2 || !got[att{1, 10}] || !got[att{1, 11}] {
		t.Fatalf("journal holds %v, want attempts 10 and 11 of task 1", got)
	}
}
