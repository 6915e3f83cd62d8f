package main

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	s.t.Helper()
	var last error
	clients := make([]pb.CapacityOracleClient, len(s.cfgs))
	for i, c := range s.cfgs {
		clients[i] = pb.NewCapacityOracleClient(s.conn(c.GRPCAddr))
	}
	sysWaitFor(s.t, sysWait, fmt.Sprintf("volume %d: every admin's oracle to answer %s", vid, what), func() bool {
		for i := range s.cfgs {
			if s.node(i) == nil {
				continue
			}
			for _, cons := range []pb.Consistency{pb.Consistency_CONSISTENCY_STALE, pb.Consistency_CONSISTENCY_LINEARIZABLE} {
				v, err := oracleVolume(clients[i], cons, vid)
				if err == nil {
					err = cond(v)
				}
				if err != nil {
					last = fmt.Errorf("%s %s: %w", s.cfgs[i].ID, cons, err)
					return false
				}
			}
		}
		return true
	})
	if s.t.Failed() && last != nil {
		s.t.Logf("last answer: %v", last)
	}
}

// TestSystemOracleVacuumAcrossMasterOutage: a vacuum detected but not run
// projects size − garbage on every admin; completed while the master is
// down, it stays as a COMMITTED_UNREPORTED adjustment over the last size
// the master reported, also after a leader change; once the master reports
// again it retires and the projection is the master's new size.
func TestSystemOracleVacuumAcrossMasterOutage(t *testing.T) {
	cfg := sysSimConfig(4)
	s := newSystem(t, cfg)
	vid := s.addOn(sim.VolumeSpec{Size: 4 * mb, FileCount: 400, DeletedBytes: 2 * mb, DeleteCount: 200}, 0)
	s.startAdmins(sysSchedConfig())

	pending := s.waitTask(vid, "a pending vacuum", func(tk *pb.Task) bool { return tk.Type == vacuumT })
	var masterSize uint64
	s.waitOracle(vid, "size − garbage", func(v *pb.VolumeCapacity) error {
		if v.MasterSize < 4*mb || v.DeletedBytes != 2*mb || v.ProjectedSize != v.MasterSize-v.DeletedBytes {
			return fmt.Errorf("master %d, garbage %d, projected %d", v.MasterSize, v.DeletedBytes, v.ProjectedSize)
		}
		if len(v.Adjustments) != 1 || v.Adjustments[0].TaskId != pending.Id || v.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS {
			return fmt.Errorf("adjustments %v", v.Adjustments)
		}
		masterSize = v.MasterSize
		return nil
	})

	s.sim.StopMaster()
	s.startWorker("w1", s.grpcAddrs(), 1)
	done := s.waitTask(vid, "completed with the master down", func(tk *pb.Task) bool { return !active(tk) })
	if done.State != completedS {
		t.Fatalf("task %d ended %v (%q)", done.Id, done.State, done.LastError)
	}
	var newSize uint64
	for _, c := range s.changes() {
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
	old := s.waitLeader()
	s.stopNode(old)
	if l := s.waitLeader(); l == old {
		t.Fatalf("admin %s still leads after being stopped", s.cfgs[old].ID)
	}
	s.waitOracle(vid, "the same projection after a leader change", unreported)

	if err := s.sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	s.waitOracle(vid, "the master's new size", func(v *pb.VolumeCapacity) error {
		if v.MasterSize != newSize || v.ProjectedSize != newSize || len(v.Adjustments) != 0 {
			return fmt.Errorf("master %d, projected %d (want %d), adjustments %v", v.MasterSize, v.ProjectedSize, newSize, v.Adjustments)
		}
		return nil
	})
	sysWaitFor(t, sysWait, "the change to retire", func() bool { return !hasChange(s.changes(), done.Id) })
}
