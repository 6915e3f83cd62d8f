package worker

import (
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
