package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseCertFile reads a PEM file holding one certificate.
func parseCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(mustRead(t, path))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s is not one PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&^want != 0 {
		t.Errorf("%s has mode %v, want at most %v", path, got, want)
	}
}

// TestNewCA: a P-256 CA valid for ten years, its key private, and neither
// file overwritten by a second NewCA.
func TestNewCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "ca")
	ca, err := NewCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := parseCertFile(t, filepath.Join(dir, CAFile))
	if !got.Equal(ca) || !got.IsCA || !got.BasicConstraintsValid || got.MaxPathLen != 0 || got.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v, MaxPathLen %d, KeyUsage %v", got.IsCA, got.MaxPathLen, got.KeyUsage)
	}
	if pub, ok := got.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", got.PublicKey)
	}
	if d := time.Until(got.NotAfter); d < CAValidity-time.Hour || d > CAValidity {
		t.Errorf("CA valid for %v more, want %v", d, CAValidity)
	}
	if err := got.CheckSignatureFrom(got); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	checkMode(t, filepath.Join(dir, CAKeyFile), 0o600)
	checkMode(t, dir, 0o700) // docs/security.md: the directory tls ca creates is private
	if _, _, err := loadCA(dir); err != nil {
		t.Errorf("the CA's key does not match it: %v", err)
	}

	before := mustRead(t, filepath.Join(dir, CAKeyFile))
	if _, err := NewCA(dir); err == nil || !strings.Contains(err.Error(), "ca.pem already exists; refusing to overwrite it") {
		t.Errorf("second NewCA: %v, want a refusal naming ca.pem", err)
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(dir, CAKeyFile))) {
		t.Error("a refused NewCA changed the CA's key")
	}
	// Only the key left: still refused, naming it.
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, CAKeyFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCA(only); err == nil || !strings.Contains(err.Error(), "ca-key.pem already exists") {
		t.Errorf("NewCA over a key: %v, want a refusal naming ca-key.pem", err)
	}
	if _, err := os.Stat(filepath.Join(only, CAFile)); err == nil {
		t.Error("a refused NewCA wrote ca.pem")
	}
}

// TestIssue: the certificate names its role and name, carries the hosts
// asked for and the default ones, serves and connects, is valid for the
// time asked, chains to the CA, and its key is private.
func TestIssue(t *testing.T) {
	dir := newCADir(t)
	ca := parseCertFile(t, filepath.Join(dir, CAFile))
	cert, err := Issue(dir, RoleAdmin, "a1", []string{"10.0.0.1", "admin1.example.com", "localhost", "10.0.0.1", "fe80::1"}, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := IssuedFiles(dir, "a1")
	if f.Cert != filepath.Join(dir, "a1.pem") || f.Key != filepath.Join(dir, "a1-key.pem") || f.CA != filepath.Join(dir, "ca.pem") {
		t.Errorf("IssuedFiles = %+v", f)
	}
	got := parseCertFile(t, f.Cert)
	if !got.Equal(cert) {
		t.Error("Issue returned another certificate than it wrote")
	}
	if role, name, err := RoleOf(got); err != nil || role != RoleAdmin || name != "a1" {
		t.Errorf("RoleOf = %q, %q, %v", role, name, err)
	}
	if !slices.Equal(got.DNSNames, []string{"localhost", "admin1.example.com"}) {
		t.Errorf("DNS SANs %v", got.DNSNames)
	}
	var ips []string
	for _, ip := range got.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1", "10.0.0.1", "fe80::1"}) {
		t.Errorf("IP SANs %v", ips)
	}
	if !slices.Equal(got.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) || got.IsCA {
		t.Errorf("ExtKeyUsage %v, IsCA %v", got.ExtKeyUsage, got.IsCA)
	}
	if d := time.Until(got.NotAfter); d < 30*24*time.Hour-time.Hour || d > 30*24*time.Hour {
		t.Errorf("valid for %v more, want 30 days", d)
	}
	if got.NotBefore.After(time.Now().Add(-backdate + time.Minute)) {
		t.Errorf("NotBefore %v is not backdated", got.NotBefore)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, host := range []string{"10.0.0.1", "admin1.example.com", "localhost", "127.0.0.1"} {
		if _, err := got.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := got.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.2"}); err == nil {
		t.Error("verified for a host it was not issued for")
	}
	checkMode(t, f.Key, 0o600)

	// The default validity is a year; a reader's certificate only
	// connects and names no host.
	if c, err := Issue(dir, RoleReader, "r1", nil, 0); err != nil {
		t.Fatal(err)
	} else {
		if d := time.Until(c.NotAfter); d < DefaultValidity-time.Hour || d > DefaultValidity {
			t.Errorf("default validity %v, want %v", d, DefaultValidity)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.DNSNames)+len(c.IPAddresses) != 0 {
			t.Errorf("reader certificate: ExtKeyUsage %v, SANs %v %v; want ClientAuth only and no SANs", c.ExtKeyUsage, c.DNSNames, c.IPAddresses)
		}
	}
}

// TestIssueRejects: bad input is an ErrInvalid sentence; an existing file
// or a missing CA is refused before anything is written.
func TestIssueRejects(t *testing.T) {
	dir := newCADir(t)
	mustIssue(t, dir, RoleWorker, "w1")
	for _, tc := range []struct {
		dir      string
		role     Role
		name     string
		hosts    []string
		validity time.Duration
		want     string
		invalid  bool
	}{
		{dir, "root", "x", nil, 0, `unknown role "root"`, true},
		{dir, "", "x", nil, 0, `unknown role ""`, true},
		{dir, RoleWorker, "", nil, 0, "needs a name", true},
		{dir, RoleWorker, "../x", nil, 0, `name "../x" may hold only`, true},
		{dir, RoleWorker, "a/b", nil, 0, "may hold only", true},
		{dir, RoleWorker, ".hidden", nil, 0, "may hold only", true},
		{dir, RoleWorker, "a b", nil, 0, "may hold only", true},
		{dir, RoleWorker, strings.Repeat("w", MaxNameLen+1), nil, 0, "at most 64", true},
		{dir, RoleWorker, "ca", nil, 0, "taken by the CA's", true},
		{dir, RoleWorker, "w1-key", nil, 0, "taken by the CA's or a key's", true},
		{dir, RoleAdmin, "a1", []string{"10.0.0.1:9001"}, 0, `host "10.0.0.1:9001" has a port`, true},
		{dir, RoleAdmin, "a1", []string{"bad_host!"}, 0, "neither an IP address nor a DNS name", true},
		{dir, RoleAdmin, "a1", nil, -time.Hour, "negative", true},
		{dir, RoleWorker, "w2", []string{"10.0.0.2"}, 0, "only admin certificates name hosts", true},
		{dir, RoleReader, "r2", []string{"localhost"}, 0, "only admin certificates name hosts", true},
		{dir, RoleAdmin, "a1", nil, CAValidity + 24*time.Hour, "would outlive the CA", true},
		{dir, RoleWorker, "w1", nil, 0, "w1.pem already exists; refusing to overwrite it", false},
		{t.TempDir(), RoleWorker, "w2", nil, 0, "ca.pem does not exist: make a CA first (groundskeeper tls ca --dir", false},
		{"", RoleWorker, "w2", nil, 0, "directory holding the CA is required", true},
	} {
		_, err := Issue(tc.dir, tc.role, tc.name, tc.hosts, tc.validity)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Issue(%s, %q, %q, %v): %v; want one sentence saying %q", tc.dir, tc.role, tc.name, tc.hosts, err, tc.want)
			continue
		}
		if got := errors.Is(err, ErrInvalid); got != tc.invalid {
			t.Errorf("Issue(%q, %q): errors.Is(ErrInvalid) = %v, want %v (%v)", tc.role, tc.name, got, tc.invalid, err)
		}
	}
	// Nothing but the CA and w1 was written.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"ca-key.pem", "ca.pem", "w1-key.pem", "w1.pem"}; !slices.Equal(names, want) {
		t.Errorf("files after the refused issues: %v, want %v", names, want)
	}
	// A key left without its certificate also blocks the name.
	if err := os.Remove(filepath.Join(dir, "w1.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(dir, RoleWorker, "w1", nil, 0); err == nil || !strings.Contains(err.Error(), "w1-key.pem already exists") {
		t.Errorf("Issue over a key: %v", err)
	}
}

