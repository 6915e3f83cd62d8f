package scheduler

import (
	"sort"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// WorkerLoad is a connected worker as assignment sees it.
type WorkerLoad struct {
	ID            string
	Capabilities  []fsmpb.TaskType
	MaxConcurrent int
	Running       int
}

func (w WorkerLoad) can(t fsmpb.TaskType) bool {
	for _, c := range w.Capabilities {
		if c == t {
			return true
		}
	}
	return false
}

// NeedsMaster reports whether running a task of type t needs the SeaweedFS
// master. Erasure coding and balance mark the volume read-only, which a
// volume server does through the master (docs/seaweedfs-rpcs.md §4.2); a
// vacuum calls volume servers only (§4.1), so it can run during an outage.
func NeedsMaster(t fsmpb.TaskType) bool { return t != fsmpb.TaskType_TASK_TYPE_VACUUM }

// PickWorker chooses the capable worker with a free slot and the lowest load
// (running/max), ties broken by most free slots, then id.
func PickWorker(t fsmpb.TaskType, workers []WorkerLoad) (string, bool) {
	best := -1
	for i, w := range workers {
		if !w.can(t) || w.Running >= w.MaxConcurrent {
			continue
		}
		if best < 0 || better(w, workers[best]) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return workers[best].ID, true
}

func better(a, b WorkerLoad) bool {
	la := float64(a.Running) / float64(a.MaxConcurrent)
	lb := float64(b.Running) / float64(b.MaxConcurrent)
	if la != lb {
		return la < lb
	}
	if fa, fb := a.MaxConcurrent-a.Running, b.MaxConcurrent-b.Running; fa != fb {
		return fa > fb
	}
	return a.ID < b.ID
}

// Ready returns the pending tasks that may be assigned now, highest priority
// first, then oldest, then lowest id.
func Ready(pending []*fsmpb.Task, now time.Time) []*fsmpb.Task {
	out := make([]*fsmpb.Task, 0, len(pending))
	for _, t := range pending {
		if t.State == fsmpb.TaskState_TASK_STATE_PENDING && t.NotBefore <= now.UnixNano() {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if a.CreatedAt != b.CreatedAt {
			return a.CreatedAt < b.CreatedAt
		}
		return a.Id < b.Id
	})
	return out
}

// Backoff is the wait before retry number n (1-based): 2 s doubling, at most 5 min.
func Backoff(n uint32) time.Duration {
	d := 2 * time.Second
	for i := uint32(1); i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Retry decides what a failed attempt leads to: another attempt (after
// Backoff) while the budget lasts and the failure is retryable, else failed.
func Retry(task *fsmpb.Task, retryable bool, maxRetries uint32) bool {
	return retryable && task.RetryCount < maxRetries
}
