package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// transportTLS is the raft port's mutual TLS: every accepted connection
// handshakes (client certificate from the CA, role admin) before its first
// byte is peeked, so probes and raft alike run inside TLS, and a raft
// connection is handed to raft only when the certificate's name is a member
// (members). Probes are answered to any
// admin: a node being added (`ctl peers add`) probes the members before
// their configuration lists it, and a probe only reads.
type transportTLS struct {
	src    *certs.Source
	logger hclog.Logger
	// peers are the --peers ids, admitted only while raft has no
	// configuration (bootstrapping, or waiting to be added).
	peers []string
	// raft is the running raft (nil before it starts): its latest
	// configuration lists the members admitted.
	raft atomic.Pointer[raft.Raft]
}

// members returns the ids admitted to raft: those of the latest raft
// configuration, or --peers while raft has none yet. --peers is only what
// the node was started with: once the configuration exists, a member
// removed from it must not stay admitted because it is still listed there.
func (t *transportTLS) members() (map[string]bool, error) {
	out := map[string]bool{}
	if r := t.raft.Load(); r != nil {
		f := r.GetConfiguration()
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("read the raft configuration: %w", err)
		}
		for _, s := range f.Configuration().Servers {
			out[string(s.ID)] = true
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	for _, p := range t.peers {
		out[p] = true
	}
	return out, nil
}

// admits reports whether the admin named id may speak raft to this node.
func (t *transportTLS) admits(id string) bool {
	m, err := t.members()
	return err == nil && m[id]
}

// accept handshakes as the server on c and returns the TLS connection and
// the peer admin's name; the caller closes c on error.
func (t *transportTLS) accept(c net.Conn) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	tc := tls.Server(c, t.src.ServerConfig(certs.RoleAdmin))
	_, name, err := certs.FromConn(ctx, tc)
	if err != nil {
		return nil, "", err
	}
	// Writes are raft's to bound from here; the read deadline stays until
	// the first byte is peeked.
	_ = c.SetWriteDeadline(time.Time{})
	return tc, name, nil
}

// dial wraps a connection this node opened to addr in TLS, verifying that
// the server is an admin of the CA, within timeout.
func (t *transportTLS) dial(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(c, t.src.ClientConfig(host, certs.RoleAdmin))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// refused logs a connection the raft port turned away.
func (t *transportTLS) refused(c net.Conn, why string, err error) {
	t.logger.Warn("refused a raft port connection", "remote", c.RemoteAddr().String(), "reason", why, "error", err)
}
