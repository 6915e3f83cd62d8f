package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer with one difference: it dials its
// peers from the IP it listens on. hashicorp/raft's own TCPStreamLayer lets
// the kernel pick the source address, which on a multi-homed host (several
// NICs, or several loopback addresses) is the address of whichever route
// wins, not the one the operator gave in --raft-addr. Dialing from the bind
// IP keeps raft traffic on the interface it was configured for, so firewall
// rules and network policies written per address apply to it (and a test
// can tell its admins apart by source address). A wildcard bind address
// (0.0.0.0, ::) keeps the kernel's choice.
//
// It also runs its own accept loop, so the raft port answers groundskeeper's
// probes (probe.go) before raft runs: each connection's first byte is
// peeked (in a goroutine of its own, so a slow client never holds up the
// others); a probe is answered here, anything else goes to raft through
// Accept once raft runs and is closed before that.
type streamLayer struct {
	advertise net.Addr
	listener  *net.TCPListener
	dialer    net.Dialer

	// probeInfo answers probes; nil until set (probes are closed unanswered).
	probeInfo atomic.Pointer[func() ProbeInfo]
	// raftOn: connections that are not probes go to raft (else closed).
	raftOn    atomic.Bool
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	// routing holds the connections being peeked or answered, closed by
	// Close so it need not wait out their deadlines.
	mu      sync.Mutex
	routing map[net.Conn]struct{}
	// raftConns holds every connection handed to raft (accepted or
	// dialed) and not closed yet; cut closes them all, and every later one.
	raftConns map[*raftConn]struct{}
	cut       bool

	// tls, when set, makes every connection mutual TLS (transport_tls.go);
	// nil is plaintext. Set before the first connection is accepted.
	tls *transportTLS
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// newStreamLayer listens on bind and advertises advertise (bind if nil).
// With t, every connection is mutual TLS (nil: plaintext).
func newStreamLayer(bind string, advertise net.Addr, t ...*transportTLS) (*streamLayer, error) {
	lis, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	tl := lis.(*net.TCPListener)
	local := tl.Addr().(*net.TCPAddr)
	if advertise == nil {
		advertise = local
	}
	if a, ok := advertise.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		tl.Close()
		return nil, fmt.Errorf("raft address %s is not advertisable (give a concrete IP)", advertise)
	}
	s := &streamLayer{advertise: advertise, listener: tl, conns: make(chan net.Conn), closed: make(chan struct{}),
		routing: map[net.Conn]struct{}{}, raftConns: map[*raftConn]struct{}{}}
	if len(t) > 0 {
		s.tls = t[0]
	}
	if !local.IP.IsUnspecified() {
		s.dialer.LocalAddr = &net.TCPAddr{IP: local.IP}
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// setProbeInfo makes the stream layer answer probes with f's result.
func (s *streamLayer) setProbeInfo(f func() ProbeInfo) { s.probeInfo.Store(&f) }

// startRaft hands every later non-probe connection to raft's Accept.
func (s *streamLayer) startRaft() { s.raftOn.Store(true) }

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	delay := time.Duration(0)
	for {
		c, err := s.listener.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error (out of file descriptors): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-s.closed:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.routing[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.route(c)
			s.mu.Lock()
			delete(s.routing, c)
			s.mu.Unlock()
		}()
	}
}

// route peeks at c's first byte and answers a probe or hands c to raft.
func (s *streamLayer) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
	raw, peerName := c, ""
	if s.tls != nil {
		tc, name, err := s.tls.accept(c)
		if err != nil {
			s.tls.refused(c, "TLS handshake", err)
			c.Close()
			return
		}
		c, peerName = tc, name
	}
	r := bufio.NewReaderSize(c, 16)
	first, err := r.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	if first[0] == probeMagic {
		_, _ = r.Discard(1)
		if f := s.probeInfo.Load(); f != nil {
			serveProbe(c, r, *f)
		} else {
			c.Close()
		}
		return
	}
	if !s.raftOn.Load() {
		c.Close()
		return
	}
	var pc net.Conn = &peekedConn{Conn: c, r: r}
	if s.tls != nil {
		pc = s.tls.track(pc, raw, c.(*tls.Conn), peerName)
		if !s.tls.admits(peerName) {
			s.tls.refused(c, "not a member", fmt.Errorf("admin %q is not in the raft configuration (nor in --peers before there is one)", peerName))
			pc.Close()
			return
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	rc, ok := s.forRaft(pc)
	if !ok {
		return
	}
	select {
	case s.conns <- rc:
	case <-s.closed:
		rc.Close()
	}
}

// raftConn is a connection handed to raft, tracked until it is closed.
type raftConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *raftConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.raftConns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// forRaft tracks c as a raft connection; after cutRaftConns it closes c
// and reports false.
func (s *streamLayer) forRaft(c net.Conn) (net.Conn, bool) {
	rc := &raftConn{Conn: c, s: s}
	s.mu.Lock()
	cut := s.cut
	if !cut {
		s.raftConns[rc] = struct{}{}
	}
	s.mu.Unlock()
	if cut {
		c.Close()
		return nil, false
	}
	return rc, true
}

// cutRaftConns closes every raft connection, and every one accepted or
// dialed later. For shutdown: raft's goroutines block on a peer that
// stopped reading or answering (frozen, or behind a network that drops
// packets) up to the transport's timeout, which for an InstallSnapshot
// grows with the snapshot's size (10 s per 256 KiB: minutes), and raft's
// Shutdown waits for them. Raft sends nothing while it shuts down.
func (s *streamLayer) cutRaftConns() {
	s.mu.Lock()
	s.cut = true
	conns := make([]*raftConn, 0, len(s.raftConns))
	for c := range s.raftConns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// watchMembers, with TLS, cuts the raft connections of admins that leave
// r's configuration (transportTLS.watch) until the stream layer closes.
func (s *streamLayer) watchMembers(r *raft.Raft) {
	if s.tls == nil {
		return
	}
	s.tls.raft.Store(r)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.tls.watch(r, s.closed)
	}()
}

// recheckMembers, with TLS, closes now the raft connections of admins no
// longer in the configuration.
func (s *streamLayer) recheckMembers() {
	if s.tls != nil {
		s.tls.recheck()
	}
}

// peekedConn reads through the buffer that holds the peeked byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := s.dialer
	d.Timeout = timeout
	var c net.Conn
	var err error
	if s.tls == nil {
		c, err = d.Dial("tcp", string(address))
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c, err = s.dialTLS(ctx, &d, string(address))
		cancel()
	}
	if err != nil {
		return nil, err
	}
	rc, ok := s.forRaft(c)
	if !ok {
		return nil, fmt.Errorf("dial %s: %w", address, net.ErrClosed)
	}
	return rc, nil
}

// dialTLS dials addr and handshakes TLS as the client, within ctx.
func (s *streamLayer) dialTLS(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, err := s.tls.dial(ctx, c, addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// Accept implements net.Listener: the next connection for raft.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. It waits for the connections being routed.
func (s *streamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closed)
		for c := range s.routing {
			c.Close()
		}
		s.mu.Unlock()
		err = s.listener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	s.wg.Wait()
	return err
}

// Addr implements net.Listener: the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
