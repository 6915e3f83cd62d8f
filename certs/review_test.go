package certs

// Tests from the security review of branch certs: each fails on that
// branch and names a defect (see the review report).

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReviewNonAdminCannotServe: every certificate Issue makes carries
// ExtKeyUsage ServerAuth and the localhost SANs, so a reader's (or a
// worker's) certificate serves as an admin on the machine it is on to any
// client dialing without roles (ctl, as ClientConfig allows): a reader on
// the admin's host, binding the admin's port while the admin restarts,
// receives an operator's submits and snapshot restores. Only an admin
// serves; the handshake must fail.
func TestReviewNonAdminCannotServe(t *testing.T) {
	dir := newCADir(t)
	operator := mustLoad(t, mustIssue(t, dir, RoleOperator, "alice"), Options{})
	for _, role := range []Role{RoleReader, RoleWorker, RoleOperator} {
		impostor := mustLoad(t, mustIssue(t, dir, role, "imp-"+string(role)), Options{})
		r := handshake(t, impostor.ServerConfig(), operator.ClientConfig("localhost"))
		if r.clientErr == nil {
			t.Errorf("a client dialing localhost accepted a %s certificate as its server", role)
		}
	}
	c, err := Issue(dir, RoleReader, "r-eku", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("a reader's certificate has ExtKeyUsage ServerAuth (%v): it can serve", c.ExtKeyUsage)
	}
}

// TestReviewCAWithdrawalApplies: docs/security.md says clients of a CA
// removed from the CA file are refused at their next connection. When the
// node's own certificate is still from the removed CA (the node not yet
// re-issued, or the CA withdrawn in a hurry because its key leaked), the
// new CA file is refused as a whole and the old pool, trusting the
// withdrawn CA, stays in use for as long as the files stay so. Narrowing
// trust must apply whatever our own certificate is.
func TestReviewCAWithdrawalApplies(t *testing.T) {
	old, fresh := newCADir(t), newCADir(t)
	clock := &fakeClock{t: time.Now()}
	server := mustLoad(t, mustIssue(t, old, RoleAdmin, "a1"), Options{CheckEvery: time.Second, now: clock.now})
	leaked := mustLoad(t, mustIssue(t, old, RoleOperator, "mallory"), Options{})
	if r := handshake(t, server.ServerConfig(), leaked.ClientConfig("localhost")); r.serverErr != nil {
		t.Fatalf("before the withdrawal: %v", r.serverErr)
	}
	// The old CA's key leaked: the CA file now holds only the new CA.
	writeFileAtomic(t, filepath.Join(old, CAFile), mustRead(t, filepath.Join(fresh, CAFile)))
	clock.advance(time.Second)
	r := handshake(t, server.ServerConfig(), leaked.ClientConfig("localhost"))
	if r.serverErr == nil {
		t.Errorf("after the CA was withdrawn from the CA file the server still accepted its client %q (Err: %v)", r.name, server.Err())
	}
}

// TestReviewClockStepBack: the next check is kept as wall-clock
// UnixNano, so when the wall clock steps back (NTP correcting a node that
// booted an hour ahead) no check happens until the wall clock catches up:
// rotated certificates, and a CA withdrawn, are ignored for that long.
func TestReviewClockStepBack(t *testing.T) {
	dir := newCADir(t)
	sf := mustIssue(t, dir, RoleAdmin, "a1")
	next := mustIssue(t, dir, RoleAdmin, "a1-next")
	clock := &fakeClock{t: time.Now()}
	server := mustLoad(t, sf, Options{CheckEvery: 10 * time.Second, now: clock.now})
	client := mustLoad(t, mustIssue(t, dir, RoleReader, "r1"), Options{})

	clock.advance(-time.Hour) // the wall clock is stepped back
	replaceFiles(t, next, sf)
	clock.advance(11 * time.Second) // more than CheckEvery passes
	r := handshake(t, server.ServerConfig(), client.ClientConfig("localhost"))
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("handshake: %v / %v", r.serverErr, r.clientErr)
	}
	if cn := r.client.PeerCertificates[0].Subject.CommonName; cn != "a1-next" {
		t.Errorf("CheckEvery after a clock step back the server presents %q, want the rotated a1-next", cn)
	}
}

// TestReviewRoleOfName: the Common Name becomes a worker's id and an
// admin's raft id, but RoleOf takes any non-empty one; a certificate of
// another PKI (which docs/security.md invites) can name "w1\n" or a
// 10 kB id. RoleOf must hold the CN to CheckName, as Issue does.
func TestReviewRoleOfName(t *testing.T) {
	for _, cn := range []string{"w1\nadmin a1 joined", strings.Repeat("w", 10000), "../w1", " w1"} {
		c := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"worker"}}}
		if _, name, err := RoleOf(c); err == nil {
			t.Errorf("RoleOf accepted the name %.40q", name)
		}
	}
}
