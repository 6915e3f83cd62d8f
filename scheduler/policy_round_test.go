package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestPolicyRound: the leader's rounds apply the version-5 policy: an
// excluded server's volume is neither detected nor assigned, a policy
// threshold replaces the flag, a type cap bounds a pass, and a closed
// window assigns nothing.
func TestPolicyRound(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now, agreed: fsm.ControlVersion}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	ctx := context.Background()
	const mib = 1 << 20
	topo := build(100, srv(sid(1), 20, v(1, 10*mib).Garbage(6*mib), v(3, 10*mib).Garbage(6*mib)), srv(sid(2), 20, v(2, 10*mib).Garbage(6*mib)))
	volumes := func() map[uint32]fsmpb.TaskState {
		out := map[uint32]fsmpb.TaskState{}
		f.Read(func(st *fsm.State) {
			for _, task := range st.Tasks(fsm.TaskFilter{}) {
				out[task.VolumeId] = task.State
			}
		})
		return out
	}
	ratio := 0.7
	a.applyAll(t, fsm.SetPolicyCmd(&fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{VacuumGarbageRatio: &ratio}}, 0, "test"))
	s.detect(ctx, topo)
	if got := volumes(); len(got) != 0 {
		t.Fatalf("garbage 0.6 under a policy threshold of 0.7: detected %v", got)
	}
	a.applyAll(t, fsm.SetPolicyCmd(&fsmpb.Policy{ExcludeServers: []string{sid(2)}}, 1, "test"))
	s.detect(ctx, topo)
	if got := volumes(); len(got) != 2 || got[2] != 0 {
		t.Fatalf("server %s excluded: detected %v; want volumes 1 and 3", sid(2), got)
	}
	// A manual vacuum of the excluded server's volume waits, and the type
	// cap lets one of the other two run.
	if _, err := s.propose(ctx, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: tVacuum, VolumeId: 2})); err != nil {
		t.Fatal(err)
	}
	s.view.topo, s.view.topoOK, s.view.topoAsked = topo, true, now
	sess := &Session{id: "w1", caps: []fsmpb.TaskType{tVacuum}, max: 4, out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	s.sessions["w1"], s.lastSeen["w1"] = sess, now
	closed := []*fsmpb.MaintenanceWindow{{Days: []uint32{uint32(now.UTC().Add(48 * time.Hour).Weekday())}, EndHour: 24}}
	a.applyAll(t, fsm.SetPolicyCmd(&fsmpb.Policy{ExcludeServers: []string{sid(2)}, Windows: closed,
		Types: []*fsmpb.TaskTypePolicy{{Type: tVacuum, MaxConcurrent: 1}}}, 2, "test"))
	s.maintain(ctx)
	if len(sess.out) != 0 {
		t.Fatalf("window closed: %d sent", len(sess.out))
	}
	a.applyAll(t, fsm.SetPolicyCmd(&fsmpb.Policy{ExcludeServers: []string{sid(2)}, Types: []*fsmpb.TaskTypePolicy{{Type: tVacuum, MaxConcurrent: 1}}}, 3, "test"))
	s.maintain(ctx)
	s.maintain(ctx)
	got := volumes()
	assigned := 0
	for _, st := range got {
		if st == fsmpb.TaskState_TASK_STATE_ASSIGNED {
			assigned++
		}
	}
	if assigned != 1 || got[2] != fsmpb.TaskState_TASK_STATE_PENDING || len(sess.out) != 1 {
		t.Fatalf("window open, vacuum cap 1, %s excluded: %v, %d sent; want one of volumes 1 and 3 assigned, 2 pending", sid(2), got, len(sess.out))
	}
}
