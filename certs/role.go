package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what a certificate's holder is: the Subject Organizational Unit
// of its certificate.
type Role string

// The roles. What each may do is decided by the listener that asks.
const (
	// RoleAdmin is an admin node: raft and the internal service. Its name
	// is its raft id.
	RoleAdmin Role = "admin"
	// RoleWorker is a maintenance worker: the worker session, under the
	// worker id that is its name.
	RoleWorker Role = "worker"
	// RoleOperator reads and changes the cluster (ctl submit, cancel,
	// peers, snapshots).
	RoleOperator Role = "operator"
	// RoleReader only reads (status, tasks, workers, the oracle, watch).
	RoleReader Role = "reader"
)

// Roles lists every role, in order of decreasing power.
var Roles = []Role{RoleAdmin, RoleWorker, RoleOperator, RoleReader}

// rolesText is the roles for messages: "admin, worker, operator or reader".
const rolesText = "admin, worker, operator or reader"

// ParseRole returns the role named s (exactly, in lower case).
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", invalidError(fmt.Sprintf("unknown role %q (want %s)", s, rolesText))
}

// RoleOf returns the role and the name a certificate names: its Subject
// must hold exactly one Organizational Unit, a known role, and a Common
// Name that CheckName accepts (as Issue requires). It does not verify the certificate; pass a verified one.
func RoleOf(cert *x509.Certificate) (Role, string, error) {
	if cert == nil {
		return "", "", errors.New("no certificate")
	}
	subject := cert.Subject.CommonName
	if subject == "" {
		subject = "serial " + cert.SerialNumber.String()
	}
	ous := cert.Subject.OrganizationalUnit
	switch {
	case len(ous) == 0:
		return "", "", fmt.Errorf("certificate %q names no role: its Subject has no Organizational Unit (want one of %s)", subject, rolesText)
	case len(ous) > 1:
		return "", "", fmt.Errorf("certificate %q names %d Organizational Units (%s); want exactly one role", subject, len(ous), strings.Join(ous, ", "))
	}
	role, err := ParseRole(ous[0])
	if err != nil {
		return "", "", fmt.Errorf("certificate %q has an unknown role %q in its Organizational Unit (want %s)", subject, ous[0], rolesText)
	}
	cn := cert.Subject.CommonName
	if cn == "" {
		return "", "", fmt.Errorf("certificate with role %s (%s) has no Common Name, which must be its holder's name", role, subject)
	}
	// The name becomes a worker id or a raft id and goes into logs: hold
	// another PKI's certificates to the names Issue accepts.
	if len(cn) > MaxNameLen {
		return "", "", fmt.Errorf("certificate with role %s has a Common Name of %d characters (%.20q...); a name is at most %d", role, len(cn), cn, MaxNameLen)
	}
	if err := CheckName(cn); err != nil {
		return "", "", fmt.Errorf("certificate with role %s has a Common Name that is not a name: %w", role, err)
	}
	return role, cn, nil
}

// FromConnectionState returns the role and name of a connection's peer
// from its verified certificate chain (either side of a connection made
// with ServerConfig and ClientConfig, whose handshakes verify the peer
// against the CA). A connection without a verified chain is an error,
// never a role: a certificate merely presented is not trusted.
func FromConnectionState(cs tls.ConnectionState) (Role, string, error) {
	if !cs.HandshakeComplete {
		return "", "", errors.New("the TLS handshake has not completed")
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", "", errors.New("the peer presented no verified certificate")
	}
	return RoleOf(cs.VerifiedChains[0][0])
}

// FromConn is FromConnectionState of a *tls.Conn, handshaking first if it
// has not yet (raft's stream layer accepts *tls.Conn).
func FromConn(ctx context.Context, c *tls.Conn) (Role, string, error) {
	if err := c.HandshakeContext(ctx); err != nil {
		return "", "", fmt.Errorf("TLS handshake with %s: %w", c.RemoteAddr(), err)
	}
	return FromConnectionState(c.ConnectionState())
}

// FromContext returns the role and name of the caller of a gRPC call from
// its verified client certificate. A call over a plaintext connection, or
// one whose client presented no verified certificate, is an error.
func FromContext(ctx context.Context) (Role, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", errors.New("the call has no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", "", errors.New("the call did not come over TLS")
	}
	return FromConnectionState(info.State)
}
