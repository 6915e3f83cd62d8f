package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// versionedCluster starts n nodes whose builds apply command versions up
// to versions[id] (default: the test-only version).
func versionedCluster(t *testing.T, n int, versions map[string]uint32, tweak func(c *Config)) *testCluster {
	return newCluster(t, n, func(c *Config) {
		v, ok := versions[c.ID]
		if !ok {
			v = fsm.TestCommandVersion
		}
		c.FSM = fsm.NewWithVersion(v)
		if tweak != nil {
			tweak(c)
		}
	})
}

func testCommand(t *testing.T) []byte {
	return encode(t, &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}})
}

// advertise commits what admin id publishes: an address and its version.
func (c *testCluster) advertise(id string, v uint32) {
	c.t.Helper()
	res := c.apply(&fsmpb.Command{Body: &fsmpb.Command_SetAdminAddr{SetAdminAddr: &fsmpb.SetAdminAddr{Id: id, GrpcAddr: "127.0.0.1:1", MaxCommandVersion: v}}})
	if err := fsm.ResultError(res); err != nil {
		c.t.Fatal(err)
	}
}

// advertiseAll commits version v as what every node publishes.
func (c *testCluster) advertiseAll(v uint32) {
	c.t.Helper()
	for _, tn := range c.nodes {
		c.advertise(tn.cfg.ID, v)
	}
}

// leaderAndFollower commits the test command's version as what every node
// publishes and returns the leader's index and the next node's, a follower.
func (c *testCluster) leaderAndFollower() (leader, follower int) {
	c.t.Helper()
	c.advertiseAll(fsm.TestCommandVersion)
	leader = c.waitLeader()
	return leader, (leader + 1) % len(c.nodes)
}

func (c *testCluster) leaderNode() *Node {
	c.t.Helper()
	return c.nodes[c.waitLeader()].node
}

// joiner opens an empty node of the given build that waits to be added.
func (c *testCluster) joiner(id string, version uint32) (*Node, *fsm.FSM) {
	c.t.Helper()
	var members []Peer
	for _, tn := range c.nodes {
		members = append(members, Peer{ID: tn.cfg.ID, RaftAddr: tn.cfg.RaftAddr})
	}
	cfg := fastConfig(id, testutil.FreeAddr(c.t), filepath.Join(c.t.TempDir(), id), members)
	f := fsm.NewWithVersion(version)
	cfg.FSM = f
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		c.t.Fatalf("open joiner %s: %v", id, err)
	}
	c.t.Cleanup(func() { _ = n.Shutdown() })
	return n, f
}

// TestGateOnEveryProposal: the leader writes a command above the base
// version only once every server of the configuration (non-voters too)
// advertised it, whoever proposes it: Node.Apply and ApplyMany (the
// scheduler's, the clients' and the forwarded path all end there) refuse
// it before it reaches the log.
func TestGateOnEveryProposal(t *testing.T) {
	c := versionedCluster(t, 3, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	l := c.leaderNode()
	if _, err := l.Apply(ctx, testCommand(t)); !errors.Is(err, ErrVersionNotAgreed) {
		t.Fatalf("version-2 command with no version advertised: %v; want ErrVersionNotAgreed", err)
	}
	outs, errs := l.ApplyMany(ctx, [][]byte{encode(t, submitCmd(1, fsmpb.TaskType_TASK_TYPE_VACUUM)), testCommand(t)})
	if errs[0] != nil || outs[0] == nil || !errors.Is(errs[1], ErrVersionNotAgreed) {
		t.Fatalf("ApplyMany: %v %v; want the base command applied and the version-2 one refused", outs, errs)
	}
	c.advertiseAll(fsm.TestCommandVersion)
	// A non-voter applies every entry too: it must count.
	l = c.leaderNode()
	if err := l.raft.AddNonvoter("x", raft.ServerAddress(testutil.FreeAddr(t)), 0, waitTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, testCommand(t)); !errors.Is(err, ErrVersionNotAgreed) {
		t.Fatalf("version-2 command with a non-voter that advertised nothing: %v; want ErrVersionNotAgreed", err)
	}
	if err := l.RemoveServer(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	res := c.apply(&fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}})
	if err := fsm.ResultError(res); err != nil {
		t.Fatalf("version-2 command once every server advertised it: %v", err)
	}
	c.waitConverged(1)
	for _, tn := range c.nodes {
		if err := tn.fsm.Halted(); err != nil {
			t.Errorf("%s halted: %v", tn.cfg.ID, err)
		}
	}
}

