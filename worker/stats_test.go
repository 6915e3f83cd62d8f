package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

type statsExecutor struct{ fail bool }

func (e statsExecutor) Execute(context.Context, *pb.TaskSpec, Reporter) (*fsmpb.CapacityChange, error) {
	if e.fail {
		return nil, &Failure{Step: "test", Err: errors.New("boom")}
	}
	return nil, nil
}

func (statsExecutor) Rollback(context.Context, *pb.TaskSpec) error { return nil }

func TestStatsCountOutcomes(t *testing.T) {
	w, err := New(Config{ID: "w1", Admins: []string{"127.0.0.1:1"}, DataDir: t.TempDir(), MaxConcurrent: 1,
		Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_BALANCE},
		Executors:    map[fsmpb.TaskType]Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: statsExecutor{}, fsmpb.TaskType_TASK_TYPE_BALANCE: statsExecutor{fail: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if st := w.Stats(); st != (Stats{MaxConcurrent: 1}) {
		t.Fatalf("fresh worker stats %+v; want only MaxConcurrent 1", st)
	}
	run := func(id uint64, typ fsmpb.TaskType) {
		t.Helper()
		w.start(context.Background(), &pb.TaskSpec{Task: &fsmpb.Task{Id: id, Fence: id, Type: typ}})
		deadline := time.Now().Add(5 * time.Second)
		for st := w.Stats(); st.Running > 0 || st.Completed+st.Failed < id; st = w.Stats() {
			if time.Now().After(deadline) {
				t.Fatal("attempt did not finish")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	run(1, fsmpb.TaskType_TASK_TYPE_VACUUM)
	run(2, fsmpb.TaskType_TASK_TYPE_BALANCE)
	if st := w.Stats(); st.Completed != 1 || st.Failed != 1 || st.Released != 0 || st.Connected || st.Running != 0 {
		t.Fatalf("stats %+v; want 1 completed, 1 failed, nothing running, not connected", st)
	}
}
