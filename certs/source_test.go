package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoadRefuses: the first load names what is wrong with the files.
func TestLoadRefuses(t *testing.T) {
	dir := newCADir(t)
	good := mustIssue(t, dir, RoleWorker, "w1")
	other := mustIssue(t, dir, RoleWorker, "w2")
	foreign := mustIssue(t, newCADir(t), RoleWorker, "w3")
	expired := IssuedFiles(dir, "old")
	if _, err := issue(dir, RoleWorker, "old", nil, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Files
		want string
	}{
		{"missing CA", Files{filepath.Join(dir, "nope.pem"), good.Cert, good.Key}, "nope.pem: no such file"},
		{"CA file without certificates", Files{empty, good.Cert, good.Key}, "empty.pem holds no PEM certificate"},
		{"key of another certificate", Files{good.CA, good.Cert, other.Key}, "private key does not match public key"},
		{"certificate of another CA", Files{good.CA, foreign.Cert, foreign.Key}, "does not verify against the CA in"},
		{"expired certificate", Files{expired.CA, expired.Cert, expired.Key}, "expired"},
		{"garbage certificate", Files{good.CA, empty, good.Key}, "empty.pem with key"},
		{"half a configuration", Files{CA: good.CA}, "the certificate file and the key file are missing"},
		{"no configuration", Files{}, "no TLS files given"},
	} {
		if _, err := Load(tc.f, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// reports records what a Source reported.
type reports struct {
	mu   sync.Mutex
	errs []error
}

func (r *reports) report(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *reports) take() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.errs
	r.errs = nil
	return out
}

// TestRotation: new certificate files on disk are what the next handshake
// after CheckEvery presents, with no restart; a broken replacement keeps
// the last good certificate, is reported once and shown by Err; fixing it
// loads it.
func TestRotation(t *testing.T) {
	dir := newCADir(t)
	sf := mustIssue(t, dir, RoleAdmin, "a1")
	next := mustIssue(t, dir, RoleAdmin, "a1-next")
	clock := &fakeClock{t: time.Now()}
	rep := &reports{}
	server := mustLoad(t, sf, Options{CheckEvery: 10 * time.Second, Report: rep.report, now: clock.now})
	client := mustLoad(t, mustIssue(t, dir, RoleReader, "r1"), Options{})
	serverCN := func() string {
		t.Helper()
		r := handshake(t, server.ServerConfig(), client.ClientConfig("localhost"))
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("handshake: server %v, client %v", r.serverErr, r.clientErr)
		}
		return r.client.PeerCertificates[0].Subject.CommonName
	}
	if cn := serverCN(); cn != "a1" {
		t.Fatalf("server presents %q, want a1", cn)
	}

	replaceFiles(t, next, sf)
	clock.advance(5 * time.Second)
	if cn := serverCN(); cn != "a1" {
		t.Errorf("within CheckEvery the server presents %q, want the certificate in memory (a1)", cn)
	}
	clock.advance(5 * time.Second)
	if cn := serverCN(); cn != "a1-next" {
		t.Errorf("after CheckEvery the server presents %q, want the rotated a1-next", cn)
	}
	if errs := rep.take(); len(errs) != 1 || errs[0] != nil {
		t.Errorf("reports after the rotation: %v, want one nil", errs)
	}
	if err := server.Err(); err != nil {
		t.Errorf("Err after a good rotation: %v", err)
	}

	// A broken certificate file: the last good one stays.
	writeFileAtomic(t, sf.Cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	for range 3 {
		clock.advance(10 * time.Second)
		if cn := serverCN(); cn != "a1-next" {
			t.Fatalf("with a broken file the server presents %q, want the last good a1-next", cn)
		}
	}
	errs := rep.take()
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "keeping the certificates in use") {
		t.Errorf("reports of the broken file over three checks: %v, want one error", errs)
	}
	if err := server.Err(); err == nil || !strings.Contains(err.Error(), sf.Cert) {
		t.Errorf("Err with a broken file: %v, want it named", err)
	}

	// A key that does not match, then the file removed: each reported once.
	writeFileAtomic(t, sf.Cert, mustRead(t, IssuedFiles(dir, "r1").Cert))
	if err := server.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("Reload with a mismatched key: %v", err)
	}
	if err := os.Remove(sf.Cert); err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Reload with the file gone: %v", err)
	}
	if cn := serverCN(); cn != "a1-next" {
		t.Errorf("with the file gone the server presents %q", cn)
	}
	if errs := rep.take(); len(errs) != 2 {
		t.Errorf("reports: %v, want the mismatch and the missing file", errs)
	}

	// Fixed: the new files load.
	writeFileAtomic(t, sf.Cert, mustRead(t, next.Cert))
	writeFileAtomic(t, sf.Key, mustRead(t, next.Key))
	clock.advance(10 * time.Second)
	if cn := serverCN(); cn != "a1-next" {
		t.Errorf("after the fix the server presents %q", cn)
	}
	if err := server.Err(); err != nil {
		t.Errorf("Err after the fix: %v", err)
	}
}

