package scheduler

import (
	"reflect"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func TestPickWorker(t *testing.T) {
	all := []fsmpb.TaskType{vacuumT, ecT, balanceT}
	w := func(id string, max, running int, caps ...fsmpb.TaskType) WorkerLoad {
		if caps == nil {
			caps = all
		}
		return WorkerLoad{ID: id, Capabilities: caps, MaxConcurrent: max, Running: running}
	}
	for _, tc := range []struct {
		name    string
		typ     fsmpb.TaskType
		workers []WorkerLoad
		want    string // "" = none
	}{
		{name: "no workers", typ: vacuumT, want: ""},
		{name: "no capable worker", typ: ecT, workers: []WorkerLoad{w("a", 4, 0, vacuumT), w("b", 4, 0, balanceT)}, want: ""},
		{name: "worker without capabilities", typ: vacuumT, workers: []WorkerLoad{{ID: "a", MaxConcurrent: 4}}, want: ""},
		{name: "capability filter", typ: ecT, workers: []WorkerLoad{w("a", 4, 0, vacuumT), w("b", 4, 3, vacuumT, ecT)}, want: "b"},
		{name: "full worker skipped", typ: vacuumT, workers: []WorkerLoad{w("a", 2, 2), w("b", 8, 7)}, want: "b"},
		{name: "all full", typ: vacuumT, workers: []WorkerLoad{w("a", 2, 2), w("b", 1, 1)}, want: ""},
		{name: "over-full worker skipped", typ: vacuumT, workers: []WorkerLoad{w("a", 2, 3)}, want: ""},
		{name: "zero slots never chosen", typ: vacuumT, workers: []WorkerLoad{w("a", 0, 0)}, want: ""},
		{name: "lowest load ratio wins", typ: vacuumT, workers: []WorkerLoad{w("a", 4, 2), w("b", 10, 3), w("c", 2, 1)}, want: "b"},
		{name: "ratio beats free slots", typ: vacuumT, workers: []WorkerLoad{w("a", 100, 50), w("b", 2, 0)}, want: "b"},
		{name: "ratio tie: most free slots", typ: vacuumT, workers: []WorkerLoad{w("a", 2, 1), w("b", 8, 4), w("c", 4, 2)}, want: "b"},
		{name: "idle tie: most free slots", typ: vacuumT, workers: []WorkerLoad{w("a", 2, 0), w("b", 3, 0)}, want: "b"},
		{name: "full tie: lowest id", typ: vacuumT, workers: []WorkerLoad{w("c", 4, 1), w("a", 4, 1), w("b", 4, 1)}, want: "a"},
		{name: "capable worker loaded beats idle incapable one", typ: balanceT,
			workers: []WorkerLoad{w("a", 4, 0, vacuumT, ecT), w("b", 4, 3, balanceT)}, want: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PickWorker(tc.typ, tc.workers)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("PickWorker = %q, %v; want %q, %v", got, ok, tc.want, tc.want != "")
			}
			// The order workers are listed in must not matter.
			rev := make([]WorkerLoad, len(tc.workers))
			for i, x := range tc.workers {
				rev[len(rev)-1-i] = x
			}
			if got2, ok2 := PickWorker(tc.typ, rev); got2 != got || ok2 != ok {
				t.Fatalf("reversed list: PickWorker = %q, %v; want %q, %v", got2, ok2, got, ok)
			}
		})
	}
}

