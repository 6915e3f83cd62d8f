package cluster

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// quickChecks makes a Source check its files and its peers' certificates
// every 50 ms.
var quickChecks = certs.Options{CheckEvery: 50 * time.Millisecond, PeerCheckEvery: 50 * time.Millisecond}

// issueBrief issues an admin certificate name in p that expires in two
// seconds and loads it with opts; it returns its expiry as encoded.
func (p *testPKI) issueBrief(name string, opts certs.Options) (*certs.Source, time.Time) {
	p.t.Helper()
	now := time.Now()
	cert, err := certs.IssueBetween(p.dir, certs.RoleAdmin, name, nil, now.Add(-time.Minute), now.Add(2*time.Second))
	if err != nil {
		p.t.Fatal(err)
	}
	src, err := certs.Load(certs.IssuedFiles(p.dir, name), opts)
	if err != nil {
		p.t.Fatal(err)
	}
	return src, cert.NotAfter
}

// loadAs loads the certificate name of p with opts.
func (p *testPKI) loadAs(name string, opts certs.Options) *certs.Source {
	p.t.Helper()
	if _, err := certs.Issue(p.dir, certs.RoleAdmin, name, nil, 0); err != nil {
		p.t.Fatal(err)
	}
	src, err := certs.Load(certs.IssuedFiles(p.dir, name), opts)
	if err != nil {
		p.t.Fatal(err)
	}
	return src
}

// raftPair is a raft port (server, admitting "a2" by --peers, raft on)
// and a stream layer dialing it (client, as a2), and the connection the
// client opened, routed to the server's raft.
func raftPair(t *testing.T, server, client *certs.Source) (dialed, accepted net.Conn) {
	t.Helper()
	srv, err := newStreamLayer("127.0.0.1:0", nil, &transportTLS{src: server, logger: testutil.Logger("server"), peers: []string{"a2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.startRaft()
	cli, err := newStreamLayer("127.0.0.1:0", nil, &transportTLS{src: client, logger: testutil.Logger("client")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	dialed, err = cli.Dial(raft.ServerAddress(srv.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	if _, err := dialed.Write([]byte{0}); err != nil { // not a probe: routed to raft
		t.Fatal(err)
	}
	accepted, err = srv.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	b := make([]byte, 1)
	if _, err := io.ReadFull(accepted, b); err != nil {
		t.Fatal(err)
	}
	return dialed, accepted
}

// waitClosed waits up to 20 s for c to read an error (its peer or this
// side closed it) and returns when it did.
func waitClosed(t *testing.T, c net.Conn, what string) time.Time {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open 20 s on (read: %v)", what, err)
	}
	return time.Now()
}

// TestTLSPooledRaftConnCutAtClientExpiry: a pooled raft connection
// accepted from an admin whose certificate expires is closed by the
// server at the expiry, not kept as long as the client uses it.
func TestTLSPooledRaftConnCutAtClientExpiry(t *testing.T) {
	pki := newTestPKI(t)
	client, notAfter := pki.issueBrief("a2", certs.Options{})
	dialed, _ := raftPair(t, pki.loadAs("a1", quickChecks), client)
	if at := waitClosed(t, dialed, "a raft connection accepted from an expiring certificate"); at.Before(notAfter) {
		t.Fatalf("cut at %s, before the client certificate's expiry %s", at, notAfter)
	}
}

// TestTLSPooledRaftConnCutAtServerExpiry: a raft connection this node
// dialed is closed when the server's certificate expires.
func TestTLSPooledRaftConnCutAtServerExpiry(t *testing.T) {
	pki := newTestPKI(t)
	server, notAfter := pki.issueBrief("a1", certs.Options{})
	_, accepted := raftPair(t, server, pki.loadAs("a2", quickChecks))
	if at := waitClosed(t, accepted, "a raft connection dialed to a server whose certificate expires"); at.Before(notAfter) {
		t.Fatalf("cut at %s, before the server certificate's expiry %s", at, notAfter)
	}
}

// TestTLSPooledRaftConnCutAtCAWithdrawal: replacing the server's CA file
// by another CA closes the raft connections accepted from certificates of
// the old one (the client reads its own copy of the old CA).
func TestTLSPooledRaftConnCutAtCAWithdrawal(t *testing.T) {
	pki := newTestPKI(t)
	server := pki.loadAs("a1", quickChecks)
	if _, err := certs.Issue(pki.dir, certs.RoleAdmin, "a2", nil, 0); err != nil {
		t.Fatal(err)
	}
	cdir := t.TempDir()
	src, dst := certs.IssuedFiles(pki.dir, "a2"), certs.IssuedFiles(cdir, "a2")
	for from, to := range map[string]string{src.CA: dst.CA, src.Cert: dst.Cert, src.Key: dst.Key} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	client, err := certs.Load(dst, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dialed, _ := raftPair(t, server, client)
	_ = dialed.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // several checks
	if _, err := dialed.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the raft connection ended before the CA changed: %v", err)
	}
	other := t.TempDir()
	if _, err := certs.NewCA(other); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(other, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src.CA, b, 0o644); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, dialed, "a raft connection of a withdrawn CA's certificate")
}