// TestIssueWithoutCAKey: the CA's key is needed to issue, and must be the
// CA's.
func TestIssueWithoutCAKey(t *testing.T) {
	dir, other := newCADir(t), newCADir(t)
	if err := os.Rename(filepath.Join(other, CAKeyFile), filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(dir, RoleReader, "r1", nil, 0); err == nil || !strings.Contains(err.Error(), "holds no CA certificate for the key in") {
		t.Errorf("Issue with another CA's key: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Issue(dir, RoleReader, "r1", nil, 0); err == nil || !strings.Contains(err.Error(), "ca-key.pem does not exist") {
		t.Errorf("Issue without the CA's key: %v", err)
	}
}

// TestParseHostsNoDefaultsLost: the default hosts stay first whatever is
// asked; an IPv6 host is an IP SAN.
func TestParseHostsNoDefaultsLost(t *testing.T) {
	ips, dns, err := parseHosts([]string{"LOCALHOST", "::1", "gk.internal"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dns, []string{"localhost", "gk.internal"}) || len(ips) != 2 || !ips[1].Equal(net.IPv6loopback) {
		t.Errorf("parseHosts = %v, %v", ips, dns)
	}
}

// TestIssueBetween: the certificate carries exactly the period asked for;
// an expired one fails verification against its CA (what a server checks
// in the handshake) while one of the same CA issued by Issue passes; a
// period that ends before it starts is refused as invalid input and
// writes nothing.
func TestIssueBetween(t *testing.T) {
	dir := newCADir(t)
	from := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	until := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	old, err := IssueBetween(dir, RoleReader, "old", nil, from, until)
	if err != nil {
		t.Fatal(err)
	}
	if !old.NotBefore.Equal(from) || !old.NotAfter.Equal(until) {
		t.Errorf("valid %v to %v, want %v to %v", old.NotBefore, old.NotAfter, from, until)
	}
	if got := parseCertFile(t, IssuedFiles(dir, "old").Cert); !got.Equal(old) {
		t.Error("the file does not hold the certificate returned")
	}
	pool := x509.NewCertPool()
	pool.AddCert(parseCertFile(t, filepath.Join(dir, CAFile)))
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	var invalid x509.CertificateInvalidError
	if _, err := old.Verify(opts); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("verifying the expired certificate: %v, want x509.Expired", err)
	}
	fresh := parseCertFile(t, mustIssue(t, dir, RoleReader, "fresh").Cert)
	if _, err := fresh.Verify(opts); err != nil {
		t.Errorf("verifying a current certificate of the same CA: %v", err)
	}

	_, err = IssueBetween(dir, RoleReader, "backwards", nil, until, from)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "never valid") {
		t.Errorf("an inverted period: %v, want ErrInvalid saying it is never valid", err)
	}
	if _, err := os.Stat(IssuedFiles(dir, "backwards").Key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused IssueBetween left a key: %v", err)
	}
	// The CA's own expiry still bounds it.
	if _, err := IssueBetween(dir, RoleReader, "forever", nil, from, time.Now().Add(2*CAValidity)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a period past the CA's expiry: %v, want ErrInvalid", err)
	}
}
