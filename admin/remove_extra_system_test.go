package admin_test

import (
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

const removeExtraT = fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA

func tasksOf(tasks []*fsmpb.Task, typ fsmpb.TaskType) []*fsmpb.Task {
	var out []*fsmpb.Task
	for _, t := range tasks {
		if t.Type == typ {
			out = append(out, t)
		}
	}
	return out
}

// TestSystemRemoveExtraAfterReturn: a server holding a copy of a 001
// volume goes down for longer than --repair-after; the volume takes
// writes and deletes meanwhile (its copy there misses them) and is
// repaired elsewhere. The server then comes back with its stale copy: the
// volume has three copies, counted in status and metrics, and once the
// excess has lasted --repair-after a remove_extra deletes the stale one.
// Two copies stay, both fresh, nothing overlapped, and the durability
// check at rest (every replica holds exactly the acknowledged writes) is
// clean.
func TestSystemRemoveExtraAfterReturn(t *testing.T) {
	t.Parallel()
	const repairAfter = 2 * time.Second
	s, vid := repairSystem(t, repairAfter)

	s.Sim.Server(1).Stop()
	waitRegistered(s, 3)
	if err := s.Sim.WriteUp(vid, admintest.MB/2, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Sim.DeleteDataUp(vid, admintest.MB/4, 10); err != nil {
		t.Fatal(err)
	}
	s.WaitTask(vid, "replicate completed", func(t *fsmpb.Task) bool {
		return t.Type == replicateT && t.State == completedS
	})
	if err := s.Sim.Server(1).Start(); err != nil {
		t.Fatal(err)
	}
	waitRegistered(s, 4)
	if v := s.Sim.DurabilityAtRest(); len(v) == 0 {
		t.Fatal("durability at rest clean with the stale copy back: the fixture makes no stale copy")
	}
	testutil.EventuallyTrue(t, admintest.Wait, "a remove_extra task", func() bool { return len(tasksOf(s.Tasks(), removeExtraT)) > 0 })
	tasks := s.WaitQuiet()
	rx := tasksOf(tasks, removeExtraT)
	if len(rx) != 1 || len(tasks) != 2 {
		t.Fatalf("tasks %d, of them remove_extra %d; want one replicate and one remove_extra", len(tasks), len(rx))
	}
	if rx[0].VolumeId != vid || rx[0].State != completedS {
		t.Fatalf("remove_extra of volume %d ended %s (%q); want volume %d completed", rx[0].VolumeId, fsm.StateName(rx[0].State), rx[0].LastError, vid)
	}
	if h := s.Holders(vid); len(h) != 2 || slices.Contains(h, 1) || !slices.Contains(h, 0) {
		t.Fatalf("volume %d on servers %v; want 2 copies, server 0's among them, the stale one on server 1 gone", vid, h)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "no extra counted after the removal", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.VolumesOverreplicated == 0 && gaugeValue(t, s, l, "groundskeeper_volumes_overreplicated") == 0
	})
	s.CheckNoOverlaps()
}

// TestSystemRemoveExtraShardsAfterReturn: a server holding shards of an
// EC volume is down past --repair-after, the volume is rebuilt elsewhere
// and takes deletes; back, the server mounts its old shards again, now
// duplicates, which remove_extra tasks remove: every shard mounted exactly
// once, the durability check at rest clean, nothing overlapping.
func TestSystemRemoveExtraShardsAfterReturn(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(8))
	const vid = 7
	addSpreadEc(s, vid, 0, 1, 2, 3, 4, 5, 6)
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 2 * time.Second
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	s.WaitPolls(1)

	s.Sim.Server(3).Stop()
	waitRegistered(s, 7)
	s.WaitTask(vid, "ec_rebuild completed", func(t *fsmpb.Task) bool {
		return t.Type == ecRebuildT && t.State == completedS
	})
	// Deletes while the server is still away: its .ecj misses them.
	if err := s.Sim.DeleteData(vid, admintest.MB/8, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Sim.Server(3).Start(); err != nil {
		t.Fatal(err)
	}
	waitRegistered(s, 8)
	testutil.EventuallyTrue(t, admintest.Wait, "a remove_extra task", func() bool { return len(tasksOf(s.Tasks(), removeExtraT)) > 0 })
	testutil.EventuallyTrue(t, 2*admintest.Wait, "every shard mounted once", func() bool {
		m := s.ECMounted(vid)
		for sh := uint32(0); sh < sim.TotalShards; sh++ {
			if len(m[sh]) != 1 {
				return false
			}
		}
		return true
	})
	tasks := s.WaitQuiet()
	for _, rx := range tasksOf(tasks, removeExtraT) {
		if rx.State != completedS {
			t.Errorf("remove_extra task %d ended %s (%q)", rx.Id, fsm.StateName(rx.State), rx.LastError)
		}
	}
	s.CheckErasureCoded(vid)
	if n := s.ECFiles(vid); n != sim.TotalShards {
		t.Errorf("%d shard files of volume %d; want %d (the duplicates deleted)", n, vid, sim.TotalShards)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
	s.CheckNoOverlaps()
}
