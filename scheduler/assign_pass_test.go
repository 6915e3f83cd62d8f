package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestAssignPassWaitsTakeNoSlot: a worker with one slot, and erasure
// codings older than a vacuum that wait (their volumes list one of the two
// copies their placement asks for). The vacuum is assigned in the same
// pass: a wait gives its slot back. And the waits planned in a pass cost
// log entries (an assignment and a requeue each), so only as many are
// recorded as there are free slots; the others are planned next pass.
func TestAssignPassWaitsTakeNoSlot(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now.Add(-time.Hour)}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	for _, vid := range []uint32{1, 3, 4} {
		if _, err := s.propose(context.Background(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid})); err != nil {
			t.Fatal(err)
		}
	}
	a.at = now.Add(-time.Minute) // younger than every waiting task
	if _, err := s.propose(context.Background(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 2})); err != nil {
		t.Fatal(err)
	}
	a.at = now
	const mib = 1 << 20
	s.view.topo = build(100,
		srv(sid(1), 20, vrp(1, 96*mib, 1), vrp(3, 96*mib, 1), vrp(4, 96*mib, 1), v(2, 10*mib).Garbage(6*mib)),
		srv(sid(2), 20), srv(sid(3), 20), srv(sid(4), 20))
	s.view.topoOK, s.view.topoAsked = true, now
	sess := &Session{id: "w1", caps: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING},
		max: 1, out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	s.sessions["w1"], s.lastSeen["w1"] = sess, now

	s.maintain(context.Background())

	f.Read(func(st *fsm.State) {
		vacuum, _ := st.Task(4)
		if vacuum.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || vacuum.WorkerId != "w1" {
			t.Errorf("vacuum is %v on %q, want assigned to w1 in the pass where older tasks waited", vacuum.State, vacuum.WorkerId)
		}
		waited := 0
		for id := uint64(1); id <= 3; id++ {
			ec, _ := st.Task(id)
			if ec.State != fsmpb.TaskState_TASK_STATE_PENDING {
				t.Errorf("erasure coding %d is %v, want pending", id, ec.State)
			}
			if ec.LastError != "" {
				waited++
				if !contains(ec.LastError, "replica missing from the master's topology") || ec.NotBefore <= now.UnixNano() {
					t.Errorf("erasure coding %d after its wait: %v; want the reason and a later not-before", id, ec)
				}
			}
		}
		if waited != 1 {
			t.Errorf("%d waits recorded in one pass with one free slot, want 1", waited)
		}
	})
	if len(sess.out) != 1 || (<-sess.out).GetAssign().GetSpec().GetTask().GetId() != 4 {
		t.Errorf("want exactly the vacuum sent to the worker")
	}
}
