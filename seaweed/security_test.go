package seaweed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// testCA is a plain x509 CA of the kind SeaweedFS operators make (no
// groundskeeper roles: SeaweedFS looks at none).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".crt")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// leaf issues cn (usable as client and server, for 127.0.0.1) and returns
// its certificate and key files.
func (ca *testCA) leaf(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// pki is a CA with an admin, a worker and a master certificate in dir.
type pki struct {
	dir                  string
	ca                   *testCA
	adminCert, adminKey  string
	workerCert, workerKy string
	masterCert, masterKy string
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	p := &pki{dir: dir, ca: newTestCA(t, dir, "ca")}
	p.adminCert, p.adminKey = p.ca.leaf(t, dir, "admin")
	p.workerCert, p.workerKy = p.ca.leaf(t, dir, "worker")
	p.masterCert, p.masterKy = p.ca.leaf(t, dir, "master")
	return p
}

func (p *pki) toml() string {
	return "[grpc]\nca = \"" + p.ca.file + "\"\n\n[grpc.admin]\ncert = \"" + p.adminCert + "\"\nkey = \"" + p.adminKey +
		"\"\n\n[grpc.worker]\ncert = \"" + p.workerCert + "\"\nkey = \"" + p.workerKy + "\"\n"
}

func TestSecuritySearchOrder(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	first, second := t.TempDir(), t.TempDir()
	opts := SecurityOptions{Component: ComponentAdmin, lookupEnv: noEnv, dirs: []string{first, second}}

	// None found: plaintext, and it says so.
	s, err := LoadSecurity(opts)
	if err != nil || s.TLS() || !strings.Contains(s.String(), "no security.toml") {
		t.Fatalf("no file: %v, TLS %v, %q", err, s.TLS(), s.String())
	}
	if len(s.DialOptions()) != 0 {
		t.Fatal("plaintext has dial options")
	}

	// Found in the second directory only.
	writeFile(t, filepath.Join(second, "security.toml"), p.toml())
	s, err = LoadSecurity(opts)
	if err != nil || !s.TLS() || s.File() != filepath.Join(second, "security.toml") {
		t.Fatalf("second dir: %v, TLS %v, file %q", err, s.TLS(), s.File())
	}
	if got := s.Source().Files().Cert; got != p.adminCert {
		t.Fatalf("admin presents %s, want %s", got, p.adminCert)
	}

	// The first directory wins: its file has no [grpc] ca, so plaintext.
	writeFile(t, filepath.Join(first, "security.toml"), "[jwt.signing]\nkey = \"x\"\n")
	s, err = LoadSecurity(opts)
	if err != nil || s.TLS() || s.File() != filepath.Join(first, "security.toml") {
		t.Fatalf("first dir: %v, TLS %v, file %q", err, s.TLS(), s.File())
	}
	if !strings.Contains(s.String(), "configures no gRPC TLS") {
		t.Fatalf("String %q", s.String())
	}
}

func TestSecurityDefaultSearchPath(t *testing.T) {
	t.Parallel()
	got := searchDirs(envOf(map[string]string{"HOME": "/home/op"}))
	want := []string{".", "/home/op/.seaweedfs", "/usr/local/etc/seaweedfs", "/etc/seaweedfs"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("search path %v, want %v", got, want)
	}
	if got := searchDirs(noEnv)[1]; got != "/.seaweedfs" {
		t.Fatalf("without HOME the search looks in %q, want /.seaweedfs as viper", got)
	}
}

func TestSecurityComponents(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "security.toml")
	// client_cert/client_key is preferred over cert/key, as weed does.
	writeFile(t, file, p.toml()+"client_cert = \""+p.masterCert+"\"\nclient_key = \""+p.masterKy+"\"\n")
	for comp, want := range map[string]string{ComponentAdmin: p.adminCert, ComponentWorker: p.masterCert} {
		s, err := LoadSecurity(SecurityOptions{File: file, Component: comp, lookupEnv: noEnv})
		if err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		if got := s.Source().Files().Cert; got != want {
			t.Fatalf("%s presents %s, want %s", comp, got, want)
		}
	}
}

