package admin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// versionCluster is three in-process admins without a master, each of a
// chosen command version, restartable in place.
type versionCluster struct {
	t     *testing.T
	cfgs  []admin.Config
	nodes []*admin.Node
}

func newVersionCluster(t *testing.T, versions ...uint32) *versionCluster {
	c := &versionCluster{t: t}
	dir := t.TempDir()
	var peers []cluster.Peer
	for i := range versions {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("v%d", i+1), RaftAddr: testutil.FreeAddr(t)})
	}
	for i, v := range versions {
		c.cfgs = append(c.cfgs, admin.Config{ID: peers[i].ID, DataDir: filepath.Join(dir, peers[i].ID), RaftAddr: peers[i].RaftAddr,
			GRPCAddr: testutil.FreeAddr(t), Peers: peers, Bootstrap: true, Logger: testutil.Logger("admin." + peers[i].ID), Scheduler: admintest.SchedConfig(), MaxCommandVersion: v})
	}
	c.nodes = make([]*admin.Node, len(versions))
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})
	nodes, err := admin.StartNodes(context.Background(), c.cfgs)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	copy(c.nodes, nodes)
	return c
}

func (c *versionCluster) start(i int) {
	c.t.Helper()
	n, err := admin.Start(context.Background(), c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].ID, err)
	}
	c.nodes[i] = n
}

func (c *versionCluster) Stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Stop()
		c.nodes[i] = nil
	}
}

func (c *versionCluster) Leader() *admin.Node {
	for _, n := range c.nodes {
		if n != nil && n.Raft().IsLeader() {
			return n
		}
	}
	return nil
}

// advertised is the version node i advertised, as the leader's state
// holds it.
func (c *versionCluster) advertised(i int) uint32 {
	var v uint32
	if l := c.Leader(); l != nil {
		l.FSM().Read(func(s *fsm.State) { v, _ = s.AdminVersion(c.cfgs[i].ID) })
	}
	return v
}

func (c *versionCluster) testCommandIndex(n *admin.Node) uint64 {
	var idx uint64
	n.FSM().Read(func(s *fsm.State) { idx = s.TestCommandIndex() })
	return idx
}

// TestVersionGate: with one voter whose build applies only version 1, the
// leader (fsm.TestCommandVersion) never writes the test command nor a
// command above version 1 (the attempt history, the reports' worker) and
// nobody halts; once that voter restarts into a test-version build and
// advertises it, the
// command is committed (after the advertisement), applied everywhere, and
// the three states agree.
func TestVersionGate(t *testing.T) {
	c := newVersionCluster(t, fsm.TestCommandVersion, fsm.TestCommandVersion, fsm.CommandVersion)
	testutil.EventuallyTrue(t, admintest.Wait, "a leader and all three versions advertised", func() bool {
		for i := range c.nodes {
			if v := c.advertised(i); v == 0 {
				return false
			}
		}
		return true
	})
	if v := c.advertised(2); v != fsm.CommandVersion {
		t.Fatalf("v3 advertised %d; want %d", v, fsm.CommandVersion)
	}
	// Give the leader ample time to (wrongly) write the command: with the
	// emitter polling every 200 ms, 3 s is fifteen chances.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if idx := c.testCommandIndex(n); idx != 0 {
				t.Fatalf("%s applied the test command at %d while v3 applies only version 1", c.cfgs[i].ID, idx)
			}
			select {
			case err := <-n.Fatal():
				t.Fatalf("%s halted: %v", c.cfgs[i].ID, err)
			default:
			}
		}
		if l := c.Leader(); l != nil {
			if v := admin.AgreedVersion(l); v != fsm.CommandVersion {
				t.Fatalf("agreed version %d with a version-1 voter", v)
			}
			// The gate holds for any caller of the leader's applier too.
			if _, err := admin.Propose(context.Background(), l, &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}}); err == nil {
				t.Fatal("the leader's applier wrote a test-version command a voter does not apply")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Upgrade v3.
	c.Stop(2)
	c.cfgs[2].MaxCommandVersion = fsm.TestCommandVersion
	c.start(2)
	testutil.EventuallyTrue(t, admintest.Wait, "the test command on all three", func() bool {
		for _, n := range c.nodes {
			if c.testCommandIndex(n) == 0 {
				return false
			}
		}
		return true
	})
	for i := range c.nodes {
		if v := c.advertised(i); v != fsm.TestCommandVersion {
			t.Errorf("%s advertised version %d; want %d", c.cfgs[i].ID, v, fsm.TestCommandVersion)
		}
	}
	testutil.EventuallyTrue(t, admintest.Wait, "equal state hashes", func() bool {
		var hashes []string
		for _, n := range c.nodes {
			_, h := n.FSM().HashAt()
			hashes = append(hashes, h)
		}
		return hashes[0] == hashes[1] && hashes[1] == hashes[2]
	})
}