// TestClientRotation: a client's rotated certificate is what the server
// sees at the next handshake, from the same *tls.Config.
func TestClientRotation(t *testing.T) {
	dir := newCADir(t)
	server := mustLoad(t, mustIssue(t, dir, RoleAdmin, "a1"), Options{})
	cf := mustIssue(t, dir, RoleWorker, "w1")
	clock := &fakeClock{t: time.Now()}
	client := mustLoad(t, cf, Options{CheckEvery: time.Second, now: clock.now})
	cfg := client.ClientConfig("localhost", RoleAdmin)
	if r := handshake(t, server.ServerConfig(), cfg); r.serverErr != nil || r.name != "w1" {
		t.Fatalf("before: %v, name %q", r.serverErr, r.name)
	}
	replaceFiles(t, mustIssue(t, dir, RoleOperator, "ops"), cf)
	clock.advance(time.Second)
	if r := handshake(t, server.ServerConfig(), cfg); r.serverErr != nil || r.role != RoleOperator || r.name != "ops" {
		t.Errorf("after rotation the server saw %q %q (%v), want operator ops", r.role, r.name, r.serverErr)
	}
}

// TestCARotation: both sides verify against the CA file as it is now: a
// second CA added to it admits that CA's clients and servers at the next
// handshake, with the same ServerConfig, and removing it refuses them
// again.
func TestCARotation(t *testing.T) {
	dir, next := newCADir(t), newCADir(t)
	clock := &fakeClock{t: time.Now()}
	opts := Options{CheckEvery: time.Second, now: clock.now}
	server := mustLoad(t, mustIssue(t, dir, RoleAdmin, "a1"), opts)
	client := mustLoad(t, mustIssue(t, dir, RoleReader, "r1"), opts)
	caFile := filepath.Join(dir, CAFile)
	oldCA, nextCA := mustRead(t, caFile), mustRead(t, filepath.Join(next, CAFile))
	// The new CA's holders trust both CAs from the start (and issuing
	// finds the new CA's certificate in a file holding two).
	writeFileAtomic(t, filepath.Join(next, CAFile), append(append([]byte(nil), nextCA...), oldCA...))
	newServer := mustLoad(t, mustIssue(t, next, RoleAdmin, "a2"), Options{})
	newClient := mustLoad(t, mustIssue(t, next, RoleReader, "r2"), Options{})

	cfg := server.ServerConfig()
	if r := handshake(t, cfg, newClient.ClientConfig("localhost")); r.serverErr == nil {
		t.Fatal("the server accepted a client of a CA not in its CA file")
	}
	if r := handshake(t, newServer.ServerConfig(), client.ClientConfig("localhost")); r.clientErr == nil {
		t.Fatal("the client accepted a server of a CA not in its CA file")
	}

	writeFileAtomic(t, caFile, append(append([]byte(nil), oldCA...), nextCA...))
	clock.advance(time.Second)
	if r := handshake(t, cfg, newClient.ClientConfig("localhost")); r.serverErr != nil || r.name != "r2" {
		t.Errorf("after the CA was added the server saw %q (%v), want r2", r.name, r.serverErr)
	}
	if r := handshake(t, newServer.ServerConfig(), client.ClientConfig("localhost")); r.clientErr != nil || r.serverErr != nil {
		t.Errorf("after the CA was added the client refused the new server: %v / %v", r.clientErr, r.serverErr)
	}

	writeFileAtomic(t, caFile, oldCA)
	clock.advance(time.Second)
	if r := handshake(t, cfg, newClient.ClientConfig("localhost")); r.serverErr == nil {
		t.Error("after the CA was removed the server still accepted its client")
	}
}

