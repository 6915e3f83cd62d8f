package certs

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// chainOf is the chain a handshake would verify for the certificate in
// files against the CA file beside it.
func chainOf(t *testing.T, files Files) []*x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustRead(t, files.CA)) {
		t.Fatal("no CA in", files.CA)
	}
	src, err := Load(files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := src.Leaf().Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatal(err)
	}
	return chains[0]
}

// replaceCA writes the CA certificate of another CA over dir's CA file (a
// CA withdrawn, another put in its place) and returns the other's
// directory.
func replaceCA(t *testing.T, dir string) string {
	t.Helper()
	other := newCADir(t)
	if err := os.WriteFile(filepath.Join(dir, CAFile), mustRead(t, filepath.Join(other, CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	return other
}

func TestCheckPeer(t *testing.T) {
	dir := newCADir(t)
	srv, err := Load(mustIssue(t, dir, RoleAdmin, "a1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := chainOf(t, mustIssue(t, dir, RoleWorker, "w1"))
	if err := srv.CheckPeer(good); err != nil {
		t.Fatalf("a fresh worker certificate: %v", err)
	}
	if err := srv.CheckPeer(nil); !errors.Is(err, ErrPeerInvalid) {
		t.Errorf("no chain: %v, want ErrPeerInvalid", err)
	}
	if g := srv.CAGeneration(); g != 1 {
		t.Errorf("CA generation after Load = %d, want 1", g)
	}

	// Expiring: valid until a moment from now, refused after.
	now := time.Now()
	if _, err := IssueBetween(dir, RoleReader, "brief", nil, now.Add(-time.Minute), now.Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	brief := chainOf(t, IssuedFiles(dir, "brief"))
	if err := srv.CheckPeer(brief); err != nil {
		t.Fatalf("a certificate valid for another second: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for err = srv.CheckPeer(brief); err == nil && time.Now().Before(deadline); err = srv.CheckPeer(brief) {
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(err, ErrPeerInvalid) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired certificate: %v, want ErrPeerInvalid saying it expired", err)
	}
	if !time.Now().After(brief[0].NotAfter) {
		t.Fatalf("refused at %s, before its expiry %s", time.Now(), brief[0].NotAfter)
	}

	// Rewriting the same CA file changes nothing; a CA file holding the
	// old CA and a new one keeps trusting the old one's certificates.
	caPEM := mustRead(t, srv.Files().CA)
	if err := os.WriteFile(srv.Files().CA, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv.Reload()
	if g := srv.CAGeneration(); g != 1 {
		t.Errorf("CA generation after rewriting the same CA = %d, want 1", g)
	}
	other := newCADir(t)
	both := append(append([]byte(nil), caPEM...), mustRead(t, filepath.Join(other, CAFile))...)
	if err := os.WriteFile(srv.Files().CA, both, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv.Reload()
	if g := srv.CAGeneration(); g != 2 {
		t.Errorf("CA generation after adding a CA = %d, want 2", g)
	}
	if err := srv.CheckPeer(good); err != nil {
		t.Errorf("with the old CA still in the file: %v", err)
	}

	// The old CA withdrawn: its certificates are refused at the next check.
	if err := os.WriteFile(srv.Files().CA, mustRead(t, filepath.Join(other, CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv.Reload() // warns that a1's own certificate no longer verifies
	if g := srv.CAGeneration(); g != 3 {
		t.Errorf("CA generation after withdrawing a CA = %d, want 3", g)
	}
	err = srv.CheckPeer(good)
	if !errors.Is(err, ErrPeerInvalid) || !strings.Contains(err.Error(), `worker "w1" no longer verifies against the CA in use`) {
		t.Errorf("a certificate of a withdrawn CA: %v, want ErrPeerInvalid saying it no longer verifies", err)
	}
}

func TestIssueBetweenRefusesAnEmptyPeriod(t *testing.T) {
	dir := newCADir(t)
	now := time.Now()
	if _, err := IssueBetween(dir, RoleReader, "r", nil, now, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("IssueBetween with notAfter = notBefore: %v, want ErrInvalid", err)
	}
}

func TestWatchPeer(t *testing.T) {
	dir := newCADir(t)
	srv, err := Load(mustIssue(t, dir, RoleAdmin, "a1"), Options{CheckEvery: 50 * time.Millisecond, PeerCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cuts := make(chan error, 3)
	watch := func(chain []*x509.Certificate) func() {
		return srv.WatchPeer(chain, func(err error) { cuts <- err })
	}
	wait := func(what string) error {
		t.Helper()
		select {
		case err := <-cuts:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no cut in 10 s", what)
		}
		return nil
	}

	// A watch stopped never cuts; a good certificate is not cut.
	stop := watch(chainOf(t, mustIssue(t, dir, RoleWorker, "w1")))

	now := time.Now()
	if _, err := IssueBetween(dir, RoleReader, "brief", nil, now.Add(-time.Minute), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	brief := chainOf(t, IssuedFiles(dir, "brief"))
	stopBrief := watch(brief)
	defer stopBrief()
	if err := wait("an expiring certificate"); !errors.Is(err, ErrPeerInvalid) || !strings.Contains(err.Error(), `reader "brief"`) {
		t.Fatalf("cut of an expiring certificate: %v", err)
	}
	if time.Now().Before(brief[0].NotAfter) {
		t.Fatalf("cut at %s, before the expiry %s", time.Now(), brief[0].NotAfter)
	}
	stop()

	var stoppedCut atomic.Bool
	stop2 := srv.WatchPeer(chainOf(t, IssuedFiles(dir, "w1")), func(error) { stoppedCut.Store(true) })
	stop2()
	w2 := watch(chainOf(t, mustIssue(t, dir, RoleWorker, "w2")))
	defer w2()
	replaceCA(t, dir) // seen by the Source's own check within 50 ms
	if err := wait("a withdrawn CA"); !errors.Is(err, ErrPeerInvalid) || !strings.Contains(err.Error(), "no longer verifies") {
		t.Fatalf("cut after the CA was withdrawn: %v", err)
	}
	select {
	case err := <-cuts:
		t.Errorf("a second cut: %v (w1's watch was stopped)", err)
	default:
	}
	if stoppedCut.Load() {
		t.Error("a watch stopped before the CA changed cut its peer")
	}
}

// TestClientConfigNamed: a client told which admin to expect accepts only
// that admin's certificate.
func TestClientConfigNamed(t *testing.T) {
	dir := newCADir(t)
	a1 := mustLoad(t, mustIssue(t, dir, RoleAdmin, "a1"), Options{})
	w1 := mustLoad(t, mustIssue(t, dir, RoleWorker, "w1"), Options{})
	if r := handshake(t, a1.ServerConfig(), w1.clientConfig("localhost", "a1", nil)); r.clientErr != nil {
		t.Errorf("expecting a1, served by a1: %v", r.clientErr)
	}
	r := handshake(t, a1.ServerConfig(), w1.clientConfig("localhost", "a3", nil))
	if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), `server certificate is "a1"'s, want "a3"'s`) {
		t.Errorf("expecting a3, served by a1: %v, want a refusal naming both", r.clientErr)
	}
}

// BenchmarkCheckPeer is the cost of re-checking a peer certificate at a
// call once its verification is cached (the CA file unchanged).
func BenchmarkCheckPeer(b *testing.B) {
	dir := b.TempDir()
	if _, err := NewCA(dir); err != nil {
		b.Fatal(err)
	}
	if _, err := Issue(dir, RoleAdmin, "a1", nil, 0); err != nil {
		b.Fatal(err)
	}
	src, err := Load(IssuedFiles(dir, "a1"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(src.Files().CA)
	if err != nil {
		b.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	chains, err := src.Leaf().Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := src.CheckPeer(chains[0]); err != nil {
			b.Fatal(err)
		}
	}
}
