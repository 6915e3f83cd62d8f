package rpc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestWatchAgreesWithUnary: for the same state and topology, the watch's
// first update holds exactly what GetVolumeCapacity and GetServerCapacity
// answer, through a task in flight, a committed unreported change, a
// retired change this node's topology does not show yet, and an erasure
// coding in flight.
func TestWatchAgreesWithUnary(t *testing.T) {
	f := fsm.New()
	s := NewServer(nil, f, "", nil)
	t.Cleanup(s.Close)
	s.SetTopology(oracleTopology(100 * oracleMiB))
	var index uint64
	apply := func(cmd *fsmpb.Command) *fsmpb.ApplyResult {
		t.Helper()
		index++
		b, err := fsm.Encode(time.Now().UnixNano(), cmd) // retired changes stay fresh
		if err != nil {
			t.Fatal(err)
		}
		res := f.Apply(fsm.Entry{Index: index, Command: true, Data: b}).(*fsmpb.ApplyResult)
		if err := fsm.ResultError(res); err != nil {
			t.Fatalf("apply %v: %v", cmd, err)
		}
		return res
	}
	vols := []uint32{7, 8}
	servers := []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}
	check := func(state string) {
		t.Helper()
		ctx := context.Background()
		vr, err := s.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: vols, Consistency: pb.Consistency_CONSISTENCY_STALE})
		if err != nil {
			t.Fatal(err)
		}
		sr, err := s.GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: servers, Consistency: pb.Consistency_CONSISTENCY_STALE})
		if err != nil {
			t.Fatal(err)
		}
		upd, err := s.watchRound(newCapacityWatch(&pb.WatchCapacityRequest{VolumeIds: vols, Servers: servers}), true)
		if err != nil {
			t.Fatal(err)
		}
		if upd.AppliedIndex != vr.AppliedIndex || upd.AppliedIndex != sr.AppliedIndex || upd.TopologyAt != vr.TopologyAt || upd.TopologyAt != sr.TopologyAt {
			t.Errorf("%s: watch at index %d topology %d; unary volumes %d/%d, servers %d/%d", state,
				upd.AppliedIndex, upd.TopologyAt, vr.AppliedIndex, vr.TopologyAt, sr.AppliedIndex, sr.TopologyAt)
		}
		if !proto.Equal(&pb.GetVolumeCapacityResponse{Volumes: upd.Volumes}, &pb.GetVolumeCapacityResponse{Volumes: vr.Volumes}) {
			t.Errorf("%s: volumes differ:\nwatch %v\nunary %v", state, upd.Volumes, vr.Volumes)
		}
		if !proto.Equal(&pb.GetServerCapacityResponse{Servers: upd.Servers}, &pb.GetServerCapacityResponse{Servers: sr.Servers}) {
			t.Errorf("%s: servers differ:\nwatch %v\nunary %v", state, upd.Servers, sr.Servers)
		}
	}
	check("nothing in flight")

	// A vacuum of volume 7 runs and completes: in flight, then committed.
	vac := apply(fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7})).Task.Id
	check("vacuum pending")
	fence := apply(fsm.AssignCmd(vac, "w1", []string{"10.0.0.1:8080", "10.0.0.2:8080"}, nil)).Index
	apply(fsm.StartCmd(vac, fence, ""))
	check("vacuum running")
	apply(fsm.CompleteCmd(vac, fence, "", &fsmpb.CapacityChange{TaskId: vac, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 7, OldSize: 100 * oracleMiB, NewSize: 70 * oracleMiB}))
	check("vacuum committed, unreported")
	// The leader retired it on its own poll; this node's topology is older.
	apply(fsm.RetireCmd(vac))
	check("vacuum retired, not in this topology")

	// A balance of volume 8 in flight, then an erasure coding of volume 7.
	bal := apply(fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 8, Source: "10.0.0.1:8080", Target: "10.0.0.3:8080"})).Task.Id
	check("balance pending")
	apply(fsm.CancelCmd(bal, 0, "", "test"))
	apply(fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 7}))
	check("erasure coding pending")
}
