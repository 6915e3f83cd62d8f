package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestOracleRetiredChangeUntilOwnTopologyShowsIt: the leader retires a
// change once its own poll of the master shows it; a node whose copy of the
// topology is older keeps projecting the change instead of falling back to
// the master's old figures, until its own copy shows it.
func TestOracleRetiredChangeUntilOwnTopologyShowsIt(t *testing.T) {
	c := newCluster(t)
	leader := c.waitLeader()
	ln := c.nodes[leader]
	for _, n := range c.nodes {
		n.server.SetTopology(oracleTopology(100 * oracleMiB))
	}
	apply := func(body *fsmpb.Command) *fsmpb.ApplyResult {
		t.Helper()
		b, err := fsm.Encode(time.Now().UnixNano(), body)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := ln.raft.Apply(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		res := out.(*fsmpb.ApplyResult)
		if err := fsm.ResultError(res); err != nil {
			t.Fatalf("%T: %v", body.Body, err)
		}
		return res
	}
	sub, err := submit(t, ln, fsmpb.TaskType_TASK_TYPE_VACUUM, 7)
	if err != nil {
		t.Fatal(err)
	}
	id := sub.Task.Id
	fence := apply(&fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: id, WorkerId: "w1"}}}).Index
	apply(&fsmpb.Command{Body: &fsmpb.Command_StartTask{StartTask: &fsmpb.StartTask{TaskId: id, Fence: fence}}})
	apply(&fsmpb.Command{Body: &fsmpb.Command_CompleteTask{CompleteTask: &fsmpb.CompleteTask{TaskId: id, Fence: fence, Change: &fsmpb.CapacityChange{
		TaskId: id, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7, OldSize: 100 * oracleMiB, NewSize: 70 * oracleMiB}}}})
	// The leader's poll shows the vacuum: it retires the change.
	ln.server.SetTopology(oracleTopology(70 * oracleMiB))
	retired := apply(&fsmpb.Command{Body: &fsmpb.Command_RetireCapacityChanges{RetireCapacityChanges: &fsmpb.RetireCapacityChanges{TaskIds: []uint64{id}}}}).Index

	for _, i := range c.followers(leader) {
		n := c.nodes[i]
		waitFor(t, n.id+" to apply the retirement", func() bool {
			var idx uint64
			n.fsm.Read(func(st *fsm.State) { idx = st.AppliedIndex() })
			return idx >= retired
		})
		// Its own topology still says 100 MiB.
		resp, err := volumeCapacity(t, n, pb.Consistency_CONSISTENCY_STALE, 7)
		if err != nil {
			t.Fatal(err)
		}
		v := resp.Volumes[0]
		if v.MasterSize != 100*oracleMiB || v.ProjectedSize != 70*oracleMiB || len(v.Adjustments) != 1 ||
			v.Adjustments[0].Kind != pb.Adjustment_COMMITTED_UNREPORTED || v.Adjustments[0].DeltaBytes != -30*oracleMiB {
			t.Errorf("%s with an older topology: %v, want 100 MiB projected to 70 MiB by the retired change", n.id, v)
		}
		srv, err := call(t, func(ctx context.Context) (*pb.GetServerCapacityResponse, error) {
			return oracle(n).GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: []string{"10.0.0.2:8080"}, Consistency: pb.Consistency_CONSISTENCY_STALE})
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := srv.Servers[0].Disks[0]; d.Master.VolumeBytes != 100*oracleMiB || d.Projected.VolumeBytes != 70*oracleMiB {
			t.Errorf("%s server projection with an older topology: %v", n.id, d)
		}
		// Once its own copy shows the vacuum, nothing is adjusted.
		n.server.SetTopology(oracleTopology(70 * oracleMiB))
		resp, err = volumeCapacity(t, n, pb.Consistency_CONSISTENCY_STALE, 7)
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.Volumes[0]; v.MasterSize != 70*oracleMiB || v.ProjectedSize != 70*oracleMiB || len(v.Adjustments) != 0 {
			t.Errorf("%s with the new topology: %v", n.id, v)
		}
	}
}
