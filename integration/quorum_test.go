package integration

import (
	"fmt"
	"strings"
	"testing"
)

// TestQuorumFormsAndReplicates: three admins started with the documented
// flags form one quorum that every node reports the same way, and a write
// through a follower is replicated to every node's local state.
func TestQuorumFormsAndReplicates(t *testing.T) {
	c := newCluster(t, 3)
	for _, nd := range c.nodes {
		nd.start(t)
	}

	// Every node, asked directly, names the same leader and lists the three
	// members with their raft and gRPC addresses, one leader and two followers.
	var leaderID string
	eventually(t, "all three admins to agree on a leader", func() (bool, string) {
		leaderID = ""
		for _, nd := range c.nodes {
			st, _, err := ctlJSONErr[statusJSON](t, "status", nd.GRPCAddr, "status", "--timeout", "5s")
			if err != nil {
				return false, err.Error()
			}
			if st.NodeID != nd.ID {
				return false, fmt.Sprintf("status via %s answered by %q", nd.ID, st.NodeID)
			}
			if st.LeaderID == "" {
				return false, nd.ID + " knows no leader yet"
			}
			if leaderID != "" && st.LeaderID != leaderID {
				return false, fmt.Sprintf("%s says leader is %s, another says %s", nd.ID, st.LeaderID, leaderID)
			}
			leaderID = st.LeaderID
			if st.Term == 0 || st.CommitIndex == 0 {
				return false, fmt.Sprintf("%s: term %d commit index %d", nd.ID, st.Term, st.CommitIndex)
			}
			if len(st.Members) != 3 {
				return false, fmt.Sprintf("%s lists %d members: %+v", nd.ID, len(st.Members), st.Members)
			}
			states := map[string]int{}
			for _, want := range c.nodes {
				m, ok := st.member(want.ID)
				if !ok {
					return false, fmt.Sprintf("%s does not list %s", nd.ID, want.ID)
				}
				if m.GRPCAddr == "" {
					return false, fmt.Sprintf("%s: member %s has no grpc_addr yet", nd.ID, m.ID)
				}
				if m.GRPCAddr != want.GRPCAddr || m.RaftAddr != want.RaftAddr {
					return false, fmt.Sprintf("%s: member %s at raft %s grpc %s, want %s and %s", nd.ID, m.ID, m.RaftAddr, m.GRPCAddr, want.RaftAddr, want.GRPCAddr)
				}
				states[m.State]++
				if m.State == "leader" && m.ID != st.LeaderID {
					return false, fmt.Sprintf("%s: member %s is leader but leader_id is %s", nd.ID, m.ID, st.LeaderID)
				}
			}
			if states["leader"] != 1 || states["follower"] != 2 {
				return false, fmt.Sprintf("%s sees member states %v, want 1 leader and 2 followers", nd.ID, states)
			}
		}
		return true, ""
	})
	t.Logf("leader is %s", leaderID)

	// The human status names the leader too.
	res := ctl(t, c.nodes[0].GRPCAddr, "status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "leader "+leaderID) {
		t.Fatalf("human status does not name leader %s:\n%s", leaderID, res)
	}

	// A write through a follower reaches every node's own state.
	var follower *node
	for _, nd := range c.nodes {
		if nd.ID != leaderID {
			follower = nd
			break
		}
	}
	sub := ctlJSON[submitJSON](t, "submit", follower.GRPCAddr, "task", "submit", "--type", "vacuum", "--volume", "42")
	if sub.ID == 0 || sub.Type != "vacuum" || sub.VolumeID != 42 || sub.State != "pending" || sub.Existing == nil || *sub.Existing {
		t.Fatalf("submit via follower %s returned %+v (existing %v)", follower.ID, sub.taskJSON, sub.Existing)
	}
	for _, nd := range c.nodes {
		eventually(t, "the task to be in "+nd.ID+"'s local state", func() (bool, string) {
			tasks, _, err := ctlJSONErr[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks", "--stale")
			if err != nil {
				return false, err.Error()
			}
			if len(tasks) != 1 || tasks[0].ID != sub.ID || tasks[0].VolumeID != 42 || tasks[0].Type != "vacuum" {
				return false, fmt.Sprintf("%s lists %+v", nd.ID, tasks)
			}
			return true, ""
		})
	}
	// And every node reaches the same applied index.
	c.waitStable(t, c.nodes...)
}
