package certs

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
)

// pair is a CA with an admin serving and an operator connecting.
type pair struct {
	dir            string
	server, client *Source
	serverFiles    Files
}

func newPair(t *testing.T) pair {
	t.Helper()
	dir := newCADir(t)
	sf := mustIssue(t, dir, RoleAdmin, "a1")
	cf := mustIssue(t, dir, RoleOperator, "alice")
	return pair{dir: dir, server: mustLoad(t, sf, Options{}), client: mustLoad(t, cf, Options{}), serverFiles: sf}
}

// TestHandshakeAccepted: a client with a certificate from the CA connects
// over TLS 1.3; the server reads its role and name from the verified
// chain, and the client verified the server for the name it dialed.
func TestHandshakeAccepted(t *testing.T) {
	p := newPair(t)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		r := handshake(t, p.server.ServerConfig(), p.client.ClientConfig(name, RoleAdmin))
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("dialing %s: server %v, client %v", name, r.serverErr, r.clientErr)
		}
		if r.role != RoleOperator || r.name != "alice" {
			t.Errorf("server saw %q %q, want operator alice", r.role, r.name)
		}
		if r.server.Version != tls.VersionTLS13 || r.server.DidResume {
			t.Errorf("version %x, resumed %v", r.server.Version, r.server.DidResume)
		}
		if role, cn, err := FromConnectionState(r.client); err != nil || role != RoleAdmin || cn != "a1" {
			t.Errorf("client saw server %q %q (%v), want admin a1", role, cn, err)
		}
	}
	if role, name, err := p.server.Identity(); err != nil || role != RoleAdmin || name != "a1" {
		t.Errorf("server Identity = %q, %q, %v", role, name, err)
	}
}

// TestHandshakeRefused: the server refuses a client with no certificate,
// one from another CA, an expired one, an older TLS version, and (when it
// asks for roles) another role; the client refuses a server from another
// CA, for another name, or of another role.
func TestHandshakeRefused(t *testing.T) {
	p := newPair(t)
	other := newCADir(t)
	foreign := mustIssue(t, other, RoleOperator, "mallory")
	expired := IssuedFiles(p.dir, "old")
	if _, err := issue(p.dir, RoleOperator, "old", nil, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	tls12 := p.client.ClientConfig("localhost")
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	foreignServer := mustLoad(t, mustIssue(t, other, RoleAdmin, "a9"), Options{})
	workerServer := mustLoad(t, mustIssue(t, p.dir, RoleWorker, "w1"), Options{})

	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		want           string // in the refusing side's error
		serverRefuses  bool
	}{
		{"no client certificate", p.server.ServerConfig(), rawClientConfig(t, expired.CA, nil), "client didn't provide a certificate", true},
		{"certificate from another CA", p.server.ServerConfig(), rawClientConfig(t, expired.CA, &foreign), "certificate signed by unknown authority", true},
		{"expired certificate", p.server.ServerConfig(), rawClientConfig(t, expired.CA, &expired), "expired", true},
		{"TLS 1.2", p.server.ServerConfig(), tls12, "unsupported versions", true},
		{"client of another role", p.server.ServerConfig(RoleAdmin), p.client.ClientConfig("localhost"), `client certificate "alice" has role operator, want admin`, true},
		{"server from another CA", foreignServer.ServerConfig(), p.client.ClientConfig("localhost"), "certificate signed by unknown authority", false},
		{"server for another name", p.server.ServerConfig(), p.client.ClientConfig("10.9.9.9"), "not 10.9.9.9", false},
		{"server of another role", p.server.ServerConfig(), p.client.ClientConfig("localhost", RoleWorker), `server certificate "a1" has role admin, want worker`, false},
		{"worker certificate serving", workerServer.ServerConfig(), p.client.ClientConfig("localhost", RoleAdmin), "not valid for any names", false},
		{"no server name", p.server.ServerConfig(), p.client.ClientConfig(""), "either ServerName or InsecureSkipVerify must be specified", false},
	} {
		r := handshake(t, tc.server, tc.client)
		if r.serverErr == nil || r.clientErr == nil {
			t.Errorf("%s: accepted (server %v, client %v)", tc.name, r.serverErr, r.clientErr)
			continue
		}
		if r.role != "" {
			t.Errorf("%s: the server read role %q", tc.name, r.role)
		}
		refuser := r.clientErr
		if tc.serverRefuses {
			refuser = r.serverErr
		}
		if !strings.Contains(refuser.Error(), tc.want) {
			t.Errorf("%s: refused with %v, want %q", tc.name, refuser, tc.want)
		}
	}
}

// TestGRPCPeerRole: over a real gRPC connection (grpc's TLS credentials
// around ServerConfig and ClientConfig, ALPN included) a handler reads the
// caller's role and name with FromContext.
func TestGRPCPeerRole(t *testing.T) {
	p := newPair(t)
	type who struct {
		role Role
		name string
		err  error
	}
	seen := make(chan who, 1)
	srv := grpc.NewServer(grpc.Creds(p.server.ServerCredentials()),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			r, n, err := FromContext(ctx)
			seen <- who{r, n, err}
			return h(ctx, req)
		}))
	healthgrpc.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(p.client.ClientCredentials(RoleAdmin)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := healthgrpc.NewHealthClient(conn).Check(ctx, &healthgrpc.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check over mutual TLS: %v", err)
	}
	if w := <-seen; w.err != nil || w.role != RoleOperator || w.name != "alice" {
		t.Errorf("FromContext in the handler = %q, %q, %v; want operator alice", w.role, w.name, w.err)
	}
}
