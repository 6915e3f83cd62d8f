package cluster

import (
	"context"
	"testing"
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
