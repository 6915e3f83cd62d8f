package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Targeted faults (issue 16): faults aimed at the irreversible steps of an
// erasure coding or a balance move, landed by simulator hooks on an exact
// RPC of the round's own task rather than by timing luck.
//
//   - kill9-worker-at-delete: kill -9 the worker just before the original
//     replicas (EC) or the source (move) are deleted (the delete does not
//     happen), or just after (it did);
//   - sigstop-worker-at-delete: the same points, the worker frozen for a
//     draw across its lease and grace, then continued;
//   - kill9-leader-at-completion: the leader kills itself (a test-only
//     failpoint, scheduler/testcrash.go) between a worker's completion
//     report and its commit, or after the commit before the ack;
//   - crash-server-mid-copy: the volume server receiving a shard copy or a
//     volume copy is stopped halfway through it and restarted with what it
//     had on disk;
//   - lost-answer: a volume server does the work of a destructive or
//     stateful RPC of the task and its answer is lost.
//
// Each round reports whether its hook fired; the final table lists armed /
// fired and the task outcomes per kind and variant. A round whose hook
// fired must end with its task completed, and a kind armed three times or
// more whose hook never fired fails the run (its rounds tested nothing).

const (
	fkKillAtDelete   faultKind = "kill9-worker-at-delete"
	fkStopAtDelete   faultKind = "sigstop-worker-at-delete"
	fkLeaderAtCommit faultKind = "kill9-leader-at-completion"
	fkCrashMidCopy   faultKind = "crash-server-mid-copy"
	fkLostAnswer     faultKind = "lost-answer"
	targetedFireWait           = 60 * time.Second
	targetedEndWait            = 90 * time.Second
	targetedSaltDel            = 0x7a11
	targetedSaltLead           = 0x1ead
	targetedSaltCopy           = 0xc0b1
	targetedSaltLost           = 0x1057
	// testCrashArmedRel is the admin's arm file in its data directory
	// (scheduler/testcrash.go).
	testCrashArmedRel = "test-crash-armed"
)

func init() {
	// Weights: a 200-round run draws each a few times.
	registerFault(fkKillAtDelete, 3, func(r *faultRun) { r.workerAtDelete(fkKillAtDelete) })
	registerFault(fkStopAtDelete, 3, func(r *faultRun) { r.workerAtDelete(fkStopAtDelete) })
	registerFault(fkLeaderAtCommit, 3, (*faultRun).leaderAtCompletion)
	registerFault(fkCrashMidCopy, 3, (*faultRun).crashMidCopy)
	registerFault(fkLostAnswer, 3, (*faultRun).lostAnswer)
	// The admins' completion failpoint is on in every harness run; it fires
	// only when a round arms it.
	adminTestEnv = append(adminTestEnv, "GROUNDSKEEPER_TEST_CRASH=completion")
}

// makeEcOrBalance makes an EC (even) or a balance (odd) work item.
func (r *faultRun) makeEcOrBalance(salt uint64, ec bool) (*targetWork, error) {
	rng := r.roundRng(salt)
	if ec {
		return r.makeEcWork(rng)
	}
	return r.makeBalanceWork(rng)
}

// skipped notes a targeted fault that could not be set up (err not nil) as
// outcome ("no work", "not submitted") and says whether it was.
func (r *faultRun) skipped(kind faultKind, variant string, err error, outcome string) bool {
	if err == nil {
		return false
	}
	r.note("%s: %v", kind, err)
	targeted.add(kind, variant, false, false, outcome)
	return true
}

// deleteRule is the rule matching the irreversible delete of w: an EC's
// (single) original replica, or a move's source.
func deleteRule(w *targetWork) sim.Fault {
	f := sim.Fault{Method: "VolumeDelete", VolumeID: w.vid, FailNext: 1}
	if w.source != nil {
		f.Server = w.source.ID()
	}
	return f
}

