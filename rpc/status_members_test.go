package rpc

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestStatusMemberAddressUnknown: a healthy member whose gRPC address is
// not published yet (as right after a quorum forms) is shown as such, not
// as unreachable: nobody could ask it. Once it publishes, it is asked.
func TestStatusMemberAddressUnknown(t *testing.T) {
	var peers []cluster.Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("a%d", i), RaftAddr: testutil.FreeAddr(t)})
	}
	// a1 and a2 form the quorum and publish; a3 is added to them without
	// publishing (its log is behind, so it cannot lead): it runs and
	// follows, but nobody knows its gRPC address.
	c := newClusterOf(t, peers[:2])
	late := startAdminPublishing(t, peers[2].ID, peers[2].RaftAddr, filepath.Join(t.TempDir(), peers[2].ID), peers[:2], false, false)
	addCtx, addCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer addCancel()
	if err := c.nodes[c.waitLeader()].raft.AddVoter(addCtx, late.id, late.raftAddr); err != nil {
		t.Fatalf("add %s: %v", late.id, err)
	}
	c.nodes = append(c.nodes, late)
	waitFor(t, "a1 and a2 to publish their addresses and a3 to follow", func() bool {
		ok := true
		for _, n := range c.nodes {
			n.fsm.Read(func(st *fsm.State) {
				for _, m := range c.nodes[:2] {
					if a, found := st.AdminAddr(m.id); !found || a != m.grpcAddr {
						ok = false
					}
				}
			})
		}
		return ok && late.raft.Status().State == "follower"
	})

	status := func(via *adminNode) *pb.StatusResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := via.client.Status(ctx, &pb.StatusRequest{})
		if err != nil {
			t.Fatalf("status through %s: %v", via.id, err)
		}
		return resp
	}
	for _, via := range c.nodes {
		resp := status(via)
		for _, m := range resp.Members {
			switch {
			case m.Id == late.id && via != late:
				if m.State != MemberAddressUnknown || m.GrpcAddr != "" {
					t.Errorf("through %s, member %s (running, address not published) is %q at %q; want %q", via.id, m.Id, m.State, m.GrpcAddr, MemberAddressUnknown)
				}
			case m.State == MemberUnreachable || m.State == MemberAddressUnknown:
				t.Errorf("through %s, member %s is %q; want its raft state", via.id, m.Id, m.State)
			}
		}
	}

	// Once it publishes, it is asked like the others.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); late.server.PublishAddress(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "a1 to show a3 as a follower at its address", func() bool {
		for _, m := range status(c.nodes[0]).Members {
			if m.Id == late.id {
				return m.State == "follower" && m.GrpcAddr == late.grpcAddr
			}
		}
		return false
	})
}