func TestSecurityEnvOverrides(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "security.toml"), p.toml())
	// The variable beats the file, as viper's AutomaticEnv does; an empty
	// one overrides nothing.
	env := envOf(map[string]string{"WEED_GRPC_ADMIN_CERT": p.workerCert, "WEED_GRPC_ADMIN_KEY": p.workerKy, "WEED_GRPC_CA": ""})
	s, err := LoadSecurity(SecurityOptions{Component: ComponentAdmin, lookupEnv: env, dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Source().Files().Cert; got != p.workerCert {
		t.Fatalf("cert %s, want the variable's %s", got, p.workerCert)
	}
	if got := s.Source().Files().CA; got != p.ca.file {
		t.Fatalf("CA %s, want the file's %s", got, p.ca.file)
	}

	// Variables alone, no file: TLS.
	env = envOf(map[string]string{"WEED_GRPC_CA": p.ca.file, "WEED_GRPC_WORKER_CERT": p.workerCert, "WEED_GRPC_WORKER_KEY": p.workerKy})
	s, err = LoadSecurity(SecurityOptions{Component: ComponentWorker, lookupEnv: env, dirs: []string{t.TempDir()}})
	if err != nil || !s.TLS() {
		t.Fatalf("env only: %v, TLS %v", err, s.TLS())
	}

	// A file named with --seaweedfs-security is read alone, as weed's
	// -a.security: no variables, and relative paths from its directory.
	rel := t.TempDir()
	for _, f := range []string{p.ca.file, p.adminCert, p.adminKey} {
		b, _ := os.ReadFile(f)
		writeFile(t, filepath.Join(rel, "pem", filepath.Base(f)), string(b))
	}
	writeFile(t, filepath.Join(rel, "security.toml"), "[grpc]\nca = \"pem/ca.crt\"\n[grpc.admin]\ncert = \"pem/admin.crt\"\nkey = \"pem/admin.key\"\n")
	env = envOf(map[string]string{"WEED_GRPC_ADMIN_CERT": "/nonexistent"})
	s, err = LoadSecurity(SecurityOptions{File: filepath.Join(rel, "security.toml"), Component: ComponentAdmin, lookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Source().Files().Cert; got != filepath.Join(rel, "pem", "admin.crt") {
		t.Fatalf("cert %s", got)
	}
}

// Every configuration weed refuses, or left half done, is one sentence
// naming what is wrong, never plaintext.
func TestSecurityHalfFilled(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	bad := newTestCA(t, t.TempDir(), "other")
	for _, tc := range []struct{ name, toml, want string }{
		{"cert without key", "[grpc]\nca = \"" + p.ca.file + "\"\n[grpc.admin]\ncert = \"" + p.adminCert + "\"\n", "grpc.admin.cert and grpc.admin.key must both be set"},
		{"key without cert", "[grpc]\nca = \"" + p.ca.file + "\"\n[grpc.admin]\nkey = \"" + p.adminKey + "\"\n", "grpc.admin.cert and grpc.admin.key must both be set"},
		{"client_cert without client_key", "[grpc]\nca = \"" + p.ca.file + "\"\n[grpc.admin]\nclient_cert = \"" + p.adminCert + "\"\n", "client_cert and grpc.admin.client_key must both be set"},
		{"no ca", "[grpc.admin]\ncert = \"" + p.adminCert + "\"\nkey = \"" + p.adminKey + "\"\n", "grpc.ca is not"},
		{"ca but no admin section", "[grpc]\nca = \"" + p.ca.file + "\"\n[grpc.master]\ncert = \"" + p.masterCert + "\"\nkey = \"" + p.masterKy + "\"\n", "sets grpc.ca but no grpc.admin.cert"},
		{"ca file missing", "[grpc]\nca = \"/nonexistent/ca.crt\"\n[grpc.admin]\ncert = \"" + p.adminCert + "\"\nkey = \"" + p.adminKey + "\"\n", "/nonexistent/ca.crt"},
		{"cert file missing", "[grpc]\nca = \"" + p.ca.file + "\"\n[grpc.admin]\ncert = \"/nonexistent/a.crt\"\nkey = \"" + p.adminKey + "\"\n", "/nonexistent/a.crt"},
		{"cert of another CA", "[grpc]\nca = \"" + bad.file + "\"\n[grpc.admin]\ncert = \"" + p.adminCert + "\"\nkey = \"" + p.adminKey + "\"\n", "does not verify"},
		{"not TOML", "[grpc\nca = ", "not valid TOML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "security.toml")
			writeFile(t, file, tc.toml)
			s, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv})
			if err == nil {
				t.Fatalf("loaded (TLS %v), want an error", s.TLS())
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q, want one line with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
		})
	}
	// A named file that does not exist.
	if _, err := LoadSecurity(SecurityOptions{File: "/nonexistent/security.toml", Component: ComponentAdmin}); err == nil || !strings.Contains(err.Error(), "/nonexistent/security.toml") {
		t.Fatalf("missing file: %v", err)
	}
}

// serveTLS accepts one connection as a SeaweedFS server with mutual TLS
// on would (LoadServerTLS: client certificate required and verified
// against grpc.ca) and returns its address and the handshake's outcome.
func serveTLS(t *testing.T, ca *testCA, cert, key string) (string, <-chan error) {
	t.Helper()
	return serveTLSFor(t, ca, ca, cert, key)
}

// serveTLSFor is serveTLS accepting clients of clientCA.
func serveTLSFor(t *testing.T, ca, clientCA *testCA, cert, key string) (string, <-chan error) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	return ln.Addr().String(), done
}