// armAtDelete injects deleteRule(w), firing after the delete ran when after
// (and letting it through), whose hook runs once; the channel closes when
// the hook has returned.
func (r *faultRun) armAtDelete(w *targetWork, after bool, hook func()) (*sim.FaultHandle, <-chan struct{}) {
	fired := make(chan struct{})
	var once sync.Once
	f := deleteRule(w)
	f.After, f.Pass = after, after
	f.OnFire = func() {
		defer once.Do(func() { close(fired) })
		hook()
	}
	return r.sim.InjectFault(f), fired
}

func (r *faultRun) workerAtDelete(kind faultKind) {
	rng := r.roundRng(targetedSaltDel)
	ec, after := rng.IntN(2) == 0, rng.IntN(2) == 0
	variant := map[bool]string{true: "ec", false: "balance"}[ec] + map[bool]string{true: " after-delete", false: " before-delete"}[after]
	w, err := r.makeEcOrBalance(targetedSaltDel, ec)
	if r.skipped(kind, variant, err, "no work") {
		return
	}
	d := r.hold(faultLease-300*time.Millisecond, faultLease+faultGrace+1000*time.Millisecond)
	var victim *faultWorker
	var hookErr string
	killTimedOut := false
	// Before: the delete fails (it never happened) and the worker is gone
	// or frozen; after: the delete happened, the answer reaches a dead or
	// frozen worker.
	rule, fired := r.armAtDelete(w, after, func() {
		victim = r.workerOf(w.task)
		if victim == nil || !victim.running() {
			hookErr = "no running worker holds the task"
			victim = nil
			return
		}
		if kind == fkKillAtDelete {
			if err := victim.signal(syscall.SIGKILL); err != nil {
				hookErr = fmt.Sprintf("kill -9 %s: %v", victim.ID, err)
				victim = nil
			} else if !waitGone(victim.node, 10*time.Second) {
				killTimedOut = true
			}
			return
		}
		if err := victim.signal(syscall.SIGSTOP); err != nil {
			hookErr = fmt.Sprintf("SIGSTOP %s: %v", victim.ID, err)
			victim = nil
			return
		}
		victim.stopped = true
	})
	defer rule.Remove()
	if r.skipped(kind, variant, r.start(w), "not submitted") {
		return
	}
	r.note("%s: %s, task %d of volume %d armed", kind, variant, w.task, w.vid)
	if !r.waitFired(fired, w.task) {
		rule.Remove()
		outcome, tk := r.waitEnded(w.task, targetedEndWait)
		r.note("%s: hook did not fire", kind)
		r.ended(kind, variant, w, false, outcome, tk)
		return
	}
	rule.Remove()
	if killTimedOut {
		// Restarting a worker that still runs would stop the run on
		// "already running": say what happened instead.
		targeted.violation("round %d, %s %s: worker %s still runs 10s after kill -9", r.round, kind, variant, victim.ID)
		if waitGone(victim.node, 60*time.Second) {
			victim.startArgs(r.t, victim.argv...)
		}
		victim = nil
		hookErr = "kill -9 did not take effect"
	}
	if victim != nil {
		if kind == fkKillAtDelete {
			r.note("%s: killed %s at the delete (%s)", kind, victim.ID, variant)
			time.Sleep(r.hold(100*time.Millisecond, 1000*time.Millisecond))
			victim.startArgs(r.t, victim.argv...)
		} else {
			r.note("%s: froze %s at the delete (%s) for %s", kind, victim.ID, variant, d)
			time.Sleep(d)
			if err := victim.signal(syscall.SIGCONT); err != nil {
				r.fail("SIGCONT %s: %v", victim.ID, err)
			}
			victim.stopped = false
		}
	} else {
		r.note("%s: hook: %s", kind, hookErr)
	}
	outcome, tk := r.waitEnded(w.task, targetedEndWait)
	r.ended(kind, variant, w, victim != nil, outcome, tk)
}