// TestConcurrentRotation: handshakes from several goroutines while the
// server's and the client's files are rewritten under them all succeed,
// each with one of the good certificates (a check that sees a certificate
// beside the other's key keeps the last good pair). Run with -race.
func TestConcurrentRotation(t *testing.T) {
	dir := newCADir(t)
	sf := mustIssue(t, dir, RoleAdmin, "a1")
	alt := mustIssue(t, dir, RoleAdmin, "a1-alt")
	pairs := [2][2][]byte{{mustRead(t, sf.Cert), mustRead(t, sf.Key)}, {mustRead(t, alt.Cert), mustRead(t, alt.Key)}}
	cf := mustIssue(t, dir, RoleReader, "r1")
	server := mustLoad(t, sf, Options{CheckEvery: time.Nanosecond})
	client := mustLoad(t, cf, Options{CheckEvery: time.Nanosecond})

	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerConfig(RoleReader))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte{1})
				}
			}()
		}
	}()

	stop := make(chan struct{})
	var rotator sync.WaitGroup
	rotator.Add(1)
	go func() {
		defer rotator.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := pairs[i%2]
			for j, path := range []string{sf.Cert, sf.Key} {
				tmp := path + ".tmp"
				if err := os.WriteFile(tmp, p[j], 0o600); err != nil {
					t.Error(err)
					return
				}
				if err := os.Rename(tmp, path); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()

	var clients sync.WaitGroup
	for range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for range 25 {
				c, err := tls.Dial("tcp", ln.Addr().String(), client.ClientConfig("localhost", RoleAdmin))
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, err = io.ReadFull(c, make([]byte, 1))
					if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; err == nil && cn != "a1" && cn != "a1-alt" {
						t.Errorf("server presented %q", cn)
					}
					c.Close()
				}
				if err != nil {
					t.Errorf("handshake during rotation: %v", err)
					return
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	rotator.Wait()
}

// issueServerOnly writes, in dir, a certificate signed by dir's CA whose
// extended key usage is ServerAuth only (another PKI's server certificate).
func issueServerOnly(t *testing.T, dir, name string) Files {
	t.Helper()
	ca, caKey, err := loadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{string(RoleAdmin)}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	f := IssuedFiles(dir, name)
	if err := writeKeyAndCert(key, der, f.Key, f.Cert); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLoadWarnsAndRefusesUsage: a key file others may read loads, with a
// warning reported and kept in Err; a certificate that cannot connect
// (no ClientAuth) is refused in one sentence naming it.
func TestLoadWarnsAndRefusesUsage(t *testing.T) {
	dir := newCADir(t)
	f := mustIssue(t, dir, RoleAdmin, "a1")
	if err := os.Chmod(f.Key, 0o640); err != nil {
		t.Fatal(err)
	}
	rep := &reports{}
	src, err := Load(f, Options{Report: rep.report})
	if err != nil {
		t.Fatalf("Load with a group-readable key: %v", err)
	}
	errs := rep.take()
	if len(errs) != 1 || !errors.Is(errs[0], ErrWarning) || !strings.Contains(errs[0].Error(), "mode 0640") {
		t.Errorf("reports of a group-readable key: %v, want one warning naming the mode", errs)
	}
	if err := src.Err(); !errors.Is(err, ErrWarning) {
		t.Errorf("Err with a group-readable key: %v, want the warning", err)
	}

	so := issueServerOnly(t, dir, "a2")
	if _, err := Load(so, Options{}); err == nil || !strings.Contains(err.Error(), "lacks ClientAuth") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Load of a ServerAuth-only certificate: %v, want one sentence saying it lacks ClientAuth", err)
	}
}

// TestCAWithdrawalWarns: a CA file that no longer verifies our own
// certificate is applied, and Err says, as a warning, that the
// certificate in use must be re-issued; the key pair rotated to one of
// the new CA clears it.
func TestCAWithdrawalWarns(t *testing.T) {
	old, fresh := newCADir(t), newCADir(t)
	clock := &fakeClock{t: time.Now()}
	rep := &reports{}
	sf := mustIssue(t, old, RoleAdmin, "a1")
	server := mustLoad(t, sf, Options{CheckEvery: time.Second, Report: rep.report, now: clock.now})
	writeFileAtomic(t, sf.CA, mustRead(t, filepath.Join(fresh, CAFile)))
	if err := server.Reload(); !errors.Is(err, ErrWarning) || !strings.Contains(err.Error(), "no longer verifies") {
		t.Errorf("Reload after the CA was withdrawn: %v, want a warning that our certificate no longer verifies", err)
	}
	if errs := rep.take(); len(errs) != 1 || !errors.Is(errs[0], ErrWarning) {
		t.Errorf("reports: %v, want one warning", errs)
	}
	replaceFiles(t, mustIssue(t, fresh, RoleAdmin, "a1-new"), sf)
	if err := server.Reload(); err != nil {
		t.Errorf("Reload after re-issuing from the new CA: %v", err)
	}
	if cn := server.Leaf().Subject.CommonName; cn != "a1-new" {
		t.Errorf("certificate in use %q, want a1-new", cn)
	}
}