func TestReady(t *testing.T) {
	pending, running := fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_RUNNING
	task := func(id uint64, state fsmpb.TaskState, prio int32, created, notBefore time.Time) *fsmpb.Task {
		nb := int64(0)
		if !notBefore.IsZero() {
			nb = notBefore.UnixNano()
		}
		return &fsmpb.Task{Id: id, State: state, Priority: prio, CreatedAt: created.UnixNano(), NotBefore: nb}
	}
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	var never time.Time
	for _, tc := range []struct {
		name  string
		tasks []*fsmpb.Task
		want  []uint64
	}{
		{name: "none", want: []uint64{}},
		{name: "non-pending excluded", tasks: []*fsmpb.Task{
			task(1, pending, 0, at(-10), never),
			task(2, running, 9, at(-10), never),
			task(3, fsmpb.TaskState_TASK_STATE_ASSIGNED, 9, at(-10), never),
			task(4, fsmpb.TaskState_TASK_STATE_COMPLETED, 9, at(-10), never),
			task(5, fsmpb.TaskState_TASK_STATE_FAILED, 9, at(-10), never),
			task(6, fsmpb.TaskState_TASK_STATE_CANCELLED, 9, at(-10), never),
			task(7, fsmpb.TaskState_TASK_STATE_UNSPECIFIED, 9, at(-10), never),
		}, want: []uint64{1}},
		{name: "not_before in the future excluded", tasks: []*fsmpb.Task{
			task(1, pending, 0, at(-10), at(1)),
			task(2, pending, 0, at(-10), at(0)),
			task(3, pending, 0, at(-10), at(-1)),
			task(4, pending, 0, at(-10), now.Add(time.Nanosecond)),
		}, want: []uint64{2, 3}},
		{name: "priority desc", tasks: []*fsmpb.Task{
			task(1, pending, 1, at(-30), never),
			task(2, pending, 10, at(-10), never),
			task(3, pending, 5, at(-20), never),
			task(4, pending, -1, at(-40), never),
		}, want: []uint64{2, 3, 1, 4}},
		{name: "then oldest first", tasks: []*fsmpb.Task{
			task(1, pending, 5, at(-10), never),
			task(2, pending, 5, at(-30), never),
			task(3, pending, 5, at(-20), never),
		}, want: []uint64{2, 3, 1}},
		{name: "then lowest id", tasks: []*fsmpb.Task{
			task(9, pending, 5, at(-10), never),
			task(3, pending, 5, at(-10), never),
			task(7, pending, 5, at(-10), never),
		}, want: []uint64{3, 7, 9}},
		{name: "all keys together", tasks: []*fsmpb.Task{
			task(6, pending, 1, at(-50), never),
			task(5, pending, 10, at(-5), never),
			task(4, pending, 10, at(-5), at(5)),
			task(3, running, 10, at(-100), never),
			task(2, pending, 10, at(-5), never),
			task(1, pending, 10, at(-6), at(-1)),
		}, want: []uint64{1, 2, 5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := make([]uint64, len(tc.tasks))
			for i, x := range tc.tasks {
				before[i] = x.Id
			}
			got := Ready(tc.tasks, now)
			ids := []uint64{}
			for _, x := range got {
				ids = append(ids, x.Id)
			}
			if !reflect.DeepEqual(ids, tc.want) {
				t.Fatalf("Ready = %v, want %v", ids, tc.want)
			}
			for i, x := range tc.tasks {
				if x.Id != before[i] {
					t.Fatalf("Ready reordered its input: %v", tc.tasks)
				}
			}
			// Reversing the input gives the same answer.
			rev := make([]*fsmpb.Task, len(tc.tasks))
			for i, x := range tc.tasks {
				rev[len(rev)-1-i] = x
			}
			ids2 := []uint64{}
			for _, x := range Ready(rev, now) {
				ids2 = append(ids2, x.Id)
			}
			if !reflect.DeepEqual(ids2, tc.want) {
				t.Fatalf("Ready(reversed) = %v, want %v", ids2, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    uint32
		want time.Duration
	}{
		{0, 2 * time.Second}, // not a real retry number; no shorter than the first
		{1, 2 * time.Second},
		{2, 4 * time.Second},
		{3, 8 * time.Second},
		{4, 16 * time.Second},
		{5, 32 * time.Second},
		{6, 64 * time.Second},
		{7, 128 * time.Second},
		{8, 256 * time.Second},
		{9, 5 * time.Minute},
		{10, 5 * time.Minute},
		{64, 5 * time.Minute},
		{1 << 31, 5 * time.Minute},
		{^uint32(0), 5 * time.Minute},
	} {
		if got := Backoff(tc.n); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
	for n := uint32(1); n < 100; n++ {
		if Backoff(n+1) < Backoff(n) {
			t.Fatalf("Backoff(%d) = %s < Backoff(%d) = %s", n+1, Backoff(n+1), n, Backoff(n))
		}
	}
}

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retries    uint32
		retryable  bool
		maxRetries uint32
		want       bool
	}{
		{name: "first failure, retryable", retries: 0, retryable: true, maxRetries: 3, want: true},
		{name: "budget left", retries: 2, retryable: true, maxRetries: 3, want: true},
		{name: "budget spent", retries: 3, retryable: true, maxRetries: 3, want: false},
		{name: "budget overspent", retries: 5, retryable: true, maxRetries: 3, want: false},
		{name: "not retryable", retries: 0, retryable: false, maxRetries: 3, want: false},
		{name: "no retries allowed", retries: 0, retryable: true, maxRetries: 0, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &fsmpb.Task{Id: 1, RetryCount: tc.retries}
			if got := Retry(task, tc.retryable, tc.maxRetries); got != tc.want {
				t.Fatalf("Retry(retries=%d, retryable=%v, max=%d) = %v, want %v", tc.retries, tc.retryable, tc.maxRetries, got, tc.want)
			}
		})
	}
}
