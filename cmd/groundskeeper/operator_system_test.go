package main

// System tests of the operator commands: cancel, retry and snapshot
// save/restore, run through ctl in-process against three admins, real
// workers and the simulated SeaweedFS.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

const (
	vacuumT = fsmpb.TaskType_TASK_TYPE_VACUUM

	pendingS   = fsmpb.TaskState_TASK_STATE_PENDING
	runningS   = fsmpb.TaskState_TASK_STATE_RUNNING
	completedS = fsmpb.TaskState_TASK_STATE_COMPLETED
	failedS    = fsmpb.TaskState_TASK_STATE_FAILED
)

// system is the harness with ctl as a method.
type system struct{ *admintest.System }

// newSystem starts the simulated SeaweedFS; seed volumes, then StartAdmins.
func newSystem(t testing.TB, simCfg sim.Config) *system {
	return &system{admintest.NewSystem(t, simCfg)}
}

// ctlRun runs ctl in-process against the system's admins.
func (s *system) ctlRun(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	full := append([]string{"--admin", strings.Join(s.GRPCAddrs(), ","), "--timeout", "10s"}, args...)
	err = runCtlIO(full, &out, &errOut)
	return out.String(), errOut.String(), err
}

// wantSentence checks a ctl error is one line and mentions every want.
func wantSentence(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want an error", what)
		return
	}
	msg := err.Error()
	if strings.Contains(strings.TrimSpace(msg), "\n") || strings.Contains(msg, "goroutine") {
		t.Errorf("%s: error is not one sentence: %q", what, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not mention %q", what, msg, w)
		}
	}
}

func decodeTask(t *testing.T, what, out string) taskJSON {
	t.Helper()
	var j taskJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%s: stdout is not one task as JSON (%v): %q", what, err, out)
	}
	return j
}

// TestSystemCancelRunningTask: cancelling an erasure coding caught half way
// (volume read-only, shards generated) makes the worker roll it back; the
// task ends cancelled, not retried, only after the rollback; nothing of
// that attempt runs afterwards, nothing else touches the volume meanwhile,
// and the volume is writable again with no shards left.
func TestSystemCancelRunningTask(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.FullQuietSpec(), 1)
	hang := s.Sim.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: vid, Latency: time.Minute})
	defer hang.Remove()
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 1)

	testutil.EventuallyTrue(t, admintest.Wait, "the erasure coding to have generated shards", func() bool {
		for _, o := range s.OpsOf(vid) {
			if o.Method == "VolumeEcShardsGenerate" && o.Err == "" {
				return true
			}
		}
		return false
	})
	task := s.WaitTask(vid, "running", func(t *fsmpb.Task) bool { return t.State == runningS })
	if !s.Replica(1, vid).ReadOnly || s.ECFiles(vid) == 0 {
		t.Fatalf("volume %d before the cancel: %+v, %d shard files; want read-only with shards", vid, s.Replica(1, vid), s.ECFiles(vid))
	}
	id := strconv.FormatUint(task.Id, 10)

	out, progress, err := s.ctlRun("task", "cancel", id, "--reason", "maintenance window over", "--json")
	if err != nil {
		t.Fatalf("ctl task cancel: %v (stderr %q)", err, progress)
	}
	j := decodeTask(t, "task cancel --json", out)
	if j.State != "cancelled" || j.ID != task.Id {
		t.Errorf("task cancel printed %+v, want task %d cancelled", j, task.Id)
	}
	if !strings.Contains(progress, "cancelling") {
		t.Errorf("no progress shown while waiting for the rollback: %q", progress)
	}

	final := s.Task(task.Id)
	if final.State != fsmpb.TaskState_TASK_STATE_CANCELLED || final.Attempt != 1 || final.RetryCount != 0 {
		t.Fatalf("task ended %s on attempt %d with %d retries; want cancelled on attempt 1", fsm.StateName(final.State), final.Attempt, final.RetryCount)
	}
	admintest.WantContains(t, "cancelled task's error", final.LastError, "maintenance window over")

	ops := s.OpsOf(vid)
	finished := time.Unix(0, final.FinishedAt)
	var rolledBack bool
	for _, o := range ops {
		if o.TaskID != id {
			t.Errorf("another task touched volume %d: %s", vid, o)
			continue
		}
		if o.End.After(finished) {
			t.Errorf("operation of the cancelled attempt ended after the cancel was committed (%s): %s", finished.Format("15:04:05.000000"), o)
		}
		if o.Method == "VolumeMarkWritable" && o.Err == "" {
			rolledBack = true
		}
	}
	if !rolledBack {
		t.Errorf("no rollback (VolumeMarkWritable) before the cancel was committed:%s", admintest.OpsString(ops))
	}
	if err := s.Sim.Write(vid, 4096, 1); err != nil {
		t.Errorf("volume %d is not writable after the cancel: %v", vid, err)
	}
	if files := s.ECFiles(vid); files != 0 {
		t.Errorf("%d shard files of volume %d left after the rollback", files, vid)
	}
	if n := len(s.TasksFor(vid)); n != 1 {
		t.Errorf("volume %d has %d tasks after the cancel; detection must leave a cancelled volume alone for the cooldown", vid, n)
	}
	s.CheckNoOverlaps()

	// A terminal task cannot be cancelled; an active one cannot be retried.
	_, _, err = s.ctlRun("task", "cancel", id)
	wantSentence(t, "cancel of a cancelled task", err, "task "+id, "already cancelled")
	_, _, err = s.ctlRun("task", "cancel", "9999")
	wantSentence(t, "cancel of an unknown task", err, "task 9999 not found")
	_, _, err = s.ctlRun("task", "cancel", "x1")
	wantSentence(t, "cancel of a bad id", err, `"x1"`)
}