// TestMembershipAndVersions: a server removed has what it published
// forgotten, so when it comes back wiped with an older build it counts as
// the base version, not as what its earlier life advertised; once the
// cluster wrote a version, a node that does not apply it may not join
// (the node says, on its raft port, which versions it applies), while one
// that does joins.
func TestMembershipAndVersions(t *testing.T) {
	c := versionedCluster(t, 3, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	li, victim := c.leaderAndFollower()
	vid := c.nodes[victim].cfg.ID
	if err := c.nodes[li].node.RemoveServer(ctx, vid); err != nil {
		t.Fatal(err)
	}
	c.stop(victim)
	waitFor(t, vid+"'s advertisement forgotten", func() bool {
		_, ok := advertised(c.nodes[li].fsm, vid)
		return !ok
	})

	// vid's disk is wiped and it starts with an older build, empty,
	// waiting to be added; the leader adds it.
	if err := os.RemoveAll(c.nodes[victim].cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	old := c.nodes[victim].cfg
	old.Bootstrap = false
	old.FSM = fsm.New()
	n, err := Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	if err := c.nodes[li].node.AddVoter(ctx, vid, old.RaftAddr); err != nil {
		t.Fatalf("add the wiped node back (nothing of version 2 written yet): %v", err)
	}
	if _, err := c.nodes[li].node.Apply(ctx, testCommand(t)); !errors.Is(err, ErrVersionNotAgreed) {
		t.Fatalf("version-2 command with %s back on a version-1 build: %v; want ErrVersionNotAgreed", vid, err)
	}
	if err := c.nodes[li].node.RemoveServer(ctx, vid); err != nil {
		t.Fatal(err)
	}

	// Two members left, both of version 2: the command is written.
	if _, err := c.nodes[li].node.Apply(ctx, testCommand(t)); err != nil {
		t.Fatalf("version-2 command with every member advertising it: %v", err)
	}
	j1, _ := c.joiner("j1", fsm.CommandVersion)
	err = c.nodes[li].node.AddVoter(ctx, "j1", j1.RaftAddr())
	if want := fmt.Sprintf("version %d", fsm.TestCommandVersion); !errors.Is(err, ErrJoinTooOld) || !strings.Contains(err.Error(), want) {
		t.Fatalf("add a version-1 node after the test command's version was written: %v; want ErrJoinTooOld naming %s", err, want)
	}
	if m, _ := c.nodes[li].node.Members(); len(m) != 2 {
		t.Fatalf("members %v after a refused add; want the two", m)
	}
	j2, j2f := c.joiner("j2", fsm.TestCommandVersion)
	if err := c.nodes[li].node.AddVoter(ctx, "j2", j2.RaftAddr()); err != nil {
		t.Fatalf("add a version-2 node: %v", err)
	}
	waitFor(t, "j2 to apply the version-2 command", func() bool {
		var idx uint64
		j2f.Read(func(s *fsm.State) { idx = s.TestCommandIndex() })
		return idx != 0
	})
}

func advertised(f *fsm.FSM, id string) (uint32, bool) {
	var v uint32
	var ok bool
	f.Read(func(s *fsm.State) { v, ok = s.AdminVersion(id) })
	return v, ok
}

// TestFollowerRefusesNewerSnapshot: a follower of a build that applies
// version 1, caught up by the leader's snapshot past a version-2 entry,
// refuses it and halts (Fatal), rather than install a state it may not
// read; raft has stored the snapshot by then, so the same build started
// again stops in Open with the sentence, and the upgraded build starts
// from it.
func TestFollowerRefusesNewerSnapshot(t *testing.T) {
	versions := map[string]uint32{}
	c := versionedCluster(t, 3, versions, func(cfg *Config) { cfg.TrailingLogs = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	li, f := c.leaderAndFollower()
	fid := c.nodes[f].cfg.ID
	c.stop(f)
	// Still a member advertising version 2, so the leader writes it.
	if _, err := c.nodes[li].node.Apply(ctx, testCommand(t)); err != nil {
		t.Fatal(err)
	}
	for v := uint32(1); v <= 3; v++ {
		c.submit(v)
	}
	for _, tn := range c.running() {
		if err := tn.node.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}

	// The follower comes back with a build that applies version 1 only.
	versions[fid] = fsm.CommandVersion
	c.start(f)
	select {
	case err := <-c.nodes[f].node.Fatal():
		var tooNew *fsm.SnapshotTooNewError
		if !errors.As(err, &tooNew) || tooNew.Version != fsm.TestCommandVersion {
			t.Fatalf("fatal %v; want a SnapshotTooNewError of version 2", err)
		}
	case <-ctx.Done():
		t.Fatalf("the version-1 follower installed (or never got) the leader's snapshot past a version-2 entry without halting%s", c.describe())
	}
	if idx := testCommandIndexOf(c.nodes[f].fsm); idx != 0 || taskCount(c.nodes[f].fsm) != 0 {
		t.Fatalf("the halted follower holds the newer state")
	}
	c.stop(f)

	err := c.open(f)
	var tooNew *fsm.SnapshotTooNewError
	if !errors.As(err, &tooNew) || !strings.Contains(err.Error(), "upgrade this node's binary") {
		t.Fatalf("restart with the same build: %v; want the snapshot refused with the sentence", err)
	}

	versions[fid] = fsm.TestCommandVersion
	c.start(f)
	c.waitConverged(3)
	if testCommandIndexOf(c.nodes[f].fsm) == 0 {
		t.Error("the upgraded follower does not hold the version-2 command")
	}
}

func testCommandIndexOf(f *fsm.FSM) uint64 {
	var idx uint64
	f.Read(func(s *fsm.State) { idx = s.TestCommandIndex() })
	return idx
}
