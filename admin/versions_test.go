package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// versionCluster is three in-process admins without a master, each of a
// chosen command version, restartable in place.
type versionCluster struct {
	t     *testing.T
	cfgs  []nodeConfig
	nodes []*adminNode
}

func newVersionCluster(t *testing.T, versions ...uint32) *versionCluster {
	c := &versionCluster{t: t}
	dir := t.TempDir()
	var peers []cluster.Peer
	for i := range versions {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("v%d", i+1), RaftAddr: sysFreeAddr(t)})
	}
	for i, v := range versions {
		c.cfgs = append(c.cfgs, nodeConfig{ID: peers[i].ID, DataDir: filepath.Join(dir, peers[i].ID), RaftAddr: peers[i].RaftAddr,
			GRPCAddr: sysFreeAddr(t), Peers: peers, Bootstrap: true, Logger: sysLogger("admin." + peers[i].ID), Scheduler: sysSchedConfig(), MaxCommandVersion: v})
	}
	c.nodes = make([]*adminNode, len(versions))
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	nodes, err := startNodes(context.Background(), c.cfgs)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	copy(c.nodes, nodes)
	return c
}

func (c *versionCluster) start(i int) {
	c.t.Helper()
	n, err := startNode(context.Background(), c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].ID, err)
	}
	c.nodes[i] = n
}

func (c *versionCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].stop()
		c.nodes[i] = nil
	}
}

func (c *versionCluster) leader() *adminNode {
	for _, n := range c.nodes {
		if n != nil && n.raft.IsLeader() {
			return n
		}
	}
	return nil
}

// advertised is the version node i advertised, as the leader's state
// holds it.
func (c *versionCluster) advertised(i int) uint32 {
	var v uint32
	if l := c.leader(); l != nil {
		l.fsm.Read(func(s *fsm.State) { v, _ = s.AdminVersion(c.cfgs[i].ID) })
	}
	return v
}

func (c *versionCluster) testCommandIndex(n *adminNode) uint64 {
	var idx uint64
	n.fsm.Read(func(s *fsm.State) { idx = s.TestCommandIndex() })
	return idx
}

// TestVersionGate: with one voter whose build applies only version 1, the
// leader (test version 3) never writes the version-3 test command nor a
// version-3 command (the attempt history) and nobody halts; once that voter
// restarts into a version-3 build and advertises it, the
// command is committed (after the advertisement), applied everywhere, and
// the three states agree.
func TestVersionGate(t *testing.T) {
	c := newVersionCluster(t, fsm.TestCommandVersion, fsm.TestCommandVersion, fsm.CommandVersion)
	sysWaitFor(t, sysWait, "a leader and all three versions advertised", func() bool {
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
				t.Fatalf("%s applied the version-3 command at %d while v3 applies only version 1", c.cfgs[i].ID, idx)
			}
			select {
			case err := <-n.raft.Fatal():
				t.Fatalf("%s halted: %v", c.cfgs[i].ID, err)
			default:
			}
		}
		if l := c.leader(); l != nil {
			if v := l.agreedVersion(); v != fsm.CommandVersion {
				t.Fatalf("agreed version %d with a version-1 voter", v)
			}
			// The gate holds for any caller of the leader's applier too.
			if _, err := (localApplier{l}).Apply(context.Background(), &pb.Command{Body: &pb.Command_TestCommand{TestCommand: &pb.TestCommand{}}}); err == nil {
				t.Fatal("the leader's applier wrote a version-3 command a voter does not apply")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Upgrade v3.
	c.stop(2)
	c.cfgs[2].MaxCommandVersion = fsm.TestCommandVersion
	c.start(2)
	sysWaitFor(t, sysWait, "the version-3 command on all three", func() bool {
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
	sysWaitFor(t, sysWait, "equal state hashes", func() bool {
		var hashes []string
		for _, n := range c.nodes {
			_, h := n.fsm.HashAt()
			hashes = append(hashes, h)
		}
		return hashes[0] == hashes[1] && hashes[1] == hashes[2]
	})
}

// TestStateIndexIsRaftsAppliedIndex: the index a state hash is reported at
// is raft's applied index (not the FSM's last command, which skips raft's
// no-op and barrier entries), on the metric too, and it does not go back
// after an operator restores an older snapshot: the restored state is
// reported at an index past the restore, with the saved content's hash.
func TestStateIndexIsRaftsAppliedIndex(t *testing.T) {
	n, addr := startSingleAdmin(t)
	status := func() *pb.StatusResponse {
		st, err := n.server.Status(context.Background(), &pb.StatusRequest{LocalOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	settled := func(what string) *pb.StatusResponse {
		var st *pb.StatusResponse
		sysWaitFor(t, sysWait, what, func() bool {
			st = status()
			return st.StateIndex != 0 && st.StateIndex == st.AppliedIndex && st.StateIndex == st.CommitIndex
		})
		return st
	}
	sysWaitFor(t, sysWait, "the address published", func() bool { return status().Members[0].GrpcAddr != "" })
	before := settled("the state index to reach raft's applied index")
	_, body := scrape(t, n.metricsHandler(), "/metrics")
	if v, _ := metricValue(body, "groundskeeper_raft_applied_index"); uint64(v) < before.StateIndex {
		t.Errorf("metric applied index %v behind the state index %d", v, before.StateIndex)
	}

	file := filepath.Join(t.TempDir(), "snap")
	var out, errOut bytes.Buffer
	if err := runCtlIO([]string{"--admin", addr, "--timeout", "10s", "snapshot", "save", file}, &out, &errOut); err != nil {
		t.Fatalf("snapshot save: %v %s", err, errOut.String())
	}
	for _, vid := range []uint32{7, 8, 9} {
		if _, err := (localApplier{n}).Apply(context.Background(), &pb.Command{Body: &pb.Command_SubmitTask{SubmitTask: &pb.SubmitTask{
			Type: pb.TaskType_TASK_TYPE_VACUUM, VolumeId: vid}}}); err != nil {
			t.Fatal(err)
		}
	}
	mid := settled("the state index after three submits")
	if err := runCtlIO([]string{"--admin", addr, "--timeout", "10s", "snapshot", "restore", file}, &out, &errOut); err != nil {
		t.Fatalf("snapshot restore: %v %s", err, errOut.String())
	}
	after := settled("the state index after the restore")
	if after.StateIndex <= mid.StateIndex {
		t.Errorf("state index %d after the restore; it was %d before (it went back)", after.StateIndex, mid.StateIndex)
	}
	if after.StateHash != before.StateHash {
		t.Errorf("restored state hash %.12s; the saved state's was %.12s", after.StateHash, before.StateHash)
	}
}
