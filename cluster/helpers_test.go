package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// waitTimeout bounds every poll. The machine running the tests may be small
// and busy (race detector, concurrent builds), so it is generous; a healthy
// run needs a fraction of it.
const waitTimeout = 20 * time.Second

// fastConfig returns a Config for tests that bootstraps a new cluster of
// peers (those that include id; else it waits to be added).
func fastConfig(id, raftAddr, dataDir string, peers []Peer) Config {
	self := false
	for _, p := range peers {
		self = self || p.ID == id
	}
	return Config{
		ID:        id,
		RaftAddr:  raftAddr,
		DataDir:   dataDir,
		Peers:     peers,
		Bootstrap: self,
		Logger:    testutil.Logger(id),
	}
}

// tnode is one member of a test cluster; node is nil while it is stopped.
type tnode struct {
	cfg  Config
	node *Node
	fsm  *fsm.FSM
}

func (n *tnode) running() bool { return n.node != nil }

type testCluster struct {
	t     *testing.T
	nodes []*tnode
	// tweak, if set, adjusts every node's config before each Open (called
	// with a fresh FSM already set).
	tweak func(c *Config)
}

// newCluster starts n nodes bootstrapped with the same peers.
func newCluster(t *testing.T, n int, tweak func(c *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tweak: tweak}
	var peers []Peer
	for i := 1; i <= n; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), RaftAddr: testutil.FreeAddr(t)})
	}
	for _, p := range peers {
		cfg := fastConfig(p.ID, p.RaftAddr, filepath.Join(t.TempDir(), p.ID), peers)
		c.nodes = append(c.nodes, &tnode{cfg: cfg})
	}
	t.Cleanup(c.shutdownAll)
	c.startAll()
	return c
}

// startAll opens every stopped node at once: an empty node waits in Open
// until its peers answer its probes, so they cannot start one by one.
func (c *testCluster) startAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, tn := range c.nodes {
		if tn.running() {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = c.open(i)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
}

// start opens node i (again) with its config, its data dir and a fresh FSM.
func (c *testCluster) start(i int) {
	c.t.Helper()
	if err := c.open(i); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testCluster) open(i int) error {
	tn := c.nodes[i]
	if tn.running() {
		return fmt.Errorf("node %s is already running", tn.cfg.ID)
	}
	cfg := tn.cfg
	f := fsm.New()
	cfg.FSM = f
	if c.tweak != nil {
		c.tweak(&cfg)
		f = cfg.FSM // the tweak may choose the FSM (e.g. of another command version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open %s: %w", cfg.ID, err)
	}
	tn.node, tn.fsm = n, f
	return nil
}

// stop shuts node i down, keeping its data dir.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	tn := c.nodes[i]
	if !tn.running() {
		return
	}
	if err := tn.node.Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", tn.cfg.ID, err)
	}
	tn.node = nil
}

func (c *testCluster) shutdownAll() {
	var wg sync.WaitGroup
	for _, tn := range c.nodes {
		if tn.running() {
			wg.Add(1)
			go func(n *Node) { defer wg.Done(); _ = n.Shutdown() }(tn.node)
		}
	}
	wg.Wait()
	for _, tn := range c.nodes {
		tn.node = nil
	}
}

func (c *testCluster) running() []*tnode {
	var out []*tnode
	for _, tn := range c.nodes {
		if tn.running() {
			out = append(out, tn)
		}
	}
	return out
}

// stableLeader returns the index of the running node that leads (barrier
// done) and that every running member names as leader. A running node with
// no configuration (started empty, not added yet) is skipped: nothing tells
// it who leads until it is added (the leader's last attempt to tell a
// removed node of its removal reaches a node restarted empty only if it
// comes up in time), so waiting for its agreement could wait forever.
func (c *testCluster) stableLeader() (int, bool) {
	leader := -1
	for i, tn := range c.nodes {
		if tn.running() && tn.node.IsLeader() {
			if leader >= 0 {
				return -1, false
			}
			leader = i
		}
	}
	if leader < 0 {
		return -1, false
	}
	want := c.nodes[leader].cfg.ID
	for _, tn := range c.running() {
		if m, err := tn.node.Members(); err == nil && len(m) == 0 {
			continue
		}
		if id, _ := tn.node.Leader(); id != want {
			return -1, false
		}
	}
	return leader, true
}

// waitLeader polls until the running nodes agree on one ready leader.
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	var leader int
	waitFor(c.t, "a leader every running node agrees on", func() bool {
		var ok bool
		leader, ok = c.stableLeader()
		return ok
	})
	return leader
}

