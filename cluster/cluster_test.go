package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestThreeNodesElectAndReplicate(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	ln := c.nodes[leader]

	// Exactly one node leads; every node has the three voters.
	for i, tn := range c.nodes {
		if i != leader && tn.node.IsLeader() {
			t.Errorf("%s also claims to lead", tn.cfg.ID)
		}
		// A follower learns the configuration from the leader's log, which
		// can reach it after the election is visible: wait for it.
		var members []Member
		waitFor(t, tn.cfg.ID+" to see the three members", func() bool {
			var err error
			members, err = tn.node.Members()
			return err == nil && len(members) == 3
		}, func() string { return fmt.Sprintf("%s sees %+v", tn.cfg.ID, members) })
		for j, m := range members {
			if m.ID != c.nodes[j].cfg.ID || m.RaftAddr != c.nodes[j].cfg.RaftAddr || m.Suffrage != "Voter" {
				t.Errorf("%s: member %d is %+v, want %s at %s as Voter", tn.cfg.ID, j, m, c.nodes[j].cfg.ID, c.nodes[j].cfg.RaftAddr)
			}
		}
	}
	if st := ln.node.Status(); st.State != "leader" || st.LeaderID != ln.cfg.ID || st.LeaderAddr != ln.cfg.RaftAddr || st.Term == 0 {
		t.Errorf("leader status %+v", st)
	}

	// Apply on a follower is refused with the leader's identity. Views lag
	// elections (and a busy machine can cause one), so poll until every
	// follower of the stable leader refuses, naming it.
	cmd := encode(t, submitCmd(99, fsmpb.TaskType_TASK_TYPE_VACUUM))
	accident := false // a node became leader and applied cmd after all
	var last string
	waitFor(t, "every follower to refuse Apply naming the leader", func() bool {
		l, ok := c.stableLeader()
		if !ok {
			last = "no stable leader"
			return false
		}
		for i, tn := range c.nodes {
			if i == l {
				continue
			}
			out, err := tn.node.Apply(context.Background(), cmd)
			if err == nil {
				t.Logf("Apply on %s succeeded (it must have become leader): %v", tn.cfg.ID, out)
				accident = true
				return false
			}
			nl := notLeaderError(t, err)
			if nl.LeaderID != c.nodes[l].cfg.ID {
				last = fmt.Sprintf("%s names leader %q, want %s", tn.cfg.ID, nl.LeaderID, c.nodes[l].cfg.ID)
				return false
			}
			if nl.LeaderAddr != c.nodes[l].cfg.RaftAddr {
				t.Errorf("%s: NotLeaderError %+v names the wrong address", tn.cfg.ID, nl)
			}
			if !strings.Contains(err.Error(), c.nodes[l].cfg.ID) {
				t.Errorf("%s: error %q does not name the leader", tn.cfg.ID, err)
			}
		}
		return true
	}, func() string { return last + c.describe() })
	// Nothing was applied by the refused calls.
	for _, tn := range c.nodes {
		if n := taskCount(tn.fsm); n != 0 && !accident {
			t.Fatalf("%s holds %d tasks after refused applies", tn.cfg.ID, n)
		}
	}

	// Apply on the leader lands everywhere.
	task := c.submit(7)
	if (!accident && task.Id != 1) || task.VolumeId != 7 || task.State != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("unexpected task %v", task)
	}
	hash := c.waitConverged(1)
	for _, tn := range c.nodes {
		if !hasTask(tn.fsm, task.Id) {
			t.Errorf("%s lacks task %d", tn.cfg.ID, task.Id)
		}
	}
	// Applying the same submit again returns the existing task.
	res := c.apply(submitCmd(7, fsmpb.TaskType_TASK_TYPE_VACUUM))
	if !res.Existing || res.Task.GetId() != task.Id {
		t.Fatalf("resubmit gave %v, want the existing task %d", res, task.Id)
	}
	if h := c.waitConverged(1); h != hash {
		// The hash digests the content, not the index it was reached at
		// (HashAt pairs it with the index): a command that changes nothing
		// leaves it as it was.
		t.Errorf("hash changed after a command that changed nothing")
	}
}