func handshake(t *testing.T, s *Security, addr string) error {
	t.Helper()
	cfg := s.clientConfig()
	cfg.ServerName = "localhost" // not what the certificate names: no host name check
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3: the server's verdict on our certificate arrives with the
	// first read.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "EOF") {
		return nil
	}
	return err
}

func TestSecurityHandshake(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	file := filepath.Join(t.TempDir(), "security.toml")
	writeFile(t, file, p.toml())
	s, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}

	// The master's certificate names "master", not the address: accepted.
	addr, done := serveTLS(t, p.ca, p.masterCert, p.masterKy)
	if err := handshake(t, s, addr); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}

	// A server of another CA is refused.
	otherDir := t.TempDir()
	other := newTestCA(t, otherDir, "other")
	oc, ok := other.leaf(t, otherDir, "impostor")
	addr, _ = serveTLS(t, other, oc, ok)
	if err := handshake(t, s, addr); err == nil || !strings.Contains(err.Error(), "does not verify against grpc.ca") {
		t.Fatalf("impostor: %v", err)
	}

	// allowed_server_commonNames narrows the servers accepted.
	writeFile(t, file, strings.Replace(p.toml(), "[grpc.admin]\n", "[grpc.admin]\nallowed_server_commonNames = \"volume1, volume2\"\n", 1))
	s2, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ = serveTLS(t, p.ca, p.masterCert, p.masterKy)
	if err := handshake(t, s2, addr); err == nil || !strings.Contains(err.Error(), "allowed_server_commonNames") {
		t.Fatalf("master not allowed: %v", err)
	}
	writeFile(t, file, strings.Replace(p.toml(), "[grpc]\n", "[grpc]\nallowed_server_commonNames = \"master\"\n", 1))
	s3, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ = serveTLS(t, p.ca, p.masterCert, p.masterKy)
	if err := handshake(t, s3, addr); err != nil {
		t.Fatalf("master allowed by [grpc]: %v", err)
	}

	// The server refuses our certificate (it trusts another CA for
	// clients): the first read says so, not a bare TLS alert.
	addr, _ = serveTLSFor(t, p.ca, other, p.masterCert, p.masterKy)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	creds := &seaweedCreds{TransportCredentials: credentials.NewTLS(s.clientConfig()), s: s}
	conn, _, err := creds.ClientHandshake(context.Background(), addr, raw)
	if err != nil {
		t.Fatalf("client side of the handshake: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "refused our certificate "+p.adminCert) {
		t.Fatalf("refused client: %v", err)
	}

	// A client certificate that grpc.ca does not verify is refused at
	// load.
	dir := t.TempDir()
	wrong := newTestCA(t, dir, "wrong")
	wc, wk := wrong.leaf(t, dir, "admin")
	writeFile(t, file, "[grpc]\nca = \""+p.ca.file+"\"\n[grpc.admin]\ncert = \""+wc+"\"\nkey = \""+wk+"\"\n")
	if _, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv}); err == nil {
		t.Fatal("a certificate not of grpc.ca loaded")
	}
}

func TestMatchesWildcardDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, domain string
		want         bool
	}{
		{"v1.seaweed.local", ".seaweed.local", true},
		{"v1.seaweed.local", "seaweed.local", true},
		{"seaweed.local", "seaweed.local", false},
		{"xseaweed.local", "seaweed.local", false},
		{".seaweed.local", ".seaweed.local", false},
		{"v1.seaweed.local", "", false},
	} {
		if got := matchesWildcardDomain(tc.name, tc.domain); got != tc.want {
			t.Errorf("matchesWildcardDomain(%q, %q) = %v", tc.name, tc.domain, got)
		}
	}
}

// The certificate files are a certs.Source: rewritten in place, the new
// certificate is what the next handshake presents, with no restart.
func TestSecurityRotation(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	file := filepath.Join(t.TempDir(), "security.toml")
	writeFile(t, file, p.toml())
	s, err := LoadSecurity(SecurityOptions{File: file, Component: ComponentAdmin, lookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.clientConfig()
	presented := func() string {
		c, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := presented(); got != "admin" {
		t.Fatalf("presents %q, want admin", got)
	}
	dir := t.TempDir()
	nc, nk := p.ca.leaf(t, dir, "admin2")
	for src, dst := range map[string]string{nc: p.adminCert, nk: p.adminKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, string(b))
	}
	if err := s.Source().Reload(); err != nil {
		t.Fatal(err)
	}
	if got := presented(); got != "admin2" {
		t.Fatalf("after the rotation presents %q, want admin2", got)
	}
}

// A TLS-only SeaweedFS closing a plaintext client's connection is named
// as such, once, with the fix; other errors pass unchanged.
func TestExplainRefusal(t *testing.T) {
	bare := status.Error(codes.Unavailable, `connection error: desc = "error reading server preface: EOF"`)
	got := explainRefusal(bare)
	if !strings.Contains(got.Error(), "dials in plaintext") || !strings.Contains(got.Error(), "--seaweedfs-security") || status.Code(got) != codes.Unavailable {
		t.Fatalf("explainRefusal: %v (code %v)", got, status.Code(got))
	}
	if again := explainRefusal(got); again.Error() != got.Error() {
		t.Fatalf("explained twice: %v", again)
	}
	other := status.Error(codes.Unavailable, "connection refused")
	if explainRefusal(other) != other || explainRefusal(nil) != nil {
		t.Fatal("other errors changed")
	}
}

// Masters all unreachable for one reason are described with it once;
// otherwise each is listed.
func TestDescribeSameReasonOnce(t *testing.T) {
	m := &Master{}
	for _, port := range []string{"9333", "9334", "9335"} {
		a, err := ParseAddress("127.0.0.1:" + port)
		if err != nil {
			t.Fatal(err)
		}
		m.seen = append(m.seen, MasterStatus{Addr: a, State: MasterUnreachable, Err: "handshake with " + a.GRPC + " failed: bad certificate"})
	}
	got := m.describe()
	if strings.Count(got, "bad certificate") != 1 || !strings.Contains(got, "all 3 masters (127.0.0.1:9333, 127.0.0.1:9334, 127.0.0.1:9335) unreachable") {
		t.Fatalf("describe: %q", got)
	}
	m.seen[1].Err = "connection refused"
	if got := m.describe(); strings.Count(got, "bad certificate") != 2 || !strings.Contains(got, "connection refused") {
		t.Fatalf("describe with two reasons: %q", got)
	}
	// One explanation, the transport's own last words differing per
	// master (a refused plaintext dial: EOF from one, a reset from another).
	for i, tail := range []string{"EOF", "connection reset by peer", "EOF"} {
		m.seen[i].Err = "it closed the connection before answering (connection error: desc = \"error reading server preface: " + tail + "\")"
	}
	if got := m.describe(); strings.Count(got, "closed the connection") != 1 || !strings.Contains(got, "all 3 masters") {
		t.Fatalf("describe with one explanation and different transport errors: %q", got)
	}
}