// leaderAtCompletion arms the leader's completion failpoint from a hook on
// the task's last RPC (the irreversible delete, after it ran), so the
// leader dies when the worker's completion report reaches it.
func (r *faultRun) leaderAtCompletion() {
	kind := fkLeaderAtCommit
	rng := r.roundRng(targetedSaltLead)
	ec := rng.IntN(2) == 0
	point := []string{"complete-before-commit", "complete-after-commit"}[rng.IntN(2)]
	variant := map[bool]string{true: "ec ", false: "balance "}[ec] + point
	w, err := r.makeEcOrBalance(targetedSaltLead, ec)
	if r.skipped(kind, variant, err, "no work") {
		return
	}
	var armedOn *faultAdmin
	var armPath string
	rule, armed := r.armAtDelete(w, true, func() {
		armedOn = r.leader()
		if armedOn == nil {
			return
		}
		armPath = filepath.Join(armedOn.DataDir, testCrashArmedRel)
		if err := os.WriteFile(armPath, []byte(fmt.Sprintf("%s %d\n", point, w.task)), 0o644); err != nil {
			armedOn = nil
		}
	})
	defer rule.Remove()
	if r.skipped(kind, variant, r.start(w), "not submitted") {
		return
	}
	// Armed from here on: a hook that never runs shows as armed, not fired.
	r.note("%s: %s, task %d of volume %d", kind, variant, w.task, w.vid)
	r.waitFired(armed, w.task)
	rule.Remove()
	fired := false
	if armedOn != nil {
		r.note("%s: armed %s at the last delete of task %d", kind, armedOn.ID, w.task)
		waitGone(armedOn.node, 20*time.Second)
		// Disarm by renaming: the admin consumes the file as it fires, so
		// a file that is gone means it fired (perhaps just now), one that
		// is renamed away can no longer fire.
		switch err := os.Rename(armPath, armPath+".disarmed"); {
		case err == nil:
			_ = os.Remove(armPath + ".disarmed")
		case errors.Is(err, fs.ErrNotExist):
			fired = true
		default:
			r.fail("%s: disarm %s: %v", kind, armPath, err)
		}
		if fired {
			if !waitGone(armedOn.node, 30*time.Second) {
				r.fail("%s: %s consumed its arm file at %s of task %d but still runs 30s later", kind, armedOn.ID, point, w.task)
			}
			r.note("%s: %s killed itself at %s of task %d", kind, armedOn.ID, point, w.task)
			time.Sleep(r.hold(150*time.Millisecond, 900*time.Millisecond))
			armedOn.startArgs(r.t, armedOn.argv...)
			armedOn.restarted++
		}
	}
	outcome, tk := r.waitEnded(w.task, targetedEndWait)
	r.ended(kind, variant, w, fired, outcome, tk)
}

