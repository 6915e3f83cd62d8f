package scheduler

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

func newView() *masterView {
	v := &masterView{log: hclog.NewNullLogger()}
	v.reset()
	return v
}

// TestMasterViewPolls: a new leader trusts a topology once two polls agree;
// while the master is unreachable, assignments are planned from the last
// trusted topology; operators see the master's state as it goes.
func TestMasterViewPolls(t *testing.T) {
	v := newView()
	state := func() (string, uint32) {
		st := &pb.Maintenance{}
		v.status(st, now)
		return st.MasterState, st.Servers
	}
	if s, _ := state(); s != "starting" {
		t.Fatalf("before any poll: %q, want starting", s)
	}
	if topo, _ := v.assignTopology(); topo != nil {
		t.Fatalf("before any poll: plans from %v, want nothing", topo)
	}
	two := build(30, srv(sid(1), 8), srv(sid(2), 8))
	v.polled(two, nil, now, now, 0)
	if s, n := state(); s != "refilling" || n != 2 || v.topoOK {
		t.Fatalf("first poll: %q (%d servers, ok %v), want refilling: a new leader waits for two agreeing polls", s, n, v.topoOK)
	}
	if topo, ok := v.assignTopology(); topo != nil || ok {
		t.Fatalf("first poll: plans from %v (%v), want nothing trusted yet", topo, ok)
	}
	asked := now.Add(500 * time.Millisecond)
	v.polled(two, nil, asked, now.Add(time.Second), 0)
	if s, _ := state(); s != "ok" {
		t.Fatalf("second agreeing poll: %q, want ok", s)
	}
	if topo, ok := v.assignTopology(); topo != two || !ok || !v.assignAsked().Equal(asked) {
		t.Fatalf("second poll: plans from %v (%v, asked %v), want the polled topology, complete, asked %v", topo, ok, v.assignAsked(), asked)
	}
	v.polled(nil, errors.New("connection refused"), now.Add(2*time.Second), now.Add(2*time.Second), 0)
	st := &pb.Maintenance{}
	v.status(st, now)
	if st.MasterState != "unreachable" || st.MasterError != "connection refused" || st.LastPoll != now.Add(2*time.Second).UnixNano() {
		t.Fatalf("unreachable: %v", st)
	}
	if topo, ok := v.assignTopology(); topo != two || ok {
		t.Fatalf("unreachable: plans from %v (%v), want the last trusted topology, not complete", topo, ok)
	}
	// A smaller answer right after is a master refilling: not trusted.
	one := build(30, srv(sid(1), 8))
	v.polled(one, nil, now.Add(3*time.Second), now.Add(3*time.Second), 0)
	if topo, ok := v.assignTopology(); topo != two || ok || !v.assignAsked().Equal(asked) {
		t.Fatalf("refilling: plans from %v (%v, asked %v), want the last trusted topology, asked %v", topo, ok, v.assignAsked(), asked)
	}
	v.reset()
	if topo, _ := v.assignTopology(); topo != nil || v.lastPoll.IsZero() {
		t.Fatalf("after reset: plans from %v, last poll %v; want nothing trusted, the last poll kept", topo, v.lastPoll)
	}
}

func TestMasterViewShell(t *testing.T) {
	v := newView()
	if !v.shellStale(now) {
		t.Fatal("never asked: want stale")
	}
	v.shellAnswer("alice", true, nil, now, now)
	if !v.shell.Held || v.shell.Holder != "alice" || !v.shell.Since.Equal(now) {
		t.Fatalf("shell after a held answer: %+v", v.shell)
	}
	if v.shellStale(now.Add(time.Second - 1)) {
		t.Fatal("asked less than a second ago: want fresh")
	}
	if !v.shellStale(now.Add(time.Second)) {
		t.Fatal("asked exactly a second ago: want stale")
	}
	// A failed ask keeps the last answer.
	v.shellAnswer("", false, errors.New("timeout"), now.Add(time.Second), now.Add(time.Second))
	if !v.shell.Held || v.shell.Holder != "alice" || v.shell.Err == nil {
		t.Fatalf("shell after a failed ask: %+v; want alice's hold kept, the error noted", v.shell)
	}
	// The same answer again keeps Since and clears the error.
	v.shellAnswer("alice", true, nil, now.Add(2*time.Second), now.Add(2*time.Second))
	if !v.shell.Since.Equal(now) || v.shell.Err != nil {
		t.Fatalf("shell after the same answer: %+v; want since unchanged, no error", v.shell)
	}
	v.polled(nil, errors.New("down"), now, now, 0)
	if v.shellStale(now.Add(time.Hour)) {
		t.Fatal("master unreachable: want the last answer to stand")
	}
}

func TestMasterViewVacuum(t *testing.T) {
	v := newView()
	status := func() (string, bool) {
		st := &pb.Maintenance{}
		v.status(st, now)
		return st.MasterVacuum, st.MasterVacuumOff
	}
	if s, off := status(); s != MasterVacuumNotSet || off {
		t.Fatalf("new term: %q %v", s, off)
	}
	if !v.vacuumSwitched(true) || v.vacuumSwitched(true) || !v.vacuumIsOff() {
		t.Fatal("switching off: want changed once, then unchanged, and off")
	}
	if s, off := status(); s != MasterVacuumOff || !off {
		t.Fatalf("switched off: %q %v", s, off)
	}
	if !v.vacuumSwitched(false) || v.vacuumIsOff() {
		t.Fatal("switching on: want changed, and on")
	}
	if s, _ := status(); s != MasterVacuumOn {
		t.Fatalf("switched on: %q", s)
	}
}