func TestLeaderFailoverAndRejoin(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader()
	oldID := c.nodes[old].cfg.ID
	first := c.submit(1)
	c.waitConverged(1)

	c.stop(old)
	leader := c.waitLeader()
	if leader == old {
		t.Fatalf("stopped node %s still leads", oldID)
	}
	second := c.submit(2)
	if second.Id == first.Id {
		t.Fatalf("new leader reused task id %d", first.Id)
	}
	for _, tn := range c.running() {
		waitFor(t, tn.cfg.ID+" to apply the new task", func() bool { return hasTask(tn.fsm, second.Id) })
	}

	// The old leader comes back on the same data dir and catches up.
	c.start(old)
	c.waitConverged(2)
	rejoined := c.nodes[old]
	for _, id := range []uint64{first.Id, second.Id} {
		if !hasTask(rejoined.fsm, id) {
			t.Errorf("rejoined %s lacks task %d", oldID, id)
		}
	}
	if members, err := rejoined.node.Members(); err != nil || len(members) != 3 {
		t.Errorf("rejoined node sees members %v (%v), want 3", members, err)
	}
	// And it takes part: a write made now reaches it too.
	third := c.submit(3)
	c.waitConverged(3)
	if !hasTask(rejoined.fsm, third.Id) {
		t.Errorf("rejoined %s lacks task %d", oldID, third.Id)
	}
}

func TestCatchUpFromSnapshot(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 64
		cfg.TrailingLogs = 16
	})
	leader := c.waitLeader()
	c.submit(1)
	c.waitConverged(1)

	lagging := (leader + 1) % 3
	lagID := c.nodes[lagging].cfg.ID
	lagLast := c.nodes[lagging].node.Status().LastLogIndex
	c.stop(lagging)
	lagDir := c.nodes[lagging].cfg.DataDir

	// Write a few hundred tasks concurrently, so the leader batches them.
	const total = 300
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for v := uint32(2); v <= total; v++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(v uint32) {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := c.tryApply(submitCmd(v, fsmpb.TaskType_TASK_TYPE_VACUUM))
			if err == nil {
				err = fsm.ResultError(res)
			}
			if err != nil {
				t.Errorf("submit volume %d: %v", v, err)
			}
		}(v)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Snapshot on the current leader, so its log no longer reaches back to
	// what the stopped follower has.
	leader = c.waitLeader()
	ln := c.nodes[leader]
	if err := ln.node.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapIndex := ln.node.Status().LastSnapshotIndex
	if snapIndex < total {
		t.Fatalf("leader snapshot index %d, want at least %d", snapIndex, total)
	}
	// Snapshot on the other running node too: should it lead by the time
	// the follower returns, its log must not reach back either.
	for i, tn := range c.nodes {
		if i != leader && tn.running() {
			if err := tn.node.Snapshot(); err != nil {
				t.Fatalf("snapshot %s: %v", tn.cfg.ID, err)
			}
			snapIndex = min(snapIndex, tn.node.Status().LastSnapshotIndex)
		}
	}
	if snapIndex <= lagLast+16 {
		t.Fatalf("snapshots at %d do not outrun the stopped follower's last index %d by the trailing logs", snapIndex, lagLast)
	}
	if err := ln.node.Snapshot(); err != nil { // nothing new: not an error
		t.Fatalf("second snapshot: %v", err)
	}
	if n := snapshotCount(lagDir); n != 0 {
		t.Fatalf("stopped follower already has %d snapshots", n)
	}

	c.start(lagging)
	hash := c.waitConverged(total)
	lag := c.nodes[lagging]
	if taskCount(lag.fsm) != total {
		t.Errorf("%s holds %d tasks, want %d", lagID, taskCount(lag.fsm), total)
	}
	if h := lag.fsm.Hash(); h != hash {
		t.Errorf("%s hash %s, want %s", lagID, h, hash)
	}
	// It caught up by installing the leader's snapshot, not by replaying.
	if got := lag.node.Status().LastSnapshotIndex; got < snapIndex {
		t.Errorf("%s last snapshot index %d, want at least %d (installed from the leader; it stopped at %d)", lagID, got, snapIndex, lagLast)
	}
	if n := snapshotCount(lagDir); n == 0 {
		t.Errorf("%s has no snapshot on disk; want the installed one", lagID)
	}

	// A restart of the caught-up follower restores from its snapshot.
	c.stop(lagging)
	c.start(lagging)
	c.waitConverged(total)
	c.submit(total + 1)
	c.waitConverged(total + 1)
}

