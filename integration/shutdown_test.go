package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestSigtermCleanShutdown: SIGTERM each admin in turn (leader or not): it
// exits 0 and logs "stopped cleanly"; the others keep accepting work; the
// node restarted with the same data dir rejoins and holds every task.
func TestSigtermCleanShutdown(t *testing.T) {
	c := startCluster(t, 3)
	cl := dialAdmins(t, c.addrs())
	submitMany(t, cl, 1, 15)

	for i, nd := range c.nodes {
		cleanBefore := strings.Count(nd.log(), "stopped cleanly")
		nd.term(t)
		if got := strings.Count(nd.log(), "stopped cleanly"); got != cleanBefore+1 {
			t.Fatalf("%s exited 0 but its log does not say \"stopped cleanly\"\n%s", nd.ID, nd.logTail(20))
		}

		// The two others still accept a write while it is down, so the
		// restarted node has something to catch up on.
		var others []string
		for _, o := range c.nodes {
			if o != nd {
				others = append(others, o.GRPCAddr)
			}
		}
		vol := strconv.Itoa(700 + i)
		var sub submitJSON
		eventually(t, "a write while "+nd.ID+" is stopped", func() (bool, string) {
			s, _, err := ctlJSONErr[submitJSON](t, "submit", strings.Join(others, ","), "task", "submit", "--type", "vacuum", "--volume", vol, "--timeout", "5s")
			sub = s
			if err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		if sub.Existing == nil || *sub.Existing {
			t.Fatalf("write while %s is stopped returned existing %v", nd.ID, sub.Existing)
		}

		want := ctlJSON[[]taskJSON](t, "tasks", others[0], "tasks")
		if len(want) != 15+i+1 {
			t.Fatalf("%d tasks listed while %s is stopped, want %d", len(want), nd.ID, 15+i+1)
		}

		nd.restart(t)
		c.waitStable(t, c.nodes...)
		eventually(t, "restarted "+nd.ID+" to hold every task in its own state", func() (bool, string) {
			got, _, err := ctlJSONErr[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks", "--stale")
			if err != nil {
				return false, err.Error()
			}
			msg := sameTasks(want, got)
			return msg == "", fmt.Sprintf("%s: %s", nd.ID, msg)
		})
	}

	// A last round: all three, one after another, then all back.
	want := ctlJSON[[]taskJSON](t, "tasks", c.nodes[0].GRPCAddr, "tasks")
	for _, nd := range c.nodes {
		nd.term(t)
	}
	for _, nd := range c.nodes {
		nd.restart(t)
	}
	c.waitStable(t, c.nodes...)
	for _, nd := range c.nodes {
		got := ctlJSON[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks")
		if msg := sameTasks(want, got); msg != "" {
			t.Fatalf("after SIGTERM of every node and restart, list via %s: %s", nd.ID, msg)
		}
	}
}
