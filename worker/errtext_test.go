package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/errtext"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

type longErrorExecutor struct{ msg string }

func (e longErrorExecutor) Execute(context.Context, *pb.TaskSpec, Reporter) (*fsmpb.CapacityChange, error) {
	return nil, &Failure{Step: "prepare", Err: errors.New(e.msg)}
}

func (longErrorExecutor) Rollback(context.Context, *pb.TaskSpec) error { return nil }

// TestLongFailureErrorIsCut: an executor's error over the leader's limit
// (an EC prepare naming hundreds of earlier servers) is cut before it is
// journaled and put in the outbox, so what the worker re-sends is what the
// leader accepts.
func TestLongFailureErrorIsCut(t *testing.T) {
	long := "volume 42 has no replica left: " + strings.Repeat("10.20.0.1:8080.18080, ", 600)
	w, err := New(Config{ID: "w1", Admins: []string{"127.0.0.1:1"}, DataDir: t.TempDir(), MaxConcurrent: 1,
		Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
		Executors:    map[fsmpb.TaskType]Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: longErrorExecutor{msg: long}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.start(context.Background(), &pb.TaskSpec{Task: &fsmpb.Task{Id: 1, Fence: 1, Type: fsmpb.TaskType_TASK_TYPE_VACUUM}})
	// The outcome is counted before it enters the outbox: wait for the outbox.
	deadline := time.Now().Add(5 * time.Second)
	var msg *pb.WorkerMessage
	for msg == nil {
		if time.Now().After(deadline) {
			t.Fatal("the failure did not reach the outbox")
		}
		time.Sleep(5 * time.Millisecond)
		w.mu.Lock()
		msg = w.outbox[attemptKey{1, 1}]
		w.mu.Unlock()
	}
	check := func(where, got string) {
		t.Helper()
		if len(got) > errtext.MaxLen || !strings.HasPrefix(got, long[:100]) || !strings.HasSuffix(got, " bytes cut)") {
			t.Fatalf("%s holds %d bytes of error (limit %d), ending %q", where, len(got), errtext.MaxLen, got[max(0, len(got)-30):])
		}
	}
	check("the outbox", msg.GetFailed().GetError())
	entries, err := w.journal.All()
	if err != nil || len(entries) != 1 || entries[0].Failed == nil {
		t.Fatalf("journal %v, %v; want the failure", entries, err)
	}
	check("the journal", entries[0].Failed.Error)
}
