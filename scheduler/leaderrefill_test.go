package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestMasterLeaderChangeRefills: a new SeaweedFS master leader answers with
// only the volume servers that have re-registered with it so far. Polls of
// the old leader count for nothing toward accepting its smaller topology
// (issue 13: no decision from a refilling topology): detection stays paused
// until it has refilled to the last trusted server count.
func TestMasterLeaderChangeRefills(t *testing.T) {
	v := newView()
	full := build(30, srv(sid(1), 8), srv(sid(2), 8), srv(sid(3), 8))
	lessOne := build(30, srv(sid(1), 8), srv(sid(2), 8))
	at := now
	for range 2 {
		at = at.Add(time.Second)
		v.polled(full, nil, at, at, 1)
	}
	if !v.topoOK {
		t.Fatal("two agreeing polls of the first master leader: want trusted")
	}
	// One server misses the old leader for two polls (not yet accepted).
	for range 2 {
		at = at.Add(time.Second)
		v.polled(lessOne, nil, at, at, 1)
	}
	if v.topoOK {
		t.Fatal("two polls with a server fewer: want not trusted yet")
	}
	// The leader dies; the new one has heard from two servers so far.
	at = at.Add(time.Second)
	v.polled(nil, errors.New("no SeaweedFS master leads"), at, at, 1)
	at = at.Add(time.Second)
	v.polled(lessOne, nil, at, at, 2)
	st := &pb.Maintenance{}
	v.status(st, at)
	if v.topoOK || st.MasterState != "refilling" {
		t.Fatalf("first poll of a new master leader, refilling (2 of 3 servers): state %q, trusted %v; want refilling, not trusted", st.MasterState, v.topoOK)
	}
	if topo, ok := v.assignTopology(); topo != full || ok {
		t.Fatalf("refilling: plans from %v (%v), want the last complete topology", topo, ok)
	}
	at = at.Add(time.Second)
	v.polled(full, nil, at, at, 2)
	if !v.topoOK {
		t.Fatal("the new leader refilled to every server: want trusted")
	}
}

// TestPlanWaitsWhileRefilling: a vacuum whose volume the last complete
// topology does not list, planned while the master is refilling after a
// leader change, waits for a complete topology instead of failing.
func TestPlanWaitsWhileRefilling(t *testing.T) {
	s, a := schedulerAtNow()
	f := a.f
	proposeAll(t, s, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 9}))
	full := build(30, srv(sid(1), 8, v(1, 10<<20)).At(sid(1), 18080), srv(sid(2), 8))
	refilling := build(30, srv(sid(2), 8))
	s.view.topo, s.view.topoOK, s.view.trusted = refilling, false, full
	s.view.trustedAsked = time.Now().Add(time.Hour) // long after the submission
	sess := &Session{id: "w1", caps: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
		max: 4, out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	s.sessions["w1"], s.lastSeen["w1"] = sess, now

	s.maintain(context.Background())

	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	if task.State == fsmpb.TaskState_TASK_STATE_FAILED {
		t.Fatalf("vacuum of volume 9 planned while the master refills: %s %q; want it to wait, not fail", fsm.StateName(task.State), task.LastError)
	}
	if len(sess.out) != 0 {
		t.Fatalf("%d messages sent to the worker, want none", len(sess.out))
	}
}
