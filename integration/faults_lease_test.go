package integration

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// fkRestartAtLease: kill -9 a worker holding a running attempt and restart
// it so that its hello reaches the leader right around the moment the
// leader's lease expiry requeues that attempt (lease + grace after it last
// heard from the worker), sometimes a little before, sometimes a little
// after. The restarted worker finds the attempt in its journal and lists
// it; whether the leader re-attaches it or requeues it, exactly one of
// them may touch the volume: a rollback judged the owner against a state
// about to change would run beside the attempt that replaces it
// (docs/architecture.md §9.2).
const fkRestartAtLease faultKind = "worker-restart-lease"

// adminTestEnv is added to every admin's environment by the fault harness.
// GROUNDSKEEPER_TEST_REQUEUE_DELAY (test-only, see scheduler) makes the
// leader wait 300 ms between deciding a worker's lease expired and the
// re-check before its requeues: without it that window is about one raft
// commit wide and the hellos aimed at it by fkRestartAtLease almost never
// land inside it. GK_FAULT_REQUEUE_DELAY overrides the 300ms (0: none, to
// compare).
var adminTestEnv = func() []string {
	d := "300ms"
	if v, ok := os.LookupEnv("GK_FAULT_REQUEUE_DELAY"); ok {
		d = v
	}
	return []string{"GROUNDSKEEPER_TEST_REQUEUE_DELAY=" + d}
}()

// leaseStats counts fkRestartAtLease rounds and where their hellos landed,
// printed when the run ends.
var leaseStats struct {
	sync.Mutex
	once                  sync.Once
	rounds, inWindow, unl int
}

func init() {
	registerFault(fkRestartAtLease, 10, func(r *faultRun) { r.restartWorkerAtLease(fkRestartAtLease) })
}

// restartWorkerAtLease runs one fkRestartAtLease round.
func (r *faultRun) restartWorkerAtLease(kind faultKind) {
	w, task := r.workerWithRunningAttempt(3 * time.Second)
	if w == nil {
		w = r.workers[r.rng.IntN(len(r.workers))]
	}
	// The leader heard from the worker at most a heartbeat before the kill
	// and checks leases every 500 ms, so its expiry falls in about
	// [kill + lease + grace - heartbeat, kill + lease + grace + 500ms]. The
	// hello is aimed across that window, allowing ~150 ms for the process
	// to start and dial.
	const startup = 150 * time.Millisecond
	expiry := faultLease + faultGrace
	aim := expiry + r.hold(-2*faultHeartbeat, 700*time.Millisecond)
	logBefore := len(w.log())
	adminLogBefore := make([]int, len(r.admins))
	for i, a := range r.admins {
		adminLogBefore[i] = len(a.log())
	}
	leaseStats.once.Do(func() {
		r.t.Cleanup(func() {
			leaseStats.Lock()
			defer leaseStats.Unlock()
			fmt.Printf("%s: %d rounds; hellos inside the window between the lease expiry's decision and its re-check: %d (rounds whose next heartbeat did not list a kept attempt, requeued then: %d)\n",
				fkRestartAtLease, leaseStats.rounds, leaseStats.inWindow, leaseStats.unl)
		})
	})
	defer func() {
		// A hello that got in between the leader's expiry decision and its
		// re-check shows as the leader's "re-attached as its lease expired".
		in, unl := false, false
		deadline := time.Now().Add(1500 * time.Millisecond)
		for !in && time.Now().Before(deadline) {
			for i, a := range r.admins {
				l := a.log() // appended to, across restarts too
				if len(l) < adminLogBefore[i] {
					continue
				}
				for _, line := range strings.Split(l[adminLogBefore[i]:], "\n") {
					if !strings.Contains(line, "worker="+w.ID) {
						continue
					}
					in = in || strings.Contains(line, "re-attached as its lease expired")
					unl = unl || strings.Contains(line, "was to confirm is not running there")
				}
			}
			if !in {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if in {
			r.note("%s: %s's hello landed between the leader's expiry decision and its re-check", kind, w.ID)
		}
		leaseStats.Lock()
		leaseStats.rounds++
		if in {
			leaseStats.inWindow++
		}
		if unl {
			leaseStats.unl++
		}
		leaseStats.Unlock()
	}()
	r.note("%s: kill -9 %s (holding %s), its hello aimed at %s after the kill (lease+grace %s)", kind, w.ID, task, aim.Round(time.Millisecond), expiry)
	killed := time.Now()
	w.kill9(r.t)
	time.Sleep(time.Until(killed.Add(aim - startup)))
	w.startArgs(r.t, w.argv...)
	// Note when the restarted worker was welcomed and what became of its
	// journalled attempts (for the round's record; the checks after the
	// run judge the outcome).
	welcomed := false
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		since := w.log()[logBefore:]
		if !welcomed && strings.Contains(since, "connected: admin=") {
			welcomed = true
			r.note("%s: %s welcomed %s after the kill (%+v from lease+grace)", kind, w.ID,
				time.Since(killed).Round(time.Millisecond), (time.Since(killed) - expiry).Round(time.Millisecond))
		}
		superseded := strings.Count(since, "journalled attempt is no longer ours") + strings.Count(since, "superseded=true")
		rolledBack := strings.Count(since, "superseded=false")
		if welcomed && superseded+rolledBack > 0 {
			r.note("%s: %s's journalled attempts: %d rolled back as its own, %d left to the attempt that replaced them", kind, w.ID, rolledBack, superseded)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !welcomed {
		r.note("%s: %s not welcomed within 5s of its restart", kind, w.ID)
	}
}

// workerWithRunningAttempt picks, at random, a worker that holds a running
// (or assigned) attempt, waiting up to wait for one; nil if none.
func (r *faultRun) workerWithRunningAttempt(wait time.Duration) (*faultWorker, string) {
	deadline := time.Now().Add(wait)
	for {
		tasks, err := r.listTasks()
		if err == nil {
			var cands []*fsmpb.Task
			for _, tk := range tasks {
				if tk.State == fsmpb.TaskState_TASK_STATE_RUNNING || tk.State == fsmpb.TaskState_TASK_STATE_ASSIGNED {
					for _, w := range r.workers {
						if w.ID == tk.WorkerId && w.running() && !w.stopped {
							cands = append(cands, tk)
						}
					}
				}
			}
			if len(cands) > 0 {
				tk := cands[r.rng.IntN(len(cands))]
				for _, w := range r.workers {
					if w.ID == tk.WorkerId {
						return w, fmt.Sprintf("%s task %d fence %d", typeNames[tk.Type], tk.Id, tk.Fence)
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, "no attempt"
		}
		time.Sleep(50 * time.Millisecond)
	}
}
