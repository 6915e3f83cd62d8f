package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// mustLoad loads files into a Source.
func mustLoad(t *testing.T, f Files, opts Options) *Source {
	t.Helper()
	s, err := Load(f, opts)
	if err != nil {
		t.Fatalf("Load %v: %v", f, err)
	}
	return s
}

// rawClientConfig is a client that trusts ca's pool and presents the files'
// certificate as they are, unchecked (an attacker's expired or foreign
// certificate, which Load refuses); no files: no client certificate.
func rawClientConfig(t *testing.T, caFile string, f *Files) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	c := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if f != nil {
		kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		// Sent whatever CAs the server asks for (crypto/tls would
		// otherwise send nothing when the server's CA did not sign it).
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return c
}

// result is what both ends of one handshake saw.
type result struct {
	server, client       tls.ConnectionState
	serverErr, clientErr error
	// role and name are the client's, as the server read them.
	role Role
	name string
}

// handshake connects a client to a server over loopback TCP and returns
// what each side saw. The server writes one byte after its handshake and
// the client reads it, so a client certificate the server refuses after
// the client's side of a TLS 1.3 handshake completed is a client error too.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var r result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		defer tc.Close()
		r.role, r.name, r.serverErr = FromConn(t.Context(), tc)
		if r.serverErr == nil {
			_, r.serverErr = tc.Write([]byte{1})
		}
		r.server = tc.ConnectionState()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	r.clientErr = tc.Handshake()
	if r.clientErr == nil {
		_, r.clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	r.client = tc.ConnectionState()
	tc.Close()
	wg.Wait()
	return r
}

// replaceFiles copies src's certificate and key over dst's, each by a
// rename, as an operator rotating certificates would.
func replaceFiles(t *testing.T, src, dst Files) {
	t.Helper()
	for _, p := range [][2]string{{src.Cert, dst.Cert}, {src.Key, dst.Key}} {
		writeFileAtomic(t, p[1], mustRead(t, p[0]))
	}
}

func writeFileAtomic(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is a settable clock for the Source's checks.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
