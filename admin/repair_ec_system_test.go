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

const ecRebuildT = fsmpb.TaskType_TASK_TYPE_EC_REBUILD

func ecRebuilds(tasks []*fsmpb.Task) []*fsmpb.Task {
	var out []*fsmpb.Task
	for _, t := range tasks {
		if t.Type == ecRebuildT {
			out = append(out, t)
		}
	}
	return out
}

// addSpreadEc creates EC volume vid with its 14 shards dealt round-robin
// over the given servers.
func addSpreadEc(s *system, vid uint32, servers ...int) {
	s.T.Helper()
	shards := map[int][]uint32{}
	for sh := uint32(0); sh < sim.TotalShards; sh++ {
		srv := servers[int(sh)%len(servers)]
		shards[srv] = append(shards[srv], sh)
	}
	if err := s.Sim.AddEcVolume(sim.EcVolumeSpec{ID: vid, Size: 8 * admintest.MB, FileCount: 800, Shards: shards}); err != nil {
		s.T.Fatalf("add EC volume %d: %v", vid, err)
	}
}

// TestSystemECRebuildAfterLoss: an EC volume whose shards on one server
// are lost for good (the server destroyed with its disks) is rebuilt end
// to end through the scheduler: the tracker sees 12 of 14 shards, an
// ec_rebuild is proposed only after --repair-after, planned, run by a
// worker, and the volume ends with its 14 shards each mounted exactly
// once, none on the lost server, no gathered copy left, the durability
// check clean and no two attempts' operations overlapping.
func TestSystemECRebuildAfterLoss(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(8))
	const vid = 7
	addSpreadEc(s, vid, 0, 1, 2, 3, 4, 5, 6)
	sc := admintest.SchedConfig()
	const repairAfter = 2 * time.Second
	sc.Thresholds.RepairAfter = repairAfter
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	s.WaitPolls(1)
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability before the loss: %v", v)
	}

	lost := time.Now()
	s.Sim.Server(3).Lose()
	testutil.EventuallyTrue(t, admintest.Wait, "the loss counted in status and metrics", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.EcVolumesMissingShards == 1 &&
			gaugeValue(t, s, l, "groundskeeper_ec_volumes_missing_shards") == 1
	})
	testutil.EventuallyTrue(t, admintest.Wait, "an ec_rebuild task", func() bool { return len(ecRebuilds(s.Tasks())) > 0 })
	tasks := s.WaitQuiet()
	rbs := ecRebuilds(tasks)
	if len(rbs) != 1 || len(tasks) != 1 {
		t.Fatalf("tasks %d, of them ec_rebuild %d; want exactly one ec_rebuild", len(tasks), len(rbs))
	}
	rt := rbs[0]
	if rt.VolumeId != vid || rt.State != completedS || rt.Attempt != 1 {
		t.Fatalf("ec_rebuild task %d of volume %d ended %s on attempt %d (%q); want volume %d completed on attempt 1",
			rt.Id, rt.VolumeId, fsm.StateName(rt.State), rt.Attempt, rt.LastError, vid)
	}
	if created := time.Unix(0, rt.CreatedAt); created.Sub(lost) < repairAfter {
		t.Errorf("ec_rebuild submitted %s after the loss, before --repair-after %s", created.Sub(lost), repairAfter)
	}
	if rt.Priority <= 10 {
		t.Errorf("ec_rebuild priority %d is not above routine work", rt.Priority)
	}
	s.CheckErasureCoded(vid)
	for sh, on := range s.ECMounted(vid) {
		if slices.Contains(on, 3) {
			t.Errorf("shard %d mounted on the lost server 3", sh)
		}
	}
	if n := s.ECFiles(vid); n != sim.TotalShards {
		t.Errorf("%d shard files of volume %d after the rebuild; want %d (the gathered copies removed)", n, vid, sim.TotalShards)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the rebuild: %v", v)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "no loss counted after the rebuild, the capacity change retired", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.EcVolumesMissingShards == 0 && st.OldestLoss == 0 && len(s.Changes()) == 0 &&
			gaugeValue(t, s, l, "groundskeeper_ec_volumes_missing_shards") == 0
	})
	s.CheckNoOverlaps()
	s.WaitHashes(0, 1, 2)
}

// TestSystemNoECRebuildWhenServerReturns: a server holding shards that is
// back within --repair-after causes no ec_rebuild task.
func TestSystemNoECRebuildWhenServerReturns(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(8))
	const vid = 7
	addSpreadEc(s, vid, 0, 1, 2, 3, 4, 5, 6)
	sc := admintest.SchedConfig()
	sc.Thresholds.RepairAfter = 10 * time.Second
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	s.WaitPolls(1)

	s.Sim.Server(3).Stop()
	waitRegistered(s, 7)
	testutil.EventuallyTrue(t, admintest.Wait, "the missing shards seen", func() bool {
		l := s.Leader()
		if l < 0 {
			return false
		}
		st, ok := s.Node(l).Scheduler().Status()
		return ok && st.EcVolumesMissingShards == 1
	})
	if err := s.Sim.Server(3).Start(); err != nil {
		t.Fatal(err)
	}
	waitRegistered(s, 8)
	s.WaitPolls(3)
	if rbs := ecRebuilds(s.Tasks()); len(rbs) != 0 {
		t.Fatalf("a server back within --repair-after led to ec_rebuild tasks: %v", rbs)
	}
	s.CheckErasureCoded(vid)
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability: %v", v)
	}
}
