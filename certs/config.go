package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
)

// ServerConfig returns the configuration of a listener: TLS 1.3 only; the
// client must present a certificate that the CA in use verifies (the pool
// is the Source's current one at each handshake, so a CA rotation applies
// to the next connection); the server presents the certificate in use,
// re-read when its files change. With roles, a client certificate naming
// another role (or none) is refused in the handshake; without, any role
// passes and the listener decides per call (FromContext,
// FromConnectionState).
//
// Session tickets are off: a resumed session would skip verifying the
// client against the current pool, so a CA removed from the file would
// still admit its clients. Our connections are long-lived (gRPC, raft
// pools); a full handshake per connection costs nothing that matters.
//
// For raft: tls.NewListener(ln, src.ServerConfig(certs.RoleAdmin)); for
// gRPC, ServerCredentials.
func (s *Source) ServerConfig(roles ...Role) *tls.Config {
	roles = slices.Clone(roles)
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			c := &tls.Config{
				MinVersion:             tls.VersionTLS13,
				SessionTicketsDisabled: true,
				Certificates:           []tls.Certificate{*m.cert},
				ClientAuth:             tls.RequireAndVerifyClientCert,
				ClientCAs:              m.pool,
			}
			if len(roles) > 0 {
				c.VerifyConnection = func(cs tls.ConnectionState) error {
					return checkRole("client", cs.VerifiedChains, roles)
				}
			}
			return c, nil
		},
	}
}

// ClientConfig returns the configuration of one connection to serverName
// (a DNS name or an IP address, which must be among the server
// certificate's SANs): TLS 1.3 only; it presents the certificate in use
// (re-read when its files change, also for a configuration kept) and
// verifies the server's certificate against the CA in use now. The server
// must hold one of roles, RoleAdmin when none is given (only admins serve
// in this system): a certificate of another role, or of none, is refused.
// Both sides' verified chains are in the connection state
// (FromConnectionState works on the client side too).
//
// The CA pool is the one in use when ClientConfig is called: make one per
// connection, as a dialer does (raft: tls.Client(conn,
// src.ClientConfig(host))); gRPC keeps its configuration for every
// reconnection, so use ClientCredentials there.
func (s *Source) ClientConfig(serverName string, roles ...Role) *tls.Config {
	return s.clientConfig(serverName, "", roles)
}

// clientConfig is ClientConfig; with peerName, the server's certificate
// must also be named peerName.
func (s *Source) clientConfig(serverName, peerName string, roles []Role) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		RootCAs:    s.current().pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.current().cert, nil
		},
	}
	if len(roles) == 0 {
		roles = []Role{RoleAdmin}
	} else {
		roles = slices.Clone(roles)
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkRole("server", cs.VerifiedChains, roles); err != nil {
			return err
		}
		if peerName != "" {
			if _, name, _ := RoleOf(cs.VerifiedChains[0][0]); name != peerName {
				return fmt.Errorf("server certificate is %q's, want %q's", name, peerName)
			}
		}
		return nil
	}
	return c
}

// ServerCredentials is ServerConfig as gRPC server credentials:
// grpc.NewServer(grpc.Creds(src.ServerCredentials())).
func (s *Source) ServerCredentials(roles ...Role) credentials.TransportCredentials {
	return credentials.NewTLS(s.ServerConfig(roles...))
}

// ClientCredentials returns gRPC transport credentials for dialing with
// ClientConfig: each connection, reconnections included, handshakes with a
// configuration made for it, so the CA in use at that moment verifies the
// server, for the host of the address dialed, and the server must hold one
// of roles, RoleAdmin when none is given (grpc.NewClient(addr,
// grpc.WithTransportCredentials(src.ClientCredentials()))).
func (s *Source) ClientCredentials(roles ...Role) credentials.TransportCredentials {
	return &clientCreds{s: s, roles: slices.Clone(roles)}
}

// ClientCredentialsFor is ClientCredentials accepting only a server whose
// certificate is also named name (its Common Name): a client told that the
// leader is the admin named name (a worker's redirect) must not take
// whichever admin answers at the address it was given for it.
func (s *Source) ClientCredentialsFor(name string, roles ...Role) credentials.TransportCredentials {
	return &clientCreds{s: s, roles: slices.Clone(roles), name: name}
}

// clientCreds makes grpc's TLS credentials afresh for every handshake.
type clientCreds struct {
	s     *Source
	roles []Role
	name  string // the server's certificate's name; "" for any
}

// ClientHandshake verifies the server for the host of authority (the
// address dialed, or grpc.WithAuthority's), as grpc's own TLS credentials
// do.
func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	return credentials.NewTLS(c.s.clientConfig(host, c.name, c.roles)).ClientHandshake(ctx, authority, conn)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("client credentials cannot accept connections (use ServerCredentials)")
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{s: c.s, roles: slices.Clone(c.roles), name: c.name}
}

// OverrideServerName is unused by gRPC (deprecated there): the name
// verified is the authority's host; grpc.WithAuthority sets it.
func (c *clientCreds) OverrideServerName(string) error {
	return errors.New("OverrideServerName is not supported: use grpc.WithAuthority")
}

// checkRole fails unless the verified chain's certificate names one of
// roles.
func checkRole(side string, chains [][]*x509.Certificate, roles []Role) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return fmt.Errorf("the %s presented no verified certificate", side)
	}
	role, name, err := RoleOf(chains[0][0])
	if err != nil {
		return fmt.Errorf("%s %w", side, err)
	}
	if !slices.Contains(roles, role) {
		want := make([]string, len(roles))
		for i, r := range roles {
			want[i] = string(r)
		}
		return fmt.Errorf("%s certificate %q has role %s, want %s", side, name, role, strings.Join(want, " or "))
	}
	return nil
}
