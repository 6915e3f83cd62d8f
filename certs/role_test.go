package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TestRoleOf: exactly one Organizational Unit naming a known role, and a
// Common Name; every other shape is an error that says which.
func TestRoleOf(t *testing.T) {
	cert := func(cn string, ous ...string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous}}
	}
	for _, r := range Roles {
		role, name, err := RoleOf(cert("n1", string(r)))
		if err != nil || role != r || name != "n1" {
			t.Errorf("RoleOf(OU=%s, CN=n1) = %q, %q, %v", r, role, name, err)
		}
	}
	for _, tc := range []struct {
		cert *x509.Certificate
		want string
	}{
		{nil, "no certificate"},
		{cert("w1"), `certificate "w1" names no role: its Subject has no Organizational Unit`},
		{cert("w1", "admin", "worker"), `names 2 Organizational Units (admin, worker); want exactly one role`},
		{cert("w1", "worker", "ops"), `names 2 Organizational Units`},
		{cert("w1", "root"), `unknown role "root"`},
		{cert("w1", "Admin"), `unknown role "Admin"`},
		{cert("", "admin"), `has no Common Name`},
		{cert(""), `"serial 7" names no role`},
	} {
		role, name, err := RoleOf(tc.cert)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("RoleOf(%v) = %q, %q, %v; want an error saying %q", tc.cert, role, name, err, tc.want)
		}
	}
}

func TestParseRole(t *testing.T) {
	if r, err := ParseRole("operator"); err != nil || r != RoleOperator {
		t.Errorf("ParseRole(operator) = %q, %v", r, err)
	}
	for _, s := range []string{"", "root", "ADMIN", " admin"} {
		if _, err := ParseRole(s); err == nil || !strings.Contains(err.Error(), "admin, worker, operator or reader") {
			t.Errorf("ParseRole(%q): %v, want an error listing the roles", s, err)
		}
	}
}

// TestFromContextRefuses: a call with no peer, over plaintext, or over a
// TLS connection without a verified chain has no role.
func TestFromContextRefuses(t *testing.T) {
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{
		{context.Background(), "no peer information"},
		{peer.NewContext(context.Background(), &peer.Peer{}), "did not come over TLS"},
		{peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{HandshakeComplete: true,
			// Presented but not verified: never trusted.
			PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "a1", OrganizationalUnit: []string{"admin"}}}}}}}),
			"no verified certificate"},
		{peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}}), "handshake has not completed"},
	} {
		if role, name, err := FromContext(tc.ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromContext = %q, %q, %v; want an error saying %q", role, name, err, tc.want)
		}
	}
}