// snapshotCount counts the complete snapshots in a node's data dir (raft's
// file store keeps them in <dir>/snapshots/snapshots/<term>-<index>-<ms>).
func snapshotCount(dataDir string) int {
	entries, _ := os.ReadDir(filepath.Join(dataDir, snapshotsDir, "snapshots"))
	n := 0
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

func TestFullRestart(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitLeader()
	const n = 25
	for v := uint32(1); v <= n; v++ {
		c.submit(v)
	}
	before := c.waitConverged(n)
	var lastIndex, term uint64
	for _, tn := range c.nodes {
		st := tn.node.Status()
		lastIndex, term = max(lastIndex, st.LastLogIndex), max(term, st.Term)
	}
	c.shutdownAll()

	// Reopen everything with the same config, peers included: the nodes
	// must rejoin with their state, not bootstrap a new cluster.
	c.startAll()
	for _, tn := range c.nodes {
		st := tn.node.Status()
		if st.LastLogIndex < lastIndex {
			t.Errorf("%s reopened with last log index %d, had %d: its log was lost or rewritten", tn.cfg.ID, st.LastLogIndex, lastIndex)
		}
	}
	c.waitLeader()
	// The leader only appends a no-op and a barrier, neither of which
	// reaches the FSM: the state is exactly what it was.
	after := c.waitConverged(n)
	if after != before {
		t.Fatalf("state hash after restart %s, before %s", after, before)
	}
	for _, tn := range c.nodes {
		if st := tn.node.Status(); st.Term <= term {
			t.Errorf("%s term %d after restart, want above %d", tn.cfg.ID, st.Term, term)
		}
		if m, err := tn.node.Members(); err != nil || len(m) != 3 {
			t.Errorf("%s members %v (%v), want 3", tn.cfg.ID, m, err)
		}
	}
	task := c.submit(n + 1)
	if task.Id != n+1 {
		t.Errorf("new task id %d, want %d (ids continue)", task.Id, n+1)
	}
	c.waitConverged(n + 1)
}

func TestVerifyRead(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	ctx := context.Background()
	var ln *tnode
	var last string
	waitFor(t, "VerifyRead to succeed on the leader and be refused by followers", func() bool {
		l, ok := c.stableLeader()
		if !ok {
			last = "no stable leader"
			return false
		}
		leader, ln = l, c.nodes[l]
		if err := ln.node.VerifyRead(ctx); err != nil {
			last = fmt.Sprintf("leader %s: %v", ln.cfg.ID, err)
			return false
		}
		for i, tn := range c.nodes {
			if i == leader {
				continue
			}
			err := tn.node.VerifyRead(ctx)
			if err == nil {
				last = tn.cfg.ID + " confirmed a read"
				if tn.node.Status().State != "leader" {
					t.Fatalf("follower %s confirmed a linearizable read", tn.cfg.ID)
				}
				return false
			}
			if !errors.Is(err, ErrNotLeader) {
				last = fmt.Sprintf("%s: %v", tn.cfg.ID, err)
				return false
			}
			if nl := notLeaderError(t, err); nl.LeaderID != ln.cfg.ID {
				last = fmt.Sprintf("%s names leader %q", tn.cfg.ID, nl.LeaderID)
				return false
			}
		}
		return true
	}, func() string { return last + c.describe() })

	// A leader cut off from its quorum must not confirm a read.
	for i := range c.nodes {
		if i != leader {
			c.stop(i)
		}
	}
	// Note: the very first call may still succeed. hashicorp/raft counts an
	// AppendEntries response that was already in flight (pipelined) when
	// VerifyLeader was called as a vote, so a read right after the
	// followers went down can be confirmed by their last answers. Once
	// those are drained, and at the latest when the lease runs out, it
	// must refuse.
	waitFor(t, "the isolated leader to refuse VerifyRead", func() bool {
		vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := ln.node.VerifyRead(vctx)
		if err == nil {
			return false
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("isolated leader VerifyRead: %v", err)
		}
		return true
	})
	if ln.node.IsLeader() {
		// The lease runs out within a few heartbeats; it must step down.
		waitFor(t, "the isolated leader to step down", func() bool { return !ln.node.IsLeader() })
	}
	if err := ln.node.VerifyRead(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("VerifyRead after stepping down: %v, want ErrNotLeader", err)
	}
}

// leaderRuns records OnLeader calls.
type leaderRuns struct {
	mu     sync.Mutex
	events []leaderEvent
	active map[string]int
}

type leaderEvent struct {
	id      string
	started bool
	acked   int64 // submits acknowledged to the test before the run started
	tasks   int   // tasks in the node's FSM when the run started (read after acked)
	ready   bool  // node.IsLeader() when the run started
}

func (r *leaderRuns) add(e leaderEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if e.started {
		r.active[e.id]++
	} else {
		r.active[e.id]--
	}
}

func (r *leaderRuns) snapshot() ([]leaderEvent, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	act := map[string]int{}
	for k, v := range r.active {
		if v != 0 {
			act[k] = v
		}
	}
	return append([]leaderEvent(nil), r.events...), act
}

// activeOnlyOn reports whether exactly one OnLeader run is active, on id.
func (r *leaderRuns) activeOnlyOn(id string) bool {
	_, act := r.snapshot()
	return len(act) == 1 && act[id] == 1
}

// slowFSM delays applying, so a node's FSM can lag behind what the cluster
// has committed (as it may on a loaded machine).
type slowFSM struct {
	raft.BatchingFSM
	delay *atomic.Int64 // per log entry, in nanoseconds
}

func (s *slowFSM) Apply(l *raft.Log) interface{} {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

func (s *slowFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d * time.Duration(len(logs)))
	}
	return s.BatchingFSM.ApplyBatch(logs)
}

