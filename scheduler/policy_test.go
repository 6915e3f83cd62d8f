package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	tVacuum  = fsmpb.TaskType_TASK_TYPE_VACUUM
	tEC      = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	tBalance = fsmpb.TaskType_TASK_TYPE_BALANCE
	tRepl    = fsmpb.TaskType_TASK_TYPE_REPLICATE
)

func off(types ...fsmpb.TaskType) *fsmpb.Policy {
	p := &fsmpb.Policy{}
	for _, t := range types {
		p.Types = append(p.Types, &fsmpb.TaskTypePolicy{Type: t, Disabled: true})
	}
	return p
}

// TestAllowedByPolicy: the default policy lets everything through; a
// paused one nothing, repairs included; a disabled type is left out of
// both the pending queue and detection's proposals, the rest kept in order.
func TestAllowedByPolicy(t *testing.T) {
	pending := []*fsmpb.Task{{Id: 1, Type: tVacuum}, {Id: 2, Type: tBalance}, {Id: 3, Type: tRepl}, {Id: 4, Type: tVacuum}, {Id: 5, Type: tEC}}
	props := []Proposal{{Type: tVacuum, VolumeID: 1}, {Type: tEC, VolumeID: 2}, {Type: tBalance, VolumeID: 3}, {Type: tRepl, VolumeID: 4}}
	ids := func(ts []*fsmpb.Task) (out []uint64) {
		for _, t := range ts {
			out = append(out, t.Id)
		}
		return out
	}
	vols := func(ps []Proposal) (out []uint32) {
		for _, p := range ps {
			out = append(out, p.VolumeID)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		policy  *fsmpb.Policy
		wantIDs []uint64
		wantVol []uint32
	}{
		{"nil (default)", nil, []uint64{1, 2, 3, 4, 5}, []uint32{1, 2, 3, 4}},
		{"default", &fsmpb.Policy{}, []uint64{1, 2, 3, 4, 5}, []uint32{1, 2, 3, 4}},
		{"paused", &fsmpb.Policy{Paused: true}, nil, nil},
		{"vacuum off", off(tVacuum), []uint64{2, 3, 5}, []uint32{2, 3, 4}},
		{"repair off", off(tRepl), []uint64{1, 2, 4, 5}, []uint32{1, 2, 3}},
		{"all off", off(fsm.TaskTypes...), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(AllowedPending(pending, tc.policy)); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("pending %v; want %v", got, tc.wantIDs)
			}
			if got := vols(AllowedProposals(props, tc.policy)); !slices.Equal(got, tc.wantVol) {
				t.Errorf("proposals %v; want %v", got, tc.wantVol)
			}
		})
	}
	if len(pending) != 5 || len(props) != 4 {
		t.Fatal("the inputs were modified")
	}
}

// TestPauseStopsAssignmentNextRound: with the policy paused, a round of
// maintain assigns nothing although a worker has free slots; resumed, the
// next round assigns. A disabled type's pending task stays pending while
// the others are assigned.
func TestPauseStopsAssignmentNextRound(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now, agreed: fsm.PolicyVersion}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	ctx := context.Background()
	const mib = 1 << 20
	for _, vid := range []uint32{1, 2} {
		if _, err := s.propose(ctx, fsm.SubmitCmd(&fsmpb.SubmitTask{Type: tVacuum, VolumeId: vid})); err != nil {
			t.Fatal(err)
		}
	}
	s.view.topo = build(100, srv(sid(1), 20, v(1, 10*mib).Garbage(6*mib), v(2, 10*mib).Garbage(6*mib)))
	s.view.topoOK, s.view.topoAsked = true, now
	sess := &Session{id: "w1", caps: []fsmpb.TaskType{tVacuum}, max: 4, out: make(chan *pb.AdminMessage, 8), done: make(chan struct{})}
	s.sessions["w1"], s.lastSeen["w1"] = sess, now
	states := func() (out []fsmpb.TaskState) {
		f.Read(func(st *fsm.State) {
			for id := uint64(1); id <= 2; id++ {
				task, _ := st.Task(id)
				out = append(out, task.State)
			}
		})
		return out
	}
	pendingBoth := []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_PENDING}

	if _, err := s.propose(ctx, fsm.PauseCmd(true, "incident", "test")); err != nil {
		t.Fatal(err)
	}
	s.maintain(ctx)
	if got := states(); !slices.Equal(got, pendingBoth) || len(sess.out) != 0 {
		t.Fatalf("paused: tasks %v, %d sent; want both pending, none sent", got, len(sess.out))
	}

	// Resumed with vacuum disabled: still nothing.
	if _, err := s.propose(ctx, fsm.SetPolicyCmd(off(tVacuum), 1, "test")); err != nil {
		t.Fatal(err)
	}
	s.maintain(ctx)
	if got := states(); !slices.Equal(got, pendingBoth) || len(sess.out) != 0 {
		t.Fatalf("vacuum disabled: tasks %v, %d sent; want both pending, none sent", got, len(sess.out))
	}

	if _, err := s.propose(ctx, fsm.SetPolicyCmd(&fsmpb.Policy{}, 2, "test")); err != nil {
		t.Fatal(err)
	}
	s.maintain(ctx)
	assigned := []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_ASSIGNED}
	if got := states(); !slices.Equal(got, assigned) || len(sess.out) != 2 {
		t.Fatalf("resumed: tasks %v, %d sent; want both assigned and sent in the first round", got, len(sess.out))
	}
}

// TestPauseStopsDetection: a detection round under a paused policy, or
// with the type disabled, submits nothing; resumed, the same topology
// gets its vacuum.
func TestPauseStopsDetection(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now, agreed: fsm.PolicyVersion}
	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	ctx := context.Background()
	const mib = 1 << 20
	topo := build(100, srv(sid(1), 20, v(1, 10*mib).Garbage(6*mib)))
	if len(Detect(topo, idle, nil, s.cfg.Thresholds, now)) == 0 {
		t.Fatal("the topology calls for no work: the test proves nothing")
	}
	count := func() (n int) {
		f.Read(func(st *fsm.State) { n = len(st.Tasks(fsm.TaskFilter{})) })
		return n
	}
	a.applyAll(t, fsm.PauseCmd(true, "", "test"))
	s.detect(ctx, topo)
	if n := count(); n != 0 {
		t.Fatalf("paused: %d tasks detected", n)
	}
	a.applyAll(t, fsm.SetPolicyCmd(off(tVacuum), 1, "test"))
	s.detect(ctx, topo)
	if n := count(); n != 0 {
		t.Fatalf("vacuum disabled: %d tasks detected", n)
	}
	a.applyAll(t, fsm.SetPolicyCmd(&fsmpb.Policy{}, 2, "test"))
	s.detect(ctx, topo)
	if n := count(); n != 1 {
		t.Fatalf("resumed: %d tasks detected; want 1", n)
	}
}
