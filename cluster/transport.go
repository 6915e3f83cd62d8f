package cluster

import (
	"errors"
	"fmt"
	"net"
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
type streamLayer struct {
	advertise net.Addr
	listener  *net.TCPListener
	dialer    net.Dialer
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// newStreamLayer listens on bind and advertises advertise (bind if nil).
func newStreamLayer(bind string, advertise net.Addr) (*streamLayer, error) {
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
	s := &streamLayer{advertise: advertise, listener: tl}
	if !local.IP.IsUnspecified() {
		s.dialer.LocalAddr = &net.TCPAddr{IP: local.IP}
	}
	return s, nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := s.dialer
	d.Timeout = timeout
	return d.Dial("tcp", string(address))
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) { return s.listener.Accept() }

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	err := s.listener.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Addr implements net.Listener: the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
