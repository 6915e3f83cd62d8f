package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// maxFailover is the pass/fail bound on leader failover; deliberately
// generous (timings proper belong to benchmarks).
const maxFailover = 10 * time.Second

// submitMany submits count tasks on volumes first, first+1, ... with mixed
// types through a round-robin gRPC client and returns the acknowledged tasks.
func submitMany(t *testing.T, cl *grpcClient, first uint32, count int) []*fsmpb.Task {
	t.Helper()
	var out []*fsmpb.Task
	for i := 0; i < count; i++ {
		typ := allTypes[i%len(allTypes)]
		resp := cl.submit(t, typ, first+uint32(i))
		if resp.Existing || resp.Task.GetId() == 0 || resp.Task.Type != typ || resp.Task.VolumeId != first+uint32(i) {
			t.Fatalf("submission of %s of volume %d returned %v (existing %v)", typeNames[typ], first+uint32(i), resp.Task, resp.Existing)
		}
		out = append(out, resp.Task)
	}
	return out
}

// requireTasksPresent fails unless every task in want is listed with the same
// id, type and volume.
func requireTasksPresent(t *testing.T, listed []taskJSON, want []*fsmpb.Task) {
	t.Helper()
	m := tasksByID(t, listed)
	for _, w := range want {
		g, ok := m[w.Id]
		if !ok {
			t.Fatalf("acknowledged task %d (%s of volume %d) is missing; %d tasks listed", w.Id, typeNames[w.Type], w.VolumeId, len(listed))
		}
		if g.Type != typeNames[w.Type] || g.VolumeID != w.VolumeId {
			t.Fatalf("task %d is listed as %s of volume %d, want %s of volume %d", w.Id, g.Type, g.VolumeID, typeNames[w.Type], w.VolumeId)
		}
	}
}

// TestLeaderKillFailover: kill -9 the leader (twice, in two rounds): the
// survivors elect a different leader that accepts a write within
// maxFailover, no task is lost, and the killed node restarted with the same
// flags and data dir rejoins as a follower and catches up.
func TestLeaderKillFailover(t *testing.T) {
	c := startCluster(t, 3)
	cl := dialAdmins(t, c.addrs())
	acked := submitMany(t, cl, 1, 30)

	for round := 1; round <= 2; round++ {
		st := c.waitStable(t, c.nodes...)
		old := c.node(st.LeaderID)
		var survivors []*node
		for _, nd := range c.nodes {
			if nd != old {
				survivors = append(survivors, nd)
			}
		}
		survivorAddrs := strings.Join(c.addrs(survivors...), ",")

		old.kill9(t)
		killed := time.Now()
		vol := uint32(1000 + round)
		var sub submitJSON
		var elapsed time.Duration
		eventually(t, "a new leader to accept a write", func() (bool, string) {
			s, _, err := ctlJSONErr[submitJSON](t, "submit", survivorAddrs, "task", "submit", "--type", "vacuum", "--volume", strconv.Itoa(int(vol)), "--timeout", "3s")
			if err != nil {
				return false, err.Error()
			}
			elapsed = time.Since(killed)
			sub = s
			return true, ""
		})
		t.Logf("round %d: killed leader %s; a new leader accepted a write %s later", round, old.ID, elapsed.Round(time.Millisecond))
		if elapsed > maxFailover {
			t.Errorf("round %d: failover took %s, want at most %s", round, elapsed.Round(time.Millisecond), maxFailover)
		}
		if sub.VolumeID != vol || sub.Type != "vacuum" || sub.ID == 0 {
			t.Fatalf("post-failover submission returned %+v", sub.taskJSON)
		}
		acked = append(acked, &fsmpb.Task{Id: sub.ID, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vol})

		// The new leader is a different node, and the survivors agree on it.
		newSt := ctlJSON[statusJSON](t, "status", survivors[0].GRPCAddr, "status")
		if newSt.LeaderID == "" || newSt.LeaderID == old.ID {
			t.Fatalf("after killing %s the survivors report leader %q", old.ID, newSt.LeaderID)
		}
		if m, _ := newSt.member(old.ID); m.State != "unreachable" {
			t.Errorf("killed %s is reported in state %q, want unreachable", old.ID, m.State)
		}

		// Nothing was lost.
		listed := ctlJSON[[]taskJSON](t, "tasks", survivors[1].GRPCAddr, "tasks")
		if len(listed) != len(acked) {
			t.Errorf("%d tasks listed after failover, want %d", len(listed), len(acked))
		}
		requireTasksPresent(t, listed, acked)

		// The killed node rejoins with its data dir and catches up.
		old.restart(t)
		st = c.waitStable(t, c.nodes...)
		if m, _ := st.member(old.ID); m.State != "follower" {
			t.Fatalf("restarted %s is %q, want follower", old.ID, m.State)
		}
		eventually(t, "restarted "+old.ID+" to hold every task in its own state", func() (bool, string) {
			tasks, _, err := ctlJSONErr[[]taskJSON](t, "tasks", old.GRPCAddr, "tasks", "--stale")
			if err != nil {
				return false, err.Error()
			}
			if len(tasks) != len(acked) {
				return false, fmt.Sprintf("%s holds %d tasks, want %d", old.ID, len(tasks), len(acked))
			}
			return true, ""
		})
	}
}

// killAll SIGKILLs every node at once (all signals sent before waiting).
func killAll(t *testing.T, c *cluster) {
	t.Helper()
	for _, nd := range c.nodes {
		if err := nd.signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %s: %v", nd.ID, err)
		}
	}
	for _, nd := range c.nodes {
		nd.waitExit(t)
	}
}

