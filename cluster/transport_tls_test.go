package cluster

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// intruderAppend sends one AppendEntries of term to target through a raft
// transport over TLS with src, returning raft's error (nil: answered).
func intruderAppend(t *testing.T, src *certs.Source, target Config, term uint64) error {
	t.Helper()
	s, err := newStreamLayer("127.0.0.1:0", nil, &transportTLS{src: src, logger: testutil.Logger("intruder")})
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransport(s, 1, 5*time.Second, io.Discard)
	defer tr.Close()
	var resp raft.AppendEntriesResponse
	return tr.AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("intruder2"), Addr: []byte(s.Addr().String())},
		Term:      term,
	}, &resp)
}

// testPKI is a CA in a temporary directory issuing certificates on demand.
type testPKI struct {
	t   *testing.T
	dir string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	if _, err := certs.NewCA(dir); err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return &testPKI{t: t, dir: dir}
}

// source issues a certificate of role named name and loads it.
func (p *testPKI) source(role certs.Role, name string) *certs.Source {
	p.t.Helper()
	if _, err := certs.Issue(p.dir, role, name, nil, 0); err != nil {
		p.t.Fatalf("Issue %s %s: %v", role, name, err)
	}
	src, err := certs.Load(certs.IssuedFiles(p.dir, name), certs.Options{})
	if err != nil {
		p.t.Fatalf("Load %s: %v", name, err)
	}
	return src
}

// newTLSCluster starts n nodes whose raft ports run mutual TLS with admin
// certificates of one CA.
func newTLSCluster(t *testing.T, n int) (*testCluster, *testPKI) {
	pki := newTestPKI(t)
	srcs := map[string]*certs.Source{}
	for i := 1; i <= n; i++ {
		id := "n" + string(rune('0'+i))
		srcs[id] = pki.source(certs.RoleAdmin, id)
	}
	return newCluster(t, n, func(c *Config) { c.TLS = srcs[c.ID] }), pki
}

// TestTLSClusterForms: probes and raft run over mutual TLS; a cluster
// forms, replicates and converges.
func TestTLSClusterForms(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	c.waitLeader()
	c.submit(7)
	c.submit(8)
	c.waitConverged(2)
}

// attack opens a connection to addr (TLS with cfg, or plaintext when cfg
// is nil), sends what a raft AppendEntries starts with and some garbage,
// and reports whether the port answered anything before closing.
func attack(t *testing.T, addr string, cfg *tls.Config) (answered bool) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer raw.Close()
	var c net.Conn = raw
	if cfg != nil {
		tc := tls.Client(raw, cfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return false // refused in the handshake
		}
		c = tc
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// rpcAppendEntries (0) then msgpack-looking garbage.
	_, _ = c.Write(append([]byte{0}, []byte("\x8a\xa4Term\xcf\xff\xff\xff\xff\xff\xff\xff\xf0garbage")...))
	b := make([]byte, 1)
	_, err = c.Read(b)
	if err == nil {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the raft port neither answered nor closed a refused connection within 10s")
	}
	if !errors.Is(err, io.EOF) && cfg == nil {
		t.Logf("read: %v", err)
	}
	return false
}

// TestTLSRaftPortRefuses: a plaintext connection, a certificate from
// another CA, a worker certificate and an admin certificate of this CA
// that is not a member all get the connection closed without an answer,
// and the cluster's state and term do not move.
func TestTLSRaftPortRefuses(t *testing.T) {
	c, pki := newTLSCluster(t, 3)
	leader := c.waitLeader()
	c.submit(1)
	hash := c.waitConverged(1)
	term := c.nodes[leader].node.Status().Term
	addr := c.nodes[leader].cfg.RaftAddr
	host, _, _ := net.SplitHostPort(addr)

	other := newTestPKI(t)
	cases := []struct {
		name string
		cfg  *tls.Config
	}{
		{"plaintext", nil},
		{"another CA", other.source(certs.RoleAdmin, "n1").ClientConfig(host)},
		{"a worker certificate", pki.source(certs.RoleWorker, "w1").ClientConfig(host)},
		{"an operator certificate", pki.source(certs.RoleOperator, "alice").ClientConfig(host)},
		{"an admin that is not a member", pki.source(certs.RoleAdmin, "intruder").ClientConfig(host)},
		{"no client certificate", &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}},
	}
	for _, tc := range cases {
		if attack(t, addr, tc.cfg) {
			t.Errorf("%s: the raft port answered", tc.name)
		}
	}
	if got := c.waitConverged(1); got != hash {
		t.Fatalf("state changed: hash %s, was %s", got, hash)
	}
	// An honest election under load may move the term by one or two; the
	// attacks' terms are far above.
	termSane := func() {
		t.Helper()
		if got := c.nodes[leader].node.Status().Term; got >= term+50 {
			t.Fatalf("term jumped from %d to %d: an attacker's term was taken", term, got)
		}
	}
	termSane()
	// A real raft transport with an admin certificate that is not a
	// member: its AppendEntries of a far higher term gets no answer.
	if err := intruderAppend(t, pki.source(certs.RoleAdmin, "intruder2"), c.nodes[leader].cfg, term+100); err == nil {
		t.Error("the raft port answered an AppendEntries from an admin that is not a member")
	}
	termSane()
	// The cluster still works.
	c.submit(2)
	c.waitConverged(2)
}
