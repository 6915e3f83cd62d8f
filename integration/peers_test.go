package integration

import (
	"fmt"
	"strings"
	"testing"
)

// TestPeersAddRemove: a fourth admin started with the cluster's --peers and
// no --bootstrap joins through
// `ctl peers add`, catches up on the existing state, and leaves again through
// `ctl peers remove`; the cluster keeps working on three.
func TestPeersAddRemove(t *testing.T) {
	c := startCluster(t, 3)
	first := c.nodes[:3]
	cl := dialAdmins(t, c.addrs())
	submitMany(t, cl, 1, 20)

	a4 := c.newNode("a4")
	a4.Peers = first[0].Peers // the members it asks; no --bootstrap: it waits to be added
	a4.start(t)

	// Add through a follower, so the call is forwarded to the leader.
	st := c.waitStable(t, first...)
	var via *node
	for _, nd := range first {
		if nd.ID != st.LeaderID {
			via = nd
			break
		}
	}
	res := ctl(t, via.GRPCAddr, "peers", "add", "a4", a4.RaftAddr)
	if res.Code != 0 {
		t.Fatalf("peers add a4 via %s failed\n%s", via.ID, res)
	}
	if !strings.Contains(res.Stdout, "a4") {
		t.Errorf("peers add output does not mention a4: %q", res.Stdout)
	}

	// Four members everywhere, a4 a follower with its gRPC address published
	// and the leader's applied index.
	st = c.waitStable(t, c.nodes...)
	if m, _ := st.member("a4"); m.State != "follower" {
		t.Fatalf("a4 is %q, want follower", m.State)
	}
	eventually(t, "a4 to hold every task in its own state", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]taskJSON](t, "tasks", a4.GRPCAddr, "tasks", "--stale")
		if err != nil {
			return false, err.Error()
		}
		return len(tasks) == 20, fmt.Sprintf("a4 holds %d tasks, want 20", len(tasks))
	})
	// a4 serves clients like any member: a write through it is forwarded.
	sub := ctlJSON[submitJSON](t, "submit", a4.GRPCAddr, "task", "submit", "--type", "balance", "--volume", "400")
	if sub.Existing == nil || *sub.Existing || sub.VolumeID != 400 {
		t.Fatalf("submit via a4 returned %+v existing %v", sub.taskJSON, sub.Existing)
	}
	// Adding it again is harmless.
	if res := ctl(t, c.nodes[0].GRPCAddr, "peers", "add", "a4", a4.RaftAddr); res.Code != 0 {
		t.Fatalf("repeating peers add a4 failed\n%s", res)
	}
	st = c.waitStable(t, c.nodes...)
	if len(st.Members) != 4 {
		t.Fatalf("%d members after a repeated add, want 4", len(st.Members))
	}

	// Remove it again (through a4 itself: forwarded to the leader).
	res = ctl(t, a4.GRPCAddr, "peers", "remove", "a4")
	if res.Code != 0 {
		t.Fatalf("peers remove a4 failed\n%s", res)
	}
	st = c.waitStable(t, first...)
	if _, ok := st.member("a4"); ok || len(st.Members) != 3 {
		t.Fatalf("after removing a4 the members are %+v", st.Members)
	}
	// The three keep working.
	sub = ctlJSON[submitJSON](t, "submit", c.nodes[2].GRPCAddr, "task", "submit", "--type", "vacuum", "--volume", "401")
	if sub.Existing == nil || *sub.Existing {
		t.Fatalf("submit after removal returned existing %v", sub.Existing)
	}
	for _, nd := range first {
		tasks := ctlJSON[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks")
		if len(tasks) != 22 {
			t.Fatalf("%d tasks via %s after removing a4, want 22", len(tasks), nd.ID)
		}
	}
	// The removed node still shuts down cleanly.
	a4.term(t)
}