// crashMidCopy stops the volume server receiving the task's shard copy (EC)
// or volume copy (move) halfway through the copy and restarts it.
func (r *faultRun) crashMidCopy() {
	kind := fkCrashMidCopy
	rng := r.roundRng(targetedSaltCopy)
	ec := rng.IntN(2) == 0
	variant := map[bool]string{true: "VolumeEcShardsCopy", false: "VolumeCopy"}[ec]
	w, err := r.makeEcOrBalance(targetedSaltCopy, ec)
	if r.skipped(kind, variant, err, "no work") {
		return
	}
	var victim *sim.VolumeServer
	fired := make(chan struct{})
	var mu sync.Mutex
	var rules []*sim.FaultHandle
	// One rule per server (the hook must know which server it stops); the
	// first to fire stops its server, the others stand down.
	for _, s := range r.sim.Servers() {
		if w.target != nil && s != w.target {
			continue
		}
		s := s
		rules = append(rules, r.sim.InjectFault(sim.Fault{Method: variant, VolumeID: w.vid, Server: s.ID(), Mid: true, Pass: true, FailNext: 1,
			OnFire: func() {
				mu.Lock()
				defer mu.Unlock()
				if victim != nil {
					return
				}
				victim = s
				// Stopped from another goroutine: the hook runs inside a
				// handler of the server being stopped.
				go s.Stop()
				for s.Up() {
					time.Sleep(time.Millisecond)
				}
				close(fired)
			}}))
	}
	removeAll := func() {
		for _, h := range rules {
			h.Remove()
		}
	}
	defer removeAll()
	if r.skipped(kind, variant, r.start(w), "not submitted") {
		return
	}
	r.note("%s: %s of task %d (volume %d) armed", kind, variant, w.task, w.vid)
	hit := r.waitFired(fired, w.task)
	removeAll()
	if hit {
		d := r.hold(300*time.Millisecond, 1500*time.Millisecond)
		r.note("%s: %s stopped halfway through the %s of volume %d; restarting it after %s", kind, victim.ID(), variant, w.vid, d)
		time.Sleep(d)
		if err := victim.Start(); err != nil {
			r.fail("restart volume server %s: %v", victim.ID(), err)
		}
	}
	outcome, tk := r.waitEnded(w.task, targetedEndWait)
	r.ended(kind, variant, w, hit, outcome, tk)
}

// lostAnswerMethods are the destructive or stateful RPCs whose answer a
// lost-answer round drops, with the task type that issues them (-1: EC or
// balance, drawn).
var lostAnswerMethods = []struct {
	method string
	typ    fsmpb.TaskType
}{
	{"VolumeDelete", -1},
	{"VolumeMarkReadonly", -1},
	{"VolumeEcShardsGenerate", fsmpb.TaskType_TASK_TYPE_ERASURE_CODING},
	{"VolumeEcShardsMount", fsmpb.TaskType_TASK_TYPE_ERASURE_CODING},
	{"VolumeEcShardsCopy", fsmpb.TaskType_TASK_TYPE_ERASURE_CODING},
	{"VolumeCopy", fsmpb.TaskType_TASK_TYPE_BALANCE},
	{"VacuumVolumeCommit", fsmpb.TaskType_TASK_TYPE_VACUUM},
	// VolumeMount is not listed: no executor calls it.
}

func (r *faultRun) lostAnswer() {
	kind := fkLostAnswer
	rng := r.roundRng(targetedSaltLost)
	m := lostAnswerMethods[rng.IntN(len(lostAnswerMethods))]
	typ := m.typ
	if typ == -1 {
		typ = []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE}[rng.IntN(2)]
	}
	variant := typeNames[typ] + " " + m.method
	var w *targetWork
	var err error
	switch typ {
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		w, err = r.makeEcWork(rng)
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		w, err = r.makeBalanceWork(rng)
	default:
		w, err = r.makeVacuumWork(rng)
	}
	if r.skipped(kind, variant, err, "no work") {
		return
	}
	var once sync.Once
	fired := make(chan struct{})
	// Shard copies and mounts come in several calls: drop a random one.
	skip := 0
	if m.method == "VolumeEcShardsCopy" || m.method == "VolumeEcShardsMount" {
		skip = rng.IntN(2)
	}
	rule := r.sim.InjectFault(sim.Fault{Method: m.method, VolumeID: w.vid, After: true, FailNext: 1, Skip: skip,
		OnFire: func() { once.Do(func() { close(fired) }) }})
	defer rule.Remove()
	if r.skipped(kind, variant, r.start(w), "not submitted") {
		return
	}
	r.note("%s: %s (skip %d) of task %d (volume %d) armed", kind, variant, skip, w.task, w.vid)
	hit := r.waitFired(fired, w.task)
	rule.Remove()
	outcome, tk := r.waitEnded(w.task, targetedEndWait)
	r.ended(kind, variant, w, hit, outcome, tk)
}