// apply applies cmd on whichever node leads, retrying through elections.
func (c *testCluster) apply(cmd *fsmpb.Command) *fsmpb.ApplyResult {
	c.t.Helper()
	res, err := c.tryApply(cmd)
	if err != nil {
		c.t.Fatalf("%v%s", err, c.describe())
	}
	return res
}

// tryApply is apply without failing the test, for use off the test goroutine.
func (c *testCluster) tryApply(cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	b, err := fsm.Encode(time.Now().UnixNano(), cmd)
	if err != nil {
		return nil, err
	}
	var lastErr error
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for _, tn := range c.running() {
			if id, _ := tn.node.Leader(); id != tn.cfg.ID {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := tn.node.Apply(ctx, b)
			cancel()
			if err != nil {
				lastErr = err
				continue
			}
			r, ok := out.(*fsmpb.ApplyResult)
			if !ok {
				return nil, fmt.Errorf("apply returned %T, want *pb.ApplyResult", out)
			}
			return r, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("no leader applied the command within %s (last error: %v)", waitTimeout, lastErr)
}

// submit applies a SubmitTask for a vacuum of volume vol and checks it succeeded.
func (c *testCluster) submit(vol uint32) *fsmpb.Task {
	c.t.Helper()
	res := c.apply(submitCmd(vol, fsmpb.TaskType_TASK_TYPE_VACUUM))
	if err := fsm.ResultError(res); err != nil {
		c.t.Fatalf("submit volume %d: %v", vol, err)
	}
	return res.Task
}

func submitCmd(vol uint32, typ fsmpb.TaskType) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: typ, VolumeId: vol, Origin: "manual"}}}
}

func encode(t testing.TB, cmd *fsmpb.Command) []byte {
	t.Helper()
	b, err := fsm.Encode(time.Now().UnixNano(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitConverged polls until every running node's FSM has the same hash and
// holds at least wantTasks tasks; it returns that hash.
func (c *testCluster) waitConverged(wantTasks int) string {
	c.t.Helper()
	var hash string
	waitFor(c.t, fmt.Sprintf("every running node to hold the same state with %d tasks", wantTasks), func() bool {
		hash = ""
		for _, tn := range c.running() {
			h := tn.fsm.Hash()
			if hash != "" && h != hash {
				return false
			}
			hash = h
			if taskCount(tn.fsm) < wantTasks {
				return false
			}
		}
		return true
	}, c.describe)
	return hash
}

func (c *testCluster) describe() string {
	var b strings.Builder
	for _, tn := range c.nodes {
		if !tn.running() {
			fmt.Fprintf(&b, "\n  %s: stopped", tn.cfg.ID)
			continue
		}
		st := tn.node.Status()
		fmt.Fprintf(&b, "\n  %s: %s leader=%q term=%d commit=%d applied=%d last=%d snap=%d tasks=%d hash=%.12s",
			st.ID, st.State, st.LeaderID, st.Term, st.CommitIndex, st.AppliedIndex, st.LastLogIndex,
			st.LastSnapshotIndex, taskCount(tn.fsm), tn.fsm.Hash())
	}
	return b.String()
}

func taskCount(f *fsm.FSM) int {
	var n int
	f.Read(func(s *fsm.State) { n = len(s.Tasks(fsm.TaskFilter{})) })
	return n
}

func hasTask(f *fsm.FSM, id uint64) bool {
	var ok bool
	f.Read(func(s *fsm.State) { _, ok = s.Task(id) })
	return ok
}

// waitFor polls cond every 20ms until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	testutil.EventuallyTrue(t, waitTimeout, what, cond, detail...)
}

// notLeaderError returns err as a *NotLeaderError after checking errors.Is.
func notLeaderError(t testing.TB, err error) *NotLeaderError {
	t.Helper()
	if !errors.Is(err, ErrNotLeader) {
		t.Fatalf("error %v does not match ErrNotLeader", err)
	}
	var nl *NotLeaderError
	if !errors.As(err, &nl) {
		t.Fatalf("error %v (%T) is not a *NotLeaderError", err, err)
	}
	return nl
}

// openRefused opens cfg and, should the node start, shuts it down and fails
// the test with startedMsg; it returns the error Open refused with.
func openRefused(ctx context.Context, t *testing.T, cfg Config, startedMsg string) error {
	t.Helper()
	n, err := Open(ctx, cfg)
	if err == nil {
		n.Shutdown()
		t.Fatal(startedMsg)
	}
	return err
}
