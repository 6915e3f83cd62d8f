package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const replicateT = fsmpb.TaskType_TASK_TYPE_REPLICATE

// repairSystem starts four simulated servers, a 001 volume on servers 0
// and 1 with 20 MB written to it, a filler on server 2, three admins
// repairing after repairAfter and worker w1 (two slots), connected.
func repairSystem(t *testing.T, repairAfter time.Duration) (*system, uint32) {
	t.Helper()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.FillerSpec, 0, 1)
	s.AddOn(admintest.FillerSpec, 2)
	if err := s.Sim.Write(vid, admintest.MB, 20); err != nil {
		t.Fatal(err)
	}
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = repairAfter
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	return s, vid
}

// TestSystemReplicateAfterLoss: a 001 volume whose server is lost for
// good (its data gone) is repaired by a replicate task once it has been
// under-replicated for --repair-after, not before: two copies again, both
// holding every acknowledged write, on servers other than the lost one,
// nothing overlapping, the durability check clean again.
func TestSystemReplicateAfterLoss(t *testing.T) {
	t.Parallel()
	const repairAfter = 2 * time.Second
	s, vid := repairSystem(t, repairAfter)

	lost := time.Now()
	s.Sim.Server(1).Lose()
	if v := s.Sim.Durability(); len(v) != 1 || v[0].VolumeID != vid || !strings.Contains(v[0].String(), "redundancy lost") {
		t.Fatalf("durability right after the loss: %v; want volume %d's redundancy lost", v, vid)
	}

	// Seen at once, repaired only after --repair-after: the status and the
	// metrics count it meanwhile.
	testutil.EventuallyTrue(t, admintest.Wait, "the loss counted in status and metrics", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.VolumesUnderreplicated == 1 && st.OldestLoss != 0 &&
			gaugeValue(t, s, l, "groundskeeper_volumes_underreplicated") == 1 && gaugeValue(t, s, l, "groundskeeper_oldest_unrepaired_loss_seconds") > 0
	})
	testutil.EventuallyTrue(t, admintest.Wait, "a replicate task", func() bool { return len(tasksOf(s.Tasks(), replicateT)) > 0 })
	tasks := s.WaitQuiet()
	reps := tasksOf(tasks, replicateT)
	if len(reps) != 1 || len(tasks) != 1 {
		t.Fatalf("tasks %d, of them replicate %d; want exactly one replicate", len(tasks), len(reps))
	}
	rt := reps[0]
	if rt.VolumeId != vid || rt.State != completedS || rt.Attempt != 1 {
		t.Fatalf("replicate task %d of volume %d ended %s on attempt %d (%q); want volume %d completed on attempt 1",
			rt.Id, rt.VolumeId, fsm.StateName(rt.State), rt.Attempt, rt.LastError, vid)
	}
	if created := time.Unix(0, rt.CreatedAt); created.Sub(lost) < repairAfter {
		t.Errorf("replicate submitted %s after the loss, before --repair-after %s", created.Sub(lost), repairAfter)
	}
	if rt.Priority <= 10 {
		t.Errorf("replicate priority %d is not above routine work", rt.Priority)
	}
	if h := s.Holders(vid); len(h) != 2 || slices.Contains(h, 1) || !slices.Contains(h, 0) {
		t.Fatalf("volume %d on servers %v after the repair; want 2 copies, server 0's among them, none on the lost server 1", vid, h)
	}
	for _, i := range s.Holders(vid) {
		if v := s.Replica(i, vid); v.ReadOnly {
			t.Errorf("copy of volume %d on server %d is read-only", vid, i)
		}
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the repair: %v", v)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "no loss counted after the repair", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.VolumesUnderreplicated == 0 && st.OldestLoss == 0 &&
			gaugeValue(t, s, l, "groundskeeper_volumes_underreplicated") == 0 && gaugeValue(t, s, l, "groundskeeper_oldest_unrepaired_loss_seconds") == 0
	})
	s.CheckNoOverlaps()
	s.WaitHashes(0, 1, 2)
}

