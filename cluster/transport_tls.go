package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
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
// (members). Probes are answered to any admin: a node being added (`ctl
// peers add`) probes the members before their configuration lists it, and
// a probe only reads.
//
// Raft pools its connections, so a check at accept alone would let a member
// removed later keep reaching raft over a connection it opened before: each
// connection handed to raft is remembered with its peer's name (track), and
// recheck closes those whose name is no longer a member. It runs when this
// node changes the configuration (Node.RemoveServer), on raft's peer and
// leader observations, and every memberRecheckEvery (a follower observes no
// configuration change). Likewise every pooled connection, accepted or
// dialed, is closed when its peer's certificate expires or the CA file in
// use stops trusting it (watchPeer).
type transportTLS struct {
	src    *certs.Source
	logger hclog.Logger
	// peers are the --peers ids, admitted only while raft has no
	// configuration (bootstrapping, or waiting to be added).
	peers []string
	// raft is the running raft (nil before it starts): its latest
	// configuration lists the members admitted.
	raft atomic.Pointer[raft.Raft]

	mu sync.Mutex
	// routed are the connections handed to raft, by peer name.
	routed map[*memberConn]string
}

// memberRecheckEvery is how often the raft port closes the connections of
// peers no longer in the configuration, at the latest.
const memberRecheckEvery = time.Second

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

// track remembers c, a connection about to be handed to raft from the
// admin named name, until it is closed; raw is the TCP connection under
// its TLS, closed to cut it, and tc the TLS connection, whose peer
// certificate is watched (watchPeer) for as long as c is open. Track
// before checking admits, so a recheck between the two cannot miss it.
func (t *transportTLS) track(c, raw net.Conn, tc *tls.Conn, name string) *memberConn {
	mc := &memberConn{Conn: c, raw: raw, t: t}
	mc.stopWatch = t.watchPeer(tc, raw, "admin "+name)
	t.mu.Lock()
	if t.routed == nil {
		t.routed = map[*memberConn]string{}
	}
	t.routed[mc] = name
	t.mu.Unlock()
	return mc
}

// recheck closes the raft connections of admins that are no longer
// members. If the configuration cannot be read (raft stopping), it keeps
// them: the transport's own close ends them then.
func (t *transportTLS) recheck() {
	m, err := t.members()
	if err != nil {
		return
	}
	var cut []*memberConn
	t.mu.Lock()
	for mc, name := range t.routed {
		if !m[name] {
			cut = append(cut, mc)
			delete(t.routed, mc)
			t.logger.Warn("closed a raft connection of an admin no longer in the configuration", "admin", name, "remote", mc.raw.RemoteAddr().String())
		}
	}
	t.mu.Unlock()
	for _, mc := range cut {
		// The TCP connection, not the TLS one: a TLS close would wait to
		// send its alert behind a write raft may have blocked.
		_ = mc.raw.Close()
	}
}

// watch rechecks the routed connections on raft's peer and leadership
// observations and every memberRecheckEvery until stop is closed.
func (t *transportTLS) watch(r *raft.Raft, stop <-chan struct{}) {
	obs := make(chan raft.Observation, 4)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.PeerObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(o)
	defer r.DeregisterObserver(o)
	tick := time.NewTicker(memberRecheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-obs:
		case <-tick.C:
		}
		t.recheck()
	}
}

// memberConn is a raft connection tracked by its peer's name.
type memberConn struct {
	net.Conn
	raw       net.Conn
	t         *transportTLS
	stopWatch func()
	once      sync.Once
}

// Close forgets the connection, stops watching its peer's certificate and
// closes it.
func (c *memberConn) Close() error {
	c.once.Do(func() {
		c.stopWatch()
		c.t.mu.Lock()
		delete(c.t.routed, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// watchPeer watches the certificate that tc's peer (who, for the log)
// presented at the handshake, for as long as the connection is open (the
// caller stops it at close): raft pools connections, so one lives as long
// as its peer keeps using it, and a handshake's verification would
// otherwise hold past the certificate's expiry and past its CA's
// withdrawal from the CA file. When the certificate fails
// certs.Source.CheckPeer the TCP connection raw under tc is closed.
func (t *transportTLS) watchPeer(tc *tls.Conn, raw net.Conn, who string) (stop func()) {
	chain, err := certs.PeerChain(tc.ConnectionState())
	if err != nil { // not after a completed handshake; cut at once
		chain = nil
	}
	return t.src.WatchPeer(chain, func(err error) {
		t.logger.Warn("closed a raft connection whose peer certificate is no longer good", "peer", who, "remote", raw.RemoteAddr().String(), "error", err)
		// The TCP connection, not the TLS one: a TLS close would wait to
		// send its alert behind a write raft may have blocked.
		_ = raw.Close()
	})
}

// watchedConn is a raft connection this node dialed, whose server's
// certificate is watched until it is closed.
type watchedConn struct {
	net.Conn
	stop func()
}

func (c *watchedConn) Close() error {
	c.stop()
	return c.Conn.Close()
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
// the server is an admin of the CA, within timeout. The server's
// certificate is watched as long as the connection is open (watchPeer).
func (t *transportTLS) dial(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(c, t.src.ClientConfig(host, certs.RoleAdmin))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return &watchedConn{Conn: tc, stop: t.watchPeer(tc, c, "server "+addr)}, nil
}

// refused logs a connection the raft port turned away.
func (t *transportTLS) refused(c net.Conn, why string, err error) {
	t.logger.Warn("refused a raft port connection", "remote", c.RemoteAddr().String(), "reason", why, "error", err)
}