// TestFullClusterKill9Restart: kill -9 every admin at once and restart them
// all; every acknowledged task is still there, unchanged, and the cluster
// accepts new work.
func TestFullClusterKill9Restart(t *testing.T) {
	t.Run("quiescent", func(t *testing.T) {
		c := startCluster(t, 3)
		cl := dialAdmins(t, c.addrs())
		submitMany(t, cl, 1, 30)
		for i, typ := range []string{"vacuum", "erasure_coding", "balance"} {
			ctlJSON[submitJSON](t, "submit", c.nodes[i].GRPCAddr, "task", "submit", "--type", typ, "--volume", strconv.Itoa(500+i))
		}
		before := ctlJSON[[]taskJSON](t, "tasks", c.nodes[0].GRPCAddr, "tasks")
		if len(before) != 33 {
			t.Fatalf("%d tasks before the kill, want 33", len(before))
		}

		killAll(t, c)
		for _, nd := range c.nodes {
			nd.restart(t)
		}
		c.waitStable(t, c.nodes...)

		var maxID uint64
		for _, nd := range c.nodes {
			after := ctlJSON[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks")
			if msg := sameTasks(before, after); msg != "" {
				t.Fatalf("after restarting every node, the list via %s differs: %s", nd.ID, msg)
			}
			for _, tk := range after {
				maxID = max(maxID, tk.ID)
			}
		}
		sub := ctlJSON[submitJSON](t, "submit", c.nodes[1].GRPCAddr, "task", "submit", "--type", "balance", "--volume", "600")
		if sub.Existing == nil || *sub.Existing || sub.ID <= maxID {
			t.Fatalf("new submission after restart returned id %d existing %v; want a new id above %d", sub.ID, sub.Existing, maxID)
		}
		// An old one is still recognised as existing.
		again := ctlJSON[submitJSON](t, "submit", c.nodes[2].GRPCAddr, "task", "submit", "--type", before[0].Type, "--volume", strconv.Itoa(int(before[0].VolumeID)))
		if again.ID != before[0].ID || again.Existing == nil || !*again.Existing {
			t.Fatalf("resubmitting task %d after restart returned id %d existing %v", before[0].ID, again.ID, again.Existing)
		}
	})

	t.Run("concurrent_submissions", func(t *testing.T) {
		c := startCluster(t, 3)
		cl := dialAdmins(t, c.addrs())

		// Several submitters, each with its own round-robin client over all
		// three addresses and its own range of volumes, so that a batch of
		// requests is in flight when the processes die.
		const submitters = 4
		var mu sync.Mutex
		var acked []*fsmpb.Task
		failures := 0
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		// Even if the test stops early, no submitter outlives it.
		defer func() { cancel(); wg.Wait() }()
		for g := 0; g < submitters; g++ {
			cl := dialAdmins(t, c.addrs())
			cl.next = g
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					typ, vol := allTypes[i%len(allTypes)], uint32(5000+g*100000+i)
					resp, err := cl.submitOnce(ctx, 2*time.Second, typ, vol)
					mu.Lock()
					if err == nil {
						if resp.Task.GetVolumeId() == vol && resp.Task.GetType() == typ && !resp.Existing {
							acked = append(acked, resp.Task)
						} else {
							t.Errorf("submission of %s of volume %d was answered with %v (existing %v)", typeNames[typ], vol, resp.Task, resp.Existing)
						}
					} else {
						failures++
					}
					mu.Unlock()
					if err != nil {
						// Do not spin on a dead cluster.
						select {
						case <-ctx.Done():
						case <-time.After(20 * time.Millisecond):
						}
					}
				}
			}()
		}
		eventually(t, "submissions to be acknowledged", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 40, fmt.Sprintf("%d acknowledged, %d failed", len(acked), failures)
		})

		killAll(t, c)
		// Let the submitters see the dead cluster, then stop them.
		eventually(t, "the submitter to see failures", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return failures >= submitters, fmt.Sprintf("%d failures so far", failures)
		})
		cancel()
		wg.Wait()
		mu.Lock()
		ackedCopy := append([]*fsmpb.Task(nil), acked...)
		fails := failures
		mu.Unlock()
		t.Logf("%d submissions acknowledged before the kill, %d failed", len(ackedCopy), fails)

		for _, nd := range c.nodes {
			nd.restart(t)
		}
		c.waitStable(t, c.nodes...)

		listed := ctlJSON[[]taskJSON](t, "tasks", c.nodes[0].GRPCAddr, "tasks")
		requireTasksPresent(t, listed, ackedCopy)
		vols := map[uint32]uint64{}
		for _, tk := range listed {
			if prev, dup := vols[tk.VolumeID]; dup {
				t.Errorf("volume %d has two tasks: %d and %d", tk.VolumeID, prev, tk.ID)
			}
			vols[tk.VolumeID] = tk.ID
		}
		t.Logf("%d tasks present after restart (%d acknowledged; the rest had an unknown outcome)", len(listed), len(ackedCopy))

		// The restarted cluster accepts new work.
		resp := cl.submit(t, fsmpb.TaskType_TASK_TYPE_VACUUM, 9000)
		if resp.Existing || resp.Task.GetVolumeId() != 9000 {
			t.Fatalf("submission after restart returned %v existing %v", resp.Task, resp.Existing)
		}
	})
}
