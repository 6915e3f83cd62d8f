package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTLSRemovedPeerCutAtFollower: a follower observes no membership
// change of its own (the leader runs RemoveServer), yet a raft connection
// the removed member opened to it while a member must end once the
// follower's configuration drops it, and a new one must be refused.
func TestTLSRemovedPeerCutAtFollower(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	leader := c.waitLeader()
	victim, follower := (leader+1)%3, (leader+2)%3
	id, s, tr := stoppedMemberTransport(t, c, victim)
	target := c.nodes[follower].cfg
	// A stale term: answered without effect while the connection is admitted.
	send := func() error {
		var resp raft.AppendEntriesResponse
		return tr.AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(s.Addr().String())},
		}, &resp)
	}
	if err := send(); err != nil {
		t.Fatalf("a member's AppendEntries to follower %s was not answered: %v", target.ID, err)
	}
	if err := c.nodes[leader].node.RemoveServer(context.Background(), id); err != nil {
		t.Fatalf("RemoveServer %s: %v", id, err)
	}
	deadline := time.Now().Add(10 * time.Second) // well past memberRecheckEvery
	for send() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("removed admin %s still reaches follower %s's raft over its pooled connection", id, target.ID)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, the deadline bounds the wait
	}
	// The cut connection left the pool: this one is dialed anew.
	if err := send(); err == nil {
		t.Fatalf("follower %s admitted a new raft connection from removed admin %s", target.ID, id)
	}
}