// TestSystemRetryFailedTask: a failed task, retried by the operator while
// the detector's failure cooldown keeps detection off the volume, completes
// as a new task; a completed task's retry is refused in one sentence.
func TestSystemRetryFailedTask(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 2)
	fault := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vid, FailNext: 100})
	sc := admintest.SchedConfig()
	sc.FailureCooldown = time.Hour
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 1)

	failed := s.WaitTask(vid, "failed after its retries", func(t *fsmpb.Task) bool { return t.State == failedS })
	fault.Remove()
	id := strconv.FormatUint(failed.Id, 10)

	// Detection honours the cooldown: no new task appears by itself.
	s.WaitPolls(2)
	if n := len(s.TasksFor(vid)); n != 1 {
		t.Fatalf("detection proposed work for volume %d within its failure cooldown (%d tasks)", vid, n)
	}

	_, _, err := s.ctlRun("task", "cancel", id)
	wantSentence(t, "cancel of a failed task", err, "task "+id, "already failed")

	out, progress, err := s.ctlRun("task", "retry", id, "--wait", "--json")
	if err != nil {
		t.Fatalf("ctl task retry --wait: %v (stderr %q)", err, progress)
	}
	j := decodeTask(t, "task retry --wait --json", out)
	if j.State != "completed" || j.ID == failed.Id || j.VolumeID != vid || j.Type != "vacuum" || j.Origin != "retry of task "+id {
		t.Errorf("retry ended %+v; want a new completed vacuum of volume %d from %q", j, vid, "retry of task "+id)
	}
	if !strings.Contains(progress, "task "+strconv.FormatUint(j.ID, 10)) {
		t.Errorf("no progress shown while waiting: %q", progress)
	}
	s.CheckVacuumed(2, vid, 2*admintest.MB)

	_, _, err = s.ctlRun("task", "retry", strconv.FormatUint(j.ID, 10))
	wantSentence(t, "retry of a completed task", err, "completed", "only a failed or cancelled task can be retried")

}