func TestOnLeader(t *testing.T) {
	runs := &leaderRuns{active: map[string]int{}}
	var acked atomic.Int64
	// Each node's OnLeader sees the node and FSM of its own current run.
	type handle struct {
		node  atomic.Pointer[Node]
		fsm   atomic.Pointer[fsm.FSM]
		delay atomic.Int64
	}
	handles := map[string]*handle{"n1": {}, "n2": {}, "n3": {}}
	c := newCluster(t, 3, func(cfg *Config) {
		h := handles[cfg.ID]
		h.fsm.Store(cfg.FSM)
		cfg.wrapFSM = func(inner raft.FSM) raft.FSM {
			return &slowFSM{BatchingFSM: inner.(raft.BatchingFSM), delay: &h.delay}
		}
		id := cfg.ID
		cfg.OnLeader = func(ctx context.Context) {
			// Every submit acknowledged so far was committed before this
			// run began (by an earlier leader, or by this one after its
			// barrier), so the barrier must have applied it here.
			e := leaderEvent{id: id, started: true, acked: acked.Load()}
			e.tasks = taskCount(h.fsm.Load())
			if n := h.node.Load(); n != nil {
				e.ready = n.IsLeader()
			} else {
				e.ready = true // Open has not returned yet; nothing to check
			}
			runs.add(e)
			<-ctx.Done()
			// A leader loop takes a moment to wind down; Shutdown and a
			// loss of leadership must wait for it.
			time.Sleep(100 * time.Millisecond)
			runs.add(leaderEvent{id: id})
		}
	})
	for _, tn := range c.nodes {
		handles[tn.cfg.ID].node.Store(tn.node)
	}

	first := c.waitLeader()
	waitFor(t, "OnLeader to run on the leader only", func() bool {
		first = c.waitLeader()
		return runs.activeOnlyOn(c.nodes[first].cfg.ID)
	}, c.describe)

	const n = 20
	for v := uint32(1); v <= n; v++ {
		c.submit(v)
		acked.Add(1)
	}
	c.waitConverged(n)

	waitFor(t, "OnLeader to run on the leader only", func() bool {
		first = c.waitLeader()
		return runs.activeOnlyOn(c.nodes[first].cfg.ID)
	}, c.describe)
	firstID := c.nodes[first].cfg.ID

	// Make the followers' FSMs lag: the entries below are committed (and
	// acknowledged) long before the followers have applied them, so the
	// next leader has committed-but-unapplied entries when it wins.
	const lagging = 10
	for i, tn := range c.nodes {
		if i != first {
			handles[tn.cfg.ID].delay.Store(int64(150 * time.Millisecond))
		}
	}
	var wg sync.WaitGroup
	for v := uint32(n + 1); v <= n+lagging; v++ {
		wg.Add(1)
		go func(v uint32) {
			defer wg.Done()
			res, err := c.tryApply(submitCmd(v, fsmpb.TaskType_TASK_TYPE_VACUUM))
			if err == nil {
				err = fsm.ResultError(res)
			}
			if err != nil {
				t.Errorf("submit volume %d: %v", v, err)
				return
			}
			acked.Add(1)
		}(v)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Shutdown cancels the run and waits for it: by the time it returns,
	// OnLeader has returned.
	c.stop(first)
	if _, act := runs.snapshot(); act[firstID] != 0 {
		t.Fatalf("OnLeader still running on %s after Shutdown: %v", firstID, act)
	}

	var second int
	waitFor(t, "OnLeader to run on the new leader only", func() bool {
		second = c.waitLeader()
		return runs.activeOnlyOn(c.nodes[second].cfg.ID)
	}, c.describe)
	secondID := c.nodes[second].cfg.ID
	for _, h := range handles {
		h.delay.Store(0)
	}

	// Leadership lost without a shutdown: stop the last follower, so the
	// leader cannot reach a quorum and steps down; its run is cancelled
	// while the node keeps running.
	for i := range c.nodes {
		if i != second {
			c.stop(i)
		}
	}
	waitFor(t, "OnLeader on "+secondID+" to be cancelled when it loses leadership", func() bool {
		_, act := runs.snapshot()
		return act[secondID] == 0
	})
	if !c.nodes[second].running() {
		t.Fatal("test bug: the leader was stopped")
	}
	if c.nodes[second].node.IsLeader() {
		t.Error("node still reports IsLeader after its OnLeader was cancelled")
	}

	events, _ := runs.snapshot()
	sawSecond := false
	for _, e := range events {
		if !e.started {
			continue
		}
		if !e.ready {
			t.Errorf("OnLeader on %s started before the node was ready", e.id)
		}
		if e.tasks < int(e.acked) {
			t.Errorf("OnLeader on %s started with %d tasks applied, but %d had been acknowledged (barrier first)", e.id, e.tasks, e.acked)
		}
		if e.id == secondID && e.acked == n+lagging {
			sawSecond = true
		}
	}
	if !sawSecond {
		t.Errorf("no OnLeader run on %s after all %d submits: %+v", secondID, n, events)
	}
	// Every run that started also ended (the last one by losing leadership,
	// the others by Shutdown or losing leadership).
	starts, ends := map[string]int{}, map[string]int{}
	for _, e := range events {
		if e.started {
			starts[e.id]++
		} else {
			ends[e.id]++
		}
	}
	if len(starts) == 0 || !maps.Equal(starts, ends) {
		t.Errorf("OnLeader starts %v, ends %v", starts, ends)
	}
}

func TestAddVoterAndRemoveServer(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	for v := uint32(1); v <= 5; v++ {
		c.submit(v)
	}
	want := c.waitConverged(5)

	// A fourth node with an empty data dir, given the cluster's members as
	// peers and no bootstrap, waits to be added.
	var members []Peer
	for _, tn := range c.nodes {
		members = append(members, Peer{ID: tn.cfg.ID, RaftAddr: tn.cfg.RaftAddr})
	}
	joinCfg := fastConfig("n4", testutil.FreeAddr(t), filepath.Join(t.TempDir(), "n4"), members)
	joinFSM := fsm.New()
	joinCfg.FSM = joinFSM
	n4, err := Open(context.Background(), joinCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { n4.Shutdown() }()
	if st := n4.Status(); st.State != "follower" || st.LeaderID != "" {
		t.Errorf("waiting node status %+v, want a follower with no leader", st)
	}
	if m, err := n4.Members(); err != nil || len(m) != 0 {
		t.Errorf("waiting node members %v (%v), want none", m, err)
	}
	_, err = n4.Apply(context.Background(), encode(t, submitCmd(9, fsmpb.TaskType_TASK_TYPE_VACUUM)))
	if nl := notLeaderError(t, err); nl.LeaderID != "" {
		t.Errorf("waiting node names leader %q", nl.LeaderID)
	}

	// Membership changes are leader-only and validated.
	ctx := context.Background()
	for i, tn := range c.nodes {
		if i == leader {
			continue
		}
		notLeaderError(t, tn.node.AddVoter(ctx, joinCfg.ID, joinCfg.RaftAddr))
		notLeaderError(t, tn.node.RemoveServer(ctx, c.nodes[leader].cfg.ID))
	}
	for _, bad := range [][2]string{{"", joinCfg.RaftAddr}, {"bad id", joinCfg.RaftAddr}, {"n5", "nohost"}, {"n5", "127.0.0.1:port"}} {
		if err := c.nodes[leader].node.AddVoter(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("AddVoter(%q, %q) succeeded", bad[0], bad[1])
		}
	}
	if err := c.nodes[leader].node.AddVoter(ctx, "n5", c.nodes[(leader+1)%3].cfg.RaftAddr); err == nil {
		t.Error("AddVoter with another member's address succeeded")
	} else {
		oneSentence(t, err, c.nodes[(leader+1)%3].cfg.RaftAddr, c.nodes[(leader+1)%3].cfg.ID)
	}

	addVoter := func() {
		waitFor(t, "AddVoter n4 to succeed on the leader", func() bool {
			l, ok := c.stableLeader()
			if !ok {
				return false
			}
			err := c.nodes[l].node.AddVoter(ctx, joinCfg.ID, joinCfg.RaftAddr)
			if err != nil && !errors.Is(err, ErrNotLeader) {
				t.Logf("AddVoter: %v", err)
			}
			return err == nil
		})
	}
	addVoter()
	waitFor(t, "n4 to receive the state", func() bool { return joinFSM.Hash() == want || taskCount(joinFSM) >= 5 })
	waitFor(t, "all four to agree on the members", func() bool {
		for _, n := range append([]*Node{n4}, c.nodes[0].node, c.nodes[1].node, c.nodes[2].node) {
			m, err := n.Members()
			if err != nil || len(m) != 4 || m[3].ID != "n4" || m[3].RaftAddr != joinCfg.RaftAddr || m[3].Suffrage != "Voter" {
				return false
			}
		}
		return true
	})
	// Adding it again with the same address changes nothing.
	addVoter()

	// It is a full member: writes reach it.
	task := c.submit(6)
	waitFor(t, "n4 to apply a new task", func() bool { return hasTask(joinFSM, task.Id) })

	// Removing an unknown member is refused.
	leader = c.waitLeader()
	if err := c.nodes[leader].node.RemoveServer(ctx, "nobody"); err == nil {
		t.Error("RemoveServer(nobody) succeeded")
	} else {
		oneSentence(t, err, "nobody", "not a member")
	}

	waitFor(t, "RemoveServer n4 to succeed on the leader", func() bool {
		l, ok := c.stableLeader()
		if !ok {
			return false
		}
		return c.nodes[l].node.RemoveServer(ctx, "n4") == nil
	})
	for _, tn := range c.nodes {
		waitFor(t, tn.cfg.ID+" to drop n4 from its members", func() bool {
			m, err := tn.node.Members()
			return err == nil && len(m) == 3
		})
	}
	if err := n4.Shutdown(); err != nil {
		t.Errorf("shutdown n4: %v", err)
	}
	// The three carry on.
	c.submit(7)
	c.waitConverged(7)
}

func TestApplyMany(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.submit(1) // volume 1 is busy with a vacuum from here on
	cmds := [][]byte{
		encode(t, submitCmd(2, fsmpb.TaskType_TASK_TYPE_VACUUM)),
		encode(t, submitCmd(1, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING)), // refused by the FSM
		encode(t, submitCmd(3, fsmpb.TaskType_TASK_TYPE_BALANCE)),
		encode(t, submitCmd(2, fsmpb.TaskType_TASK_TYPE_VACUUM)), // the first one again
	}
	var outs []any
	var errs []error
	waitFor(t, "ApplyMany to be accepted by a leader", func() bool {
		l, ok := c.stableLeader()
		if !ok {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		outs, errs = c.nodes[l].node.ApplyMany(ctx, cmds)
		for _, err := range errs {
			if err != nil {
				t.Logf("ApplyMany: %v", err)
				return false // lost leadership meanwhile; the submits are idempotent
			}
		}
		return true
	}, c.describe)
	if len(outs) != len(cmds) || len(errs) != len(cmds) {
		t.Fatalf("ApplyMany returned %d results and %d errors for %d commands", len(outs), len(errs), len(cmds))
	}
	res := make([]*fsmpb.ApplyResult, len(outs))
	for i, o := range outs {
		r, ok := o.(*fsmpb.ApplyResult)
		if !ok {
			t.Fatalf("result %d is %T", i, o)
		}
		res[i] = r
	}
	// Results are index-aligned with the commands, and each command got its
	// own log entry, in order.
	if res[0].Task.GetVolumeId() != 2 || res[0].Existing || fsm.ResultError(res[0]) != nil {
		t.Errorf("result 0: %v", res[0])
	}
	if !errors.Is(fsm.ResultError(res[1]), fsm.ErrVolumeBusy) {
		t.Errorf("result 1: %v, want a volume-busy refusal", res[1])
	}
	if res[2].Task.GetVolumeId() != 3 || res[2].Task.GetType() != fsmpb.TaskType_TASK_TYPE_BALANCE {
		t.Errorf("result 2: %v", res[2])
	}
	if res[3].Task.GetId() != res[0].Task.GetId() {
		t.Errorf("result 3: %v, want task %d again", res[3], res[0].Task.GetId())
	}
	for i := 1; i < len(res); i++ {
		if res[i].Index <= res[i-1].Index {
			t.Errorf("entry %d at index %d, entry %d at %d: want increasing", i-1, res[i-1].Index, i, res[i].Index)
		}
	}
	c.waitConverged(3)

	// On a follower every command is refused with ErrNotLeader.
	l := c.waitLeader()
	f := c.nodes[(l+1)%3]
	_, errs = f.node.ApplyMany(context.Background(), cmds)
	if len(errs) != len(cmds) {
		t.Fatalf("follower ApplyMany returned %d errors for %d commands", len(errs), len(cmds))
	}
	for i, err := range errs {
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("follower ApplyMany command %d: %v, want ErrNotLeader", i, err)
		}
	}
}

// TestEndedContextAppliesNothing: Apply, ApplyMany and RestoreSnapshot
// with a context already ended propose nothing on the leader: a stream
// cut at its certificate's expiry has its context cancelled while its
// handler may still hold a message it received before (a worker's report,
// a whole snapshot), and nothing may be applied for it after the cut.
func TestEndedContextAppliesNothing(t *testing.T) {
	c := newCluster(t, 1, nil)
	l := c.waitLeader()
	n := c.nodes[l].node
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := n.raft.LastIndex()
	cmd := encode(t, submitCmd(9, fsmpb.TaskType_TASK_TYPE_VACUUM))
	if _, err := n.Apply(ctx, cmd); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with an ended context: %v; want context.Canceled", err)
	}
	for i, err := range func() []error { _, errs := n.ApplyMany(ctx, [][]byte{cmd, cmd}); return errs }() {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ApplyMany command %d with an ended context: %v; want context.Canceled", i, err)
		}
	}
	if _, err := n.RestoreSnapshot(ctx, 1, 1, []byte("not even decoded")); !errors.Is(err, context.Canceled) {
		t.Errorf("RestoreSnapshot with an ended context: %v; want context.Canceled", err)
	}
	if after := n.raft.LastIndex(); after != before {
		t.Fatalf("the log grew from %d to %d for calls whose context had ended", before, after)
	}
}
