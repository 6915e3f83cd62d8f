package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// TestWipedAdminRefusesToRejoin: a replaced disk must not cost an
// acknowledged write (docs/architecture.md §9.1), with the real binary:
// three admins L (leader), B and W. B is killed; a task is acknowledged (it
// is on L and W); L and W are killed and W's data dir is wiped (a replaced
// disk); W is restarted with its usual command line, and B. W must refuse
// to start with the recovery in one sentence: if it started, B would be
// elected with the vote W forgot and the acknowledged task would be lost
// and its id handed out again. Once L is back the task is there, and the
// documented recovery (peers remove W, start W empty, peers add W) brings
// W back with it; new submissions get fresh ids.
func TestWipedAdminRefusesToRejoin(t *testing.T) {
	c := startCluster(t, 3)
	st := c.waitStable(t, c.nodes...)
	l := c.node(st.LeaderID)
	var followers []*node
	for _, nd := range c.nodes {
		if nd != l {
			followers = append(followers, nd)
		}
	}
	b, w := followers[0], followers[1]
	t.Logf("L=%s B=%s W=%s", l.ID, b.ID, w.ID)

	b.kill9(t)
	acked := ctlJSON[submitJSON](t, "submit", l.GRPCAddr, "task", "submit", "--type", "vacuum", "--volume", "7")
	if acked.ID == 0 {
		t.Fatalf("submit returned %+v", acked.taskJSON)
	}
	l.kill9(t)
	w.kill9(t)
	if err := os.RemoveAll(w.DataDir); err != nil {
		t.Fatal(err)
	}
	w.start(t) // its usual command line: --peers and --bootstrap as in the unit file
	b.start(t)

	// W refuses as soon as B answers, though L is down.
	refused := false
	testutil.Poll(t, 45*time.Second, pollEvery, w.ID+" to refuse to start (or to serve with "+b.ID+")", func() (bool, string) {
		if !w.running() {
			refused = true
			return true, ""
		}
		// The old behaviour: W and B form a quorum.
		s, _, err := ctlJSONErr[statusJSON](t, "status", b.GRPCAddr, "status", "--timeout", "3s")
		if err == nil && s.LeaderID != "" {
			return true, ""
		}
		return false, w.ID + " still running, no leader yet"
	})
	if refused {
		st, last, missing := w.wipedRefusal(t, "peer "+b.ID)
		if st == nil || st.ExitCode() == 0 {
			t.Errorf("%s exited with %v, want a non-zero exit", w.ID, st)
		}
		for _, want := range missing {
			t.Errorf("%s's refusal does not say %q: %q", w.ID, want, last)
		}
		if strings.Contains(last, ". ") {
			t.Errorf("%s's refusal is not one sentence: %q", w.ID, last)
		}
	} else {
		t.Errorf("wiped %s started and formed a quorum with %s instead of refusing", w.ID, b.ID)
	}

	// L returns; the acknowledged task is there and ids stay fresh.
	l.start(t)
	checkTasks := func(via *node, stale bool, want ...taskJSON) []taskJSON {
		t.Helper()
		var tasks []taskJSON
		args := []string{"tasks"}
		if stale {
			args = append(args, "--stale")
		}
		eventually(t, "the task list via "+via.ID, func() (bool, string) {
			var err error
			tasks, _, err = ctlJSONErr[[]taskJSON](t, "tasks", via.GRPCAddr, args...)
			if err != nil {
				return false, err.Error()
			}
			byID := map[uint64]bool{}
			for _, tk := range tasks {
				byID[tk.ID] = true
			}
			for _, tk := range want {
				if !byID[tk.ID] {
					return false, fmt.Sprintf("%s lists %+v, without task %d", via.ID, tasks, tk.ID)
				}
			}
			return true, ""
		})
		tasksByID(t, tasks) // no id twice
		return tasks
	}
	checkTasks(l, false, acked.taskJSON)
	next := ctlJSON[submitJSON](t, "submit", l.GRPCAddr, "task", "submit", "--type", "vacuum", "--volume", "8")
	if next.ID <= acked.ID {
		t.Fatalf("a new task got id %d, not above the acknowledged task's %d: an id was handed out twice", next.ID, acked.ID)
	}
	if !refused {
		return // the old behaviour: nothing to recover
	}

	// The recovery the refusal names.
	eventually(t, "ctl peers remove "+w.ID, func() (bool, string) {
		res := ctl(t, l.GRPCAddr, "peers", "remove", w.ID)
		return res.Code == 0, res.String()
	})
	w.start(t) // same command line, empty data dir: it waits to be added
	// Add it once it waits (its API answers once raft runs): added while it
	// still asks its peers, it would rightly refuse again.
	eventually(t, w.ID+" to wait to be added", func() (bool, string) {
		if !w.running() {
			t.Fatalf("%s exited instead of waiting to be added:\n%s", w.ID, w.logTail(5))
		}
		_, res, err := ctlJSONErr[statusJSON](t, "status", w.GRPCAddr, "status", "--timeout", "2s")
		if err != nil {
			return false, res.String()
		}
		return true, ""
	})
	eventually(t, "ctl peers add "+w.ID, func() (bool, string) {
		res := ctl(t, l.GRPCAddr, "peers", "add", w.ID, w.RaftAddr)
		return res.Code == 0, res.String()
	})
	c.waitStable(t, c.nodes...)
	checkTasks(w, true, acked.taskJSON, next.taskJSON)
	last := ctlJSON[submitJSON](t, "submit", w.GRPCAddr, "task", "submit", "--type", "vacuum", "--volume", "9")
	if last.ID <= next.ID {
		t.Fatalf("task id %d after the recovery, not above %d", last.ID, next.ID)
	}
	checkTasks(b, false, acked.taskJSON, next.taskJSON, last.taskJSON)
}

// wipedRefusal waits for n, started with its data dir wiped while the
// cluster still counts it, to exit, and returns how it exited, the last
// line it logged, and which of what that line must say it does not: why
// (mention) and the recovery, ctl peers remove then add.
func (n *node) wipedRefusal(t testing.TB, mention string) (st *os.ProcessState, last string, missing []string) {
	t.Helper()
	st = n.waitExit(t)
	if lines := nonEmptyLines(n.log()); len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	for _, want := range []string{mention, "ctl peers remove " + n.ID, "ctl peers add " + n.ID + " " + n.RaftAddr} {
		if !strings.Contains(last, want) {
			missing = append(missing, want)
		}
	}
	return st, last, missing
}