// TestSystemSnapshotSaveRestore: a snapshot saved through a follower and
// restored through another brings all three admins back to the saved
// state (equal state hashes, equal to the file's), forgetting what was
// done after the save; a damaged, truncated or foreign file is refused in
// one sentence and changes nothing.
func TestSystemSnapshotSaveRestore(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(2))
	s.StartAdmins(admintest.SchedConfig())
	l := s.WaitLeader()
	follower := (l + 1) % 3
	other := (l + 2) % 3
	ctlVia := func(i int, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runCtlIO(append([]string{"--admin", s.Cfgs[i].GRPCAddr, "--timeout", "10s"}, args...), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	// No workers: submitted tasks stay pending.
	for _, v := range []string{"11", "12", "13"} {
		if _, _, err := ctlVia(l, "task", "submit", "--type", "vacuum", "--volume", v); err != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	if _, _, err := ctlVia(l, "task", "cancel", "2"); err != nil {
		t.Fatalf("cancel of a pending task: %v", err)
	}
	savedHash := s.WaitHashes(0, 1, 2)

	dir := t.TempDir()
	file := filepath.Join(dir, "gk.snap")
	out, progress, err := ctlVia(follower, "snapshot", "save", file, "--json")
	if err != nil {
		t.Fatalf("snapshot save through a follower: %v", err)
	}
	var saved snapshotInfo
	if err := json.Unmarshal([]byte(out), &saved); err != nil || saved.Index == 0 || saved.Size == 0 || len(saved.Sha256) != 64 {
		t.Fatalf("snapshot save printed %q (%v)", out, err)
	}
	if saved.NodeID != s.Cfgs[l].ID {
		t.Errorf("snapshot taken by %s, want the leader %s", saved.NodeID, s.Cfgs[l].ID)
	}
	if !strings.Contains(progress, "saving snapshot") {
		t.Errorf("no progress shown while saving: %q", progress)
	}
	snap, err := readSnapshotFile(file)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	st, _, err := fsm.DecodeSnapshot(snap.data)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hash() != savedHash {
		t.Fatalf("the file holds state %s, the cluster had %s", st.Hash(), savedHash)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	// Change the state after the save.
	if _, _, err := ctlVia(l, "task", "submit", "--type", "vacuum", "--volume", "14"); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if _, _, err := ctlVia(l, "task", "cancel", "1"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	changed := s.WaitHashes(0, 1, 2)
	if changed == savedHash {
		t.Fatal("the state did not change after the save")
	}

	// Bad files change nothing.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-3] ^= 0x40
	bad := map[string][]byte{
		"corrupt":   flipped,
		"truncated": raw[:len(raw)-5],
		"foreign":   []byte("PK\x03\x04 this is a zip file, not a snapshot\n"),
		"empty":     nil,
	}
	for name, b := range bad {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := ctlVia(other, "snapshot", "restore", f)
		wantSentence(t, "restore of a "+name+" file", err, f)
	}
	_, _, err = ctlVia(other, "snapshot", "restore", filepath.Join(dir, "missing"))
	wantSentence(t, "restore of a missing file", err, "does not exist")
	if h := s.WaitHashes(0, 1, 2); h != changed {
		t.Fatalf("a refused restore changed the state")
	}

	// Restore through a follower.
	out, progress, err = ctlVia(other, "snapshot", "restore", file, "--json")
	if err != nil {
		t.Fatalf("snapshot restore through a follower: %v", err)
	}
	var restored snapshotInfo
	if err := json.Unmarshal([]byte(out), &restored); err != nil || restored.RestoredIndex <= saved.Index {
		t.Fatalf("snapshot restore printed %q (%v); want the cluster past index %d", out, err, saved.Index)
	}
	if !strings.Contains(progress, "restoring snapshot") {
		t.Errorf("no progress shown while restoring: %q", progress)
	}
	if h := s.WaitHashes(0, 1, 2); h != savedHash {
		t.Fatalf("after the restore the admins agree on state %s, want the saved %s", h, savedHash)
	}
	for i := range 3 {
		var n int
		var t1 *fsmpb.Task
		s.Node(i).FSM().Read(func(st *fsm.State) {
			n = len(st.Tasks(fsm.TaskFilter{}))
			t1, _ = st.Task(1)
		})
		if n != 3 || t1 == nil || t1.State != pendingS {
			t.Errorf("admin %s after the restore: %d tasks, task 1 %v; want the 3 saved tasks, task 1 pending", s.Cfgs[i].ID, n, t1)
		}
	}
	// The cluster carries on: new work gets the next id everywhere, and
	// fences (raft indexes) keep growing past everything before.
	out, _, err = ctlVia(l, "task", "submit", "--type", "vacuum", "--volume", "15", "--json")
	if err != nil {
		t.Fatalf("submit after the restore: %v", err)
	}
	if j := decodeTask(t, "submit after the restore", out); j.ID != 4 {
		t.Errorf("first task after the restore has id %d, want 4", j.ID)
	}
	s.WaitHashes(0, 1, 2)
}

// TestSystemRestoreReconcilesRunning: a snapshot taken while a vacuum ran
// is restored after that vacuum completed. The restored state says the
// attempt is still running, but its worker no longer runs it: the leader
// notices at the worker's next heartbeat and requeues it (well before any
// stuck timer), and the task is done again in a new attempt. A task
// submitted after the snapshot is forgotten.
func TestSystemRestoreReconcilesRunning(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 0)
	slow := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vid, Latency: 3 * time.Second})
	sc := admintest.SchedConfig()
	sc.StuckAfter = map[fsmpb.TaskType]time.Duration{vacuumT: time.Hour}
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 1)

	running := s.WaitTask(vid, "compacting", admintest.InCompaction)
	file := filepath.Join(t.TempDir(), "running.snap")
	if _, _, err := s.ctlRun("snapshot", "save", file); err != nil {
		t.Fatalf("snapshot save: %v", err)
	}
	snap, err := readSnapshotFile(file)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := fsm.DecodeSnapshot(snap.data)
	if err != nil {
		t.Fatal(err)
	}
	if saved, _ := st.Task(running.Id); saved == nil || saved.State != runningS || saved.Fence != running.Fence {
		t.Fatalf("the snapshot holds task %v; want it running under fence %d (saved too late?)", saved, running.Fence)
	}
	s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return t.State == completedS })
	slow.Remove()

	if _, _, err := s.ctlRun("snapshot", "restore", file); err != nil {
		t.Fatalf("snapshot restore: %v", err)
	}
	again := s.WaitTask(vid, "requeued and done again after the restore", func(t *fsmpb.Task) bool {
		return t.Attempt >= 2 && !admintest.Active(t)
	})
	if again.Id != running.Id || again.Attempt != 2 || again.State != completedS {
		t.Errorf("after the restore task %d ended %s on attempt %d (%q); want task %d completed on attempt 2",
			again.Id, fsm.StateName(again.State), again.Attempt, again.LastError, running.Id)
	}
	s.WaitHashes(0, 1, 2)
	s.CheckNoOverlaps()
}

