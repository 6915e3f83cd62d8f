package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSQuorumAndRoles: certificates made with `groundskeeper tls`; three
// admins form a quorum over mutual TLS and survive a leader kill; ctl with
// a reader certificate reads and is refused a submit and a phantom peer,
// with a worker certificate is refused a submit and a cancel, with an
// operator certificate submits, and without a certificate gets nothing.
func TestTLSQuorumAndRoles(t *testing.T) {
	c := newCluster(t, 3)
	pki := filepath.Join(c.dir, "pki")
	mustRun := func(args ...string) {
		t.Helper()
		if res := runBin(t, args...); res.Code != 0 {
			t.Fatalf("groundskeeper %s: %s", strings.Join(args, " "), res)
		}
	}
	tlsArgs := func(name string) []string {
		return []string{"--tls-ca", filepath.Join(pki, "ca.pem"), "--tls-cert", filepath.Join(pki, name+".pem"), "--tls-key", filepath.Join(pki, name+"-key.pem")}
	}
	mustRun("tls", "ca", "--dir", pki)
	for _, nd := range c.nodes {
		var hosts []string
		for _, a := range []string{nd.RaftAddr, nd.GRPCAddr} {
			h, _, _ := net.SplitHostPort(a)
			hosts = append(hosts, h)
		}
		mustRun("tls", "cert", "--dir", pki, "--role", "admin", "--name", nd.ID, "--host", strings.Join(hosts, ","))
		nd.startArgs(t, append(nd.args(), tlsArgs(nd.ID)...)...)
	}
	mustRun("tls", "cert", "--dir", pki, "--role", "reader", "--name", "rita")
	mustRun("tls", "cert", "--dir", pki, "--role", "operator", "--name", "olga")
	mustRun("tls", "cert", "--dir", pki, "--role", "worker", "--name", "w1")
	ctlAs := func(who, admin string, args ...string) cmdResult {
		t.Helper()
		return runBin(t, append(append([]string{"ctl", "--admin", admin}, tlsArgs(who)...), args...)...)
	}
	all := strings.Join(c.addrs(), ",")
	// leaderOf waits until every node in via names the same leader, and
	// that leader is not gone: right after a kill the survivors still name
	// the dead leader until their heartbeat timeout passes.
	leaderOf := func(via []*node, gone string) string {
		var leader string
		eventually(t, "the TLS admins to agree on a leader", func() (bool, string) {
			leader = ""
			for _, nd := range via {
				res := ctlAs("rita", nd.GRPCAddr, "status", "--json", "--timeout", "5s")
				if res.Code != 0 {
					return false, res.String()
				}
				var st struct {
					LeaderID string `json:"leader_id"`
					TLS      bool   `json:"tls"`
				}
				if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
					return false, err.Error()
				}
				if !st.TLS {
					return false, nd.ID + " does not report TLS"
				}
				if st.LeaderID == "" || st.LeaderID == gone {
					return false, fmt.Sprintf("%s names no live leader yet (%q)", nd.ID, st.LeaderID)
				}
				if leader != "" && st.LeaderID != leader {
					return false, fmt.Sprintf("%s says leader %q, another %q", nd.ID, st.LeaderID, leader)
				}
				leader = st.LeaderID
			}
			return true, ""
		})
		return leader
	}
	leader := leaderOf(c.nodes, "")

	if res := ctlAs("rita", all, "task", "submit", "--type", "vacuum", "--volume", "7"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "needs role operator") {
		t.Fatalf("a reader's submit: %s; want refused, naming the operator role", res)
	}
	// The phantom voters: a reader may not add peers.
	if res := ctlAs("rita", all, "peers", "add", "phantom1", "127.0.0.1:1"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "needs role operator") {
		t.Fatalf("a reader's peers add: %s; want refused, naming the operator role", res)
	}
	// A worker certificate runs a worker session only: no submit, no cancel.
	if res := ctlAs("w1", all, "task", "submit", "--type", "vacuum", "--volume", "7"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "needs role operator") {
		t.Fatalf("a worker's submit: %s; want refused, naming the operator role", res)
	}
	if res := ctlAs("w1", all, "task", "cancel", "1", "--no-wait"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "needs role operator") {
		t.Fatalf("a worker's cancel: %s; want refused, naming the operator role", res)
	}
	if res := ctlAs("rita", all, "tasks"); res.Code != 0 {
		t.Fatalf("a reader's tasks: %s", res)
	}
	if res := runBinExact(t, cmdTimeout, "ctl", "--admin", all, "status", "--timeout", "3s"); res.Code == 0 {
		t.Fatalf("ctl without a certificate got an answer: %s", res)
	}
	if res := ctlAs("olga", all, "task", "submit", "--type", "vacuum", "--volume", "7"); res.Code != 0 {
		t.Fatalf("an operator's submit: %s", res)
	}

	// The quorum survives its leader's death, over TLS.
	var rest []*node
	for _, nd := range c.nodes {
		if nd.ID == leader {
			nd.kill9(t)
		} else {
			rest = append(rest, nd)
		}
	}
	leaderOf(rest, leader)
	if res := ctlAs("olga", strings.Join(c.addrs(rest...), ","), "task", "submit", "--type", "vacuum", "--volume", "8"); res.Code != 0 {
		t.Fatalf("an operator's submit after the leader kill: %s", res)
	}
}