// gaugeValue is the value of an unlabelled gauge of node i (-1: absent).
func gaugeValue(t *testing.T, s *system, i int, name string) float64 {
	t.Helper()
	mfs, err := s.Node(i).Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestSystemNoReplicateWhenServerReturns: a server back within
// --repair-after causes no replicate task.
func TestSystemNoReplicateWhenServerReturns(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	s.AddOn(admintest.FillerSpec, 0, 1)
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 10 * time.Second
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")

	s.Sim.Server(1).Stop()
	waitRegistered(s, 3)
	s.WaitPolls(2)
	if err := s.Sim.Server(1).Start(); err != nil {
		t.Fatal(err)
	}
	waitRegistered(s, 4)
	s.WaitPolls(3)
	if reps := tasksOf(s.Tasks(), replicateT); len(reps) != 0 {
		t.Fatalf("a server back within --repair-after led to replicate tasks: %v", reps)
	}
}

// TestSystemPendingReplicateCancelled: a replicate pending (no worker to
// take it) when its volume's server comes back is cancelled.
func TestSystemPendingReplicateCancelled(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.FillerSpec, 0, 1)
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 0
	s.StartAdmins(sc)
	s.WaitPolls(1)

	s.Sim.Server(1).Stop()
	waitRegistered(s, 3)
	testutil.EventuallyTrue(t, admintest.Wait, "a pending replicate", func() bool {
		reps := tasksOf(s.Tasks(), replicateT)
		return len(reps) == 1 && reps[0].State == pendingS
	})
	if err := s.Sim.Server(1).Start(); err != nil {
		t.Fatal(err)
	}
	rt := s.WaitTask(vid, "replicate cancelled", func(t *fsmpb.Task) bool {
		return t.State == fsmpb.TaskState_TASK_STATE_CANCELLED
	})
	if !strings.Contains(rt.LastError, "all its copies again") {
		t.Errorf("cancelled replicate says %q", rt.LastError)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability: %v", v)
	}
}

func waitRegistered(s *system, n int) {
	s.T.Helper()
	testutil.EventuallyTrue(s.T, admintest.Wait, "the master to list the servers", func() bool { return s.Sim.RegisteredServers() == n })
}

// TestSystemNoRepairFromRefillingTopology: a restarted master lists the
// volume servers only as they re-register; even with --repair-after 0,
// the copies missing from its refilling topology are not taken for lost.
func TestSystemNoRepairFromRefillingTopology(t *testing.T) {
	t.Parallel()
	cfg := admintest.SimConfig(4)
	cfg.MasterRefillDelay = 4 * time.Second
	s := newSystem(t, cfg)
	for i := 0; i < 4; i++ {
		s.AddOn(admintest.FillerSpec, i, (i+1)%4)
	}
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 0
	s.StartAdmins(sc)
	s.WaitPolls(2)
	if err := s.Sim.RestartMaster(); err != nil {
		t.Fatal(err)
	}
	refilling := false
	testutil.EventuallyTrue(t, admintest.Wait, "the master to have every server back, seen refilling meanwhile", func() bool {
		if l := s.Leader(); l >= 0 {
			if st, ok := s.Node(l).Scheduler().Status(); ok && st.MasterState == "refilling" {
				refilling = true
			}
		}
		return refilling && s.Sim.RegisteredServers() == 4
	})
	s.WaitPolls(3)
	if reps := tasksOf(s.Tasks(), replicateT); len(reps) != 0 {
		t.Fatalf("replicate tasks from a refilling topology: %v", reps)
	}
}

// TestSystemRepairPreemptsPendingRoutineTask: a balance of a 001 volume
// waits, pending, while no worker can run it; the volume then loses a
// copy for good. The balance would wait for that copy for ever (a move is
// not planned for a volume short of copies): the repair takes its place,
// the balance is cancelled saying why, and the volume has two copies again.
func TestSystemRepairPreemptsPendingRoutineTask(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.FillerSpec, 0, 1)
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 0
	s.StartAdmins(sc)
	s.WaitPolls(1)
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	l := s.WaitLeader()
	resp, err := s.AdminClient(l).SubmitTask(ctx, &pb.SubmitTaskRequest{Type: balanceT, VolumeId: vid})
	if err != nil {
		t.Fatal(err)
	}
	s.Sim.Server(1).Lose()
	var bal *fsmpb.Task
	testutil.EventuallyTrue(t, admintest.Wait, "the balance cancelled for the repair", func() bool {
		bal = s.Task(resp.Task.Id)
		return bal.State == fsmpb.TaskState_TASK_STATE_CANCELLED
	})
	admintest.WantContains(t, "cancelled balance's error", bal.LastError, "lost a copy", "repair goes first")
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	testutil.EventuallyTrue(t, admintest.Wait, "the repair completed", func() bool {
		reps := tasksOf(s.Tasks(), replicateT)
		return len(reps) == 1 && reps[0].State == completedS
	})
	if h := s.Holders(vid); len(h) != 2 || slices.Contains(h, 1) {
		t.Fatalf("volume %d on servers %v; want 2 copies, none on the lost server", vid, h)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability: %v", v)
	}
}
