package scheduler

import (
	"context"
	"errors"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestAssignDuringMasterOutage: a vacuum detected before the master became
// unreachable (or started refilling after a restart) is still assigned,
// planned from the last complete topology, because it needs only volume
// servers; erasure coding and balance, which mark volumes read-only through
// the master, wait; a leader that never saw a complete topology assigns
// nothing.
func TestAssignDuringMasterOutage(t *testing.T) {
	full := build(30, srv(sid(1), 8, v(1, 10<<20).Garbage(6<<20), v(2, 29<<20)).At(sid(1), 18080),
		srv(sid(2), 8), srv(sid(3), 8), srv(sid(4), 8))
	refilling := build(30, srv(sid(2), 8)) // one server re-registered so far
	for _, tc := range []struct {
		name         string
		topo         *seaweed.Topology
		trusted      *seaweed.Topology
		wantAssigned bool
	}{
		{name: "master unreachable", topo: full, trusted: full, wantAssigned: true},
		{name: "master refilling", topo: refilling, trusted: full, wantAssigned: true},
		{name: "no complete topology this term", topo: refilling, trusted: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, a := schedulerAtNow()
			f := a.f
			proposeAll(t, s,
				fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1}),
				fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 2}),
			)
			s.view.topo, s.view.topoOK, s.view.topoErr, s.view.trusted = tc.topo, false, errors.New("connection refused"), tc.trusted
			sess := &Session{id: "w1", caps: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING},
				max: 4, out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
			s.sessions["w1"], s.lastSeen["w1"] = sess, now

			s.maintain(context.Background())

			var vacuum, ec *fsmpb.Task
			f.Read(func(st *fsm.State) { vacuum, _ = st.Task(1); ec, _ = st.Task(2) })
			if ec.State != fsmpb.TaskState_TASK_STATE_PENDING {
				t.Errorf("erasure coding is %v during the outage, want pending (it needs the master)", ec.State)
			}
			if !tc.wantAssigned {
				if vacuum.State != fsmpb.TaskState_TASK_STATE_PENDING || len(sess.out) != 0 {
					t.Fatalf("vacuum is %v with %d messages sent; want pending and nothing sent", vacuum.State, len(sess.out))
				}
				return
			}
			if vacuum.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || vacuum.WorkerId != "w1" {
				t.Fatalf("vacuum is %v on %q, want assigned to w1", vacuum.State, vacuum.WorkerId)
			}
			if len(sess.out) != 1 {
				t.Fatalf("%d messages sent to the worker, want one assignment", len(sess.out))
			}
			spec := (<-sess.out).GetAssign().GetSpec()
			if spec.GetTask().GetId() != 1 || spec.GetSize() != 10<<20 || spec.GetDeletedBytes() != 6<<20 ||
				len(spec.GetReplicas()) != 1 || spec.GetReplicas()[0] != sid(1)+".18080" {
				t.Fatalf("assignment %v; want task 1 planned from the last complete topology (size %d, replica %s)", spec, 10<<20, sid(1)+".18080")
			}
		})
	}
}
