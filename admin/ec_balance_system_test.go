package admin_test

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestSystemECBalance: two EC volumes piled on three and four of eight
// servers are balanced end to end: detection proposes single-shard
// ec_balance moves, workers run them (copy, mount, verify, then remove at
// the source), one move per volume at a time, until nothing is left to
// improve. Every task completes on its first attempt, both volumes end
// with their 14 shards each mounted once and no more than two on a server
// (eight servers: an even spread), no leftover shard file, the servers'
// shard counts within the skew, the durability check clean, every change
// retired and no two operations of a volume overlapping.
func TestSystemECBalance(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(8))
	addSpreadEc(s, 7, 0, 1, 2)
	addSpreadEc(s, 8, 0, 1, 2, 3)
	sc := admintest.SchedConfig()
	sc.Thresholds.ECBalanceSkew = scheduler.DefaultECBalanceSkew
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.StartWorker("w2", s.GRPCAddrs(), 2)
	s.WaitConnected("w1", "w2")
	tasks := s.WaitQuiet()
	if len(tasks) == 0 {
		t.Fatal("no ec_balance task for skewed volumes")
	}
	for _, tk := range tasks {
		if tk.Type != fsmpb.TaskType_TASK_TYPE_EC_BALANCE || tk.State != completedS || tk.Attempt != 1 {
			t.Errorf("task %d (%s of volume %d) ended %s on attempt %d (%q); want ec_balance completed on attempt 1",
				tk.Id, fsm.TypeName(tk.Type), tk.VolumeId, fsm.StateName(tk.State), tk.Attempt, tk.LastError)
		}
		if tk.Priority > 1 {
			t.Errorf("task %d priority %d: ec_balance is routine work", tk.Id, tk.Priority)
		}
	}
	load := map[int]int{}
	for _, vid := range []uint32{7, 8} {
		s.CheckErasureCoded(vid)
		if n := s.ECFiles(vid); n != sim.TotalShards {
			t.Errorf("%d shard files of volume %d; want %d (no copy left behind)", n, vid, sim.TotalShards)
		}
		per := map[int]int{}
		for _, on := range s.ECMounted(vid) {
			for _, i := range on {
				per[i]++
				load[i]++
			}
		}
		for i, n := range per {
			if n > 2 {
				t.Errorf("volume %d: server %d holds %d shards, more than an even spread over 8 servers (2): %v", vid, i, n, per)
			}
		}
	}
	lo, hi := placement.TotalShards, 0
	for i := range s.Sim.Servers() {
		lo, hi = min(lo, load[i]), max(hi, load[i])
	}
	if hi-lo > scheduler.DefaultECBalanceSkew {
		t.Errorf("servers hold %d to %d shards: %v; want within %d", lo, hi, load, scheduler.DefaultECBalanceSkew)
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after balancing: %v", v)
	}
	s.CheckNoOverlaps()
	t.Logf("%d ec_balance moves", len(tasks))
	s.WaitHashes(0, 1, 2)
}