// TestSystemCancelWhileWorkerGone: a running task whose worker has lost
// contact is cancelled; the Cancel cannot reach the worker, which stops
// and rolls back by itself when its lease runs out, and the leader's lease
// expiry then ends the task cancelled, not requeued.
func TestSystemCancelWhileWorkerGone(t *testing.T) {
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 1)
	hang := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vid, Latency: time.Minute})
	defer hang.Remove()
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	proxy := admintest.StartProxy(t, s.Cfgs[leader].GRPCAddr)
	s.StartWorker("wA", []string{proxy.Addr()}, 1)
	running := s.WaitTask(vid, "compacting on wA", admintest.InCompaction)
	s.StartWorker("wB", s.GRPCAddrs(), 1) // ready to take the task, were it requeued
	s.WaitConnected("wB")

	proxy.Cut()
	out, _, err := s.ctlRun("task", "cancel", strconv.FormatUint(running.Id, 10), "--json")
	if err != nil {
		t.Fatalf("ctl task cancel: %v", err)
	}
	j := decodeTask(t, "task cancel --json", out)
	final := s.Task(running.Id)
	if j.State != "cancelled" || final.State != fsmpb.TaskState_TASK_STATE_CANCELLED || final.Attempt != 1 || final.WorkerId != "wA" {
		t.Fatalf("task ended %s on attempt %d by %s (%q); want cancelled in wA's attempt 1",
			fsm.StateName(final.State), final.Attempt, final.WorkerId, final.LastError)
	}
	admintest.WantContains(t, "cancelled task's error", final.LastError, "cancelled by operator", "stopped responding")
	for _, o := range s.OpsOf(vid) {
		if o.Fence != strconv.FormatUint(running.Fence, 10) {
			t.Errorf("operation of another attempt on volume %d: %s", vid, o)
		}
	}
	testutil.EventuallyTrue(t, admintest.Wait, "wA's compaction to be stopped on the volume server", func() bool {
		v := s.Replica(1, vid)
		return !v.Compacting && !v.ReadOnly
	})
	if n := len(s.TasksFor(vid)); n != 1 {
		t.Errorf("volume %d has %d tasks; want only the cancelled one", vid, n)
	}
	s.CheckNoOverlaps()
}
