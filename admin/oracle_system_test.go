package admin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// oracleVolume asks a capacity oracle about one volume.
func oracleVolume(c pb.CapacityOracleClient, cons pb.Consistency, vid uint32) (*pb.VolumeCapacity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.GetVolumeCapacity(ctx,
		&pb.GetVolumeCapacityRequest{VolumeIds: []uint32{vid}, Consistency: cons})
	if err != nil {
		return nil, err
	}
	return resp.Volumes[0], nil
}

// waitOracle waits until every running admin's STALE answer, and a
// LINEARIZABLE one through each running admin, satisfies cond.
func (s *system) waitOracle(vid uint32, what string, cond func(v *pb.VolumeCapacity) error) {
	s.T.Helper()
	var last error
	clients := make([]pb.CapacityOracleClient, len(s.Cfgs))
	for i, c := range s.Cfgs {
		clients[i] = pb.NewCapacityOracleClient(s.Conn(c.GRPCAddr))
	}
	testutil.EventuallyTrue(s.T, admintest.Wait, fmt.Sprintf("volume %d: every admin's oracle to answer %s", vid, what), func() bool {
		for i := range s.Cfgs {
			if s.Node(i) == nil {
				continue
			}
			for _, cons := range []pb.Consistency{pb.Consistency_CONSISTENCY_STALE, pb.Consistency_CONSISTENCY_LINEARIZABLE} {
				v, err := oracleVolume(clients[i], cons, vid)
				if err == nil {
					err = cond(v)
				}
				if err != nil {
					last = fmt.Errorf("%s %s: %w", s.Cfgs[i].ID, cons, err)
					return false
				}
			}
		}
		return true
	})
	if s.T.Failed() && last != nil {
		s.T.Logf("last answer: %v", last)
	}
}

// TestSystemOracleVacuumAcrossMasterOutage: a vacuum detected but not run
// projects size − garbage on every admin; completed while the master is
// down, it stays as a COMMITTED_UNREPORTED adjustment over the last size
// the master reported, also after a leader change; once the master reports
// again it retires and the projection is the master's new size.
func TestSystemOracleVacuumAcrossMasterOutage(t *testing.T) {
	cfg := admintest.SimConfig(4)
	s := newSystem(t, cfg)
	vid := s.AddOn(sim.VolumeSpec{Size: 4 * admintest.MB, FileCount: 400, DeletedBytes: 2 * admintest.MB, DeleteCount: 200}, 0)
	s.StartAdmins(admintest.SchedConfig())

	pending := s.WaitTask(vid, "a pending vacuum", func(tk *fsmpb.Task) bool { return tk.Type == vacuumT })
	var masterSize uint64
	s.waitOracle(vid, "size − garbage", func(v *pb.VolumeCapacity) error {
		if v.MasterSize < 4*admintest.MB || v.DeletedBytes != 2*admintest.MB || v.ProjectedSize != v.MasterSize-v.DeletedBytes {
			return fmt.Errorf("master %d, garbage %d, projected %d", v.MasterSize, v.DeletedBytes, v.ProjectedSize)
		}
		if len(v.Adjustments) != 1 || v.Adjustments[0].TaskId != pending.Id || v.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS {
			return fmt.Errorf("adjustments %v", v.Adjustments)
		}
		masterSize = v.MasterSize
		return nil
	})

	s.Sim.StopMaster()
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	done := s.WaitTask(vid, "completed with the master down", func(tk *fsmpb.Task) bool { return !admintest.Active(tk) })
	if done.State != completedS {
		t.Fatalf("task %d ended %v (%q)", done.Id, done.State, done.LastError)
	}
	var newSize uint64
	for _, c := range s.Changes() {
		if c.TaskId == done.Id {
			newSize = c.NewSize
		}
	}
	if newSize == 0 || newSize >= masterSize {
		t.Fatalf("change of task %d: new size %d (master size %d)", done.Id, newSize, masterSize)
	}
	unreported := func(v *pb.VolumeCapacity) error {
		if v.MasterSize != masterSize || v.ProjectedSize != newSize {
			return fmt.Errorf("master %d (want %d), projected %d (want %d)", v.MasterSize, masterSize, v.ProjectedSize, newSize)
		}
		if len(v.Adjustments) != 1 || v.Adjustments[0].TaskId != done.Id || v.Adjustments[0].Kind != pb.Adjustment_COMMITTED_UNREPORTED ||
			v.Adjustments[0].DeltaBytes != int64(newSize)-int64(masterSize) {
			return fmt.Errorf("adjustments %v", v.Adjustments)
		}
		return nil
	}
	s.waitOracle(vid, "the last reported size and a committed-unreported vacuum", unreported)

	// The leader fails: the survivors, one of them the new leader, answer
	// the same projection.
	old := s.WaitLeader()
	s.StopNode(old)
	if l := s.WaitLeader(); l == old {
		t.Fatalf("admin %s still leads after being stopped", s.Cfgs[old].ID)
	}
	s.waitOracle(vid, "the same projection after a leader change", unreported)

	if err := s.Sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	s.waitOracle(vid, "the master's new size", func(v *pb.VolumeCapacity) error {
		if v.MasterSize != newSize || v.ProjectedSize != newSize || len(v.Adjustments) != 0 {
			return fmt.Errorf("master %d, projected %d (want %d), adjustments %v", v.MasterSize, v.ProjectedSize, newSize, v.Adjustments)
		}
		return nil
	})
	testutil.EventuallyTrue(t, admintest.Wait, "the change to retire", func() bool { return !admintest.HasChange(s.Changes(), done.Id) })
}
