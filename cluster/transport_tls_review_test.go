package cluster

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// TestTLSRemovedPeerRefusedOnRaft: issue 11 says only admins in the
// current configuration are accepted on raft. A member removed with
// `peers remove` is still listed in the --peers the others were started
// with; its admin certificate must not reach raft any more (here: an
// AppendEntries of a far higher term that would depose the leader).
func TestTLSRemovedPeerRefusedOnRaft(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	leader := c.waitLeader()
	victim := (leader + 1) % 3
	c.submit(1)
	c.waitConverged(1)
	id := c.nodes[victim].cfg.ID
	if err := c.nodes[leader].node.RemoveServer(context.Background(), id); err != nil {
		t.Fatalf("RemoveServer %s: %v", id, err)
	}
	vcfg := c.nodes[victim].cfg
	c.tweak(&vcfg) // the cluster's sources are set per Open
	src := vcfg.TLS
	c.stop(victim)
	leader = c.waitLeader()
	term := c.nodes[leader].node.Status().Term
	if err := intruderAppend(t, src, c.nodes[leader].cfg, term+100); err == nil {
		t.Fatalf("the raft port answered an AppendEntries from removed admin %s (admitted because it is in --peers)", id)
	}
}

// TestTLSRemovedPeerPooledConnCut: the membership check runs once, when a
// connection is routed. A raft connection a member opened before it was
// removed must not keep reaching raft after the removal (raft pools its
// connections, so one lives as long as the peer keeps using it).
func TestTLSRemovedPeerPooledConnCut(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	leader := c.waitLeader()
	id, s, tr := stoppedMemberTransport(t, c, (leader+1)%3)
	target := c.nodes[leader].cfg
	send := func(term uint64) error {
		var resp raft.AppendEntriesResponse
		return tr.AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(s.Addr().String())}, Term: term,
		}, &resp)
	}
	// While a member: a stale-term AppendEntries is answered (and pooled).
	if err := send(0); err != nil {
		t.Fatalf("a member's AppendEntries was not answered: %v", err)
	}
	if err := c.nodes[leader].node.RemoveServer(context.Background(), id); err != nil {
		t.Fatalf("RemoveServer %s: %v", id, err)
	}
	term := c.nodes[leader].node.Status().Term
	if err := send(term + 100); err == nil {
		t.Fatalf("removed admin %s still reaches raft over the connection it opened while a member", id)
	}
}

// stoppedMemberTransport stops member victim of c (after one converged
// write) and returns its id with a raft transport of its own, dialing with
// the victim's certificate: the removed or removable admin the membership
// tests play.
func stoppedMemberTransport(t *testing.T, c *testCluster, victim int) (string, *streamLayer, *raft.NetworkTransport) {
	t.Helper()
	c.submit(1)
	c.waitConverged(1)
	vcfg := c.nodes[victim].cfg
	c.tweak(&vcfg) // the cluster's sources are set per Open
	c.stop(victim)
	s, err := newStreamLayer("127.0.0.1:0", nil, &transportTLS{src: vcfg.TLS, logger: testutil.Logger("removed")})
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransport(s, 1, 5*time.Second, io.Discard)
	t.Cleanup(func() { tr.Close() })
	return vcfg.ID, s, tr
}
