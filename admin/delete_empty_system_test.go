package admin_test

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

const deleteEmptyT = fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY

// TestSystemDeleteEmpty: delete_empty is off by default: with an empty,
// long-quiet 001 volume in the cluster, detection rounds go by without a
// task. Once the policy sets thresholds.delete_empty_quiet (1h) that
// volume is deleted on both replicas, and only it: an empty volume
// written to a minute ago and a volume holding files stay. Nothing
// overlaps and the durability check at rest is clean (an empty volume
// deleted held no data to lose).
func TestSystemDeleteEmpty(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(3))
	old := time.Now().Add(-2 * time.Hour).Unix()
	empty := s.AddOn(sim.VolumeSpec{ModifiedAt: old}, 0, 1)
	recent := s.AddOn(sim.VolumeSpec{ModifiedAt: time.Now().Add(-time.Minute).Unix()}, 1, 2)
	full := admintest.FillerSpec
	full.ModifiedAt = old
	data := s.AddOn(full, 0, 2)
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")

	s.WaitPolls(3)
	if n := len(tasksOf(s.Tasks(), deleteEmptyT)); n != 0 {
		t.Fatalf("%d delete_empty tasks with no quiet time set; want none (off by default)", n)
	}
	quiet := int64(time.Hour / time.Second)
	setPolicy(t, s, &fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{DeleteEmptyQuietSeconds: &quiet}}, 0)
	testutil.EventuallyTrue(t, admintest.Wait, "a delete_empty task", func() bool { return len(tasksOf(s.Tasks(), deleteEmptyT)) > 0 })
	tasks := s.WaitQuiet()
	de := tasksOf(tasks, deleteEmptyT)
	if len(de) != 1 || len(tasks) != 1 {
		t.Fatalf("tasks %d, of them delete_empty %d; want one delete_empty", len(tasks), len(de))
	}
	if de[0].VolumeId != empty || de[0].State != completedS {
		t.Fatalf("delete_empty of volume %d ended %s (%q); want volume %d completed", de[0].VolumeId, fsm.StateName(de[0].State), de[0].LastError, empty)
	}
	if h := s.Holders(empty); len(h) != 0 {
		t.Fatalf("empty volume %d still on servers %v", empty, h)
	}
	for _, vid := range []uint32{recent, data} {
		if h := s.Holders(vid); len(h) != 2 {
			t.Fatalf("volume %d on servers %v; want both replicas kept", vid, h)
		}
	}
	if v := s.Sim.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after deleting the empty volume: %v", v)
	}
	s.CheckNoOverlaps()
}
