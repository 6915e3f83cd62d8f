package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestStreamLayerDialsFromBindIP: raft connections leave from the IP the
// node listens on, not from whatever source the kernel would pick (on
// Linux every 127/8 address is local, so two loopback IPs stand in for two
// interfaces), and the listener reports the advertised address.
func TestStreamLayerDialsFromBindIP(t *testing.T) {
	a, err := newStreamLayer("127.0.0.21:0", nil)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.21 here: %v", err)
	}
	defer a.Close()
	adv := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7999}
	b, err := newStreamLayer("127.0.0.22:0", adv)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.22 here: %v", err)
	}
	defer b.Close()
	b.startRaft()
	if b.Addr().String() != adv.String() {
		t.Fatalf("b advertises %s, want %s", b.Addr(), adv)
	}
	if got := a.Addr().(*net.TCPAddr).IP.String(); got != "127.0.0.21" {
		t.Fatalf("a advertises %s, want its bind IP", a.Addr())
	}
	accepted := acceptOne(b)
	conn, err := a.Dial(raft.ServerAddress(b.listener.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	// The stream layer peeks at a connection's first byte before raft gets it.
	if _, err := conn.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	var in net.Conn
	select {
	case in = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("b accepted nothing")
	}
	if in == nil {
		t.Fatal("b's accept failed")
	}
	defer in.Close()
	if got := in.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.21" {
		t.Fatalf("connection arrived from %s, want a's bind IP 127.0.0.21", in.RemoteAddr())
	}
	if _, err := newStreamLayer("0.0.0.0:0", nil); err == nil {
		t.Fatal("a wildcard bind with nothing to advertise was accepted")
	}
}

// TestStreamLayerCutsRaftConns: cutRaftConns closes every connection handed
// to raft, dialed and accepted, so a raft goroutine blocked reading from a
// peer that stopped answering (or writing a snapshot to one that stopped
// reading) returns and raft's Shutdown can finish; a later dial fails.
// Seen in the fault harness: an admin restarted for a rolling upgrade did
// not exit within 30 s, raft's Shutdown waiting for its goroutines.
func TestStreamLayerCutsRaftConns(t *testing.T) {
	a, err := newStreamLayer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := newStreamLayer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.startRaft()
	accepted := acceptOne(b)
	out, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer out.Close()
	if _, err := out.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	in := <-accepted
	if in == nil {
		t.Fatal("b's accept failed")
	}
	defer in.Close()
	if _, err := in.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read the first byte: %v", err)
	}
	// Both ends blocked reading from a peer that sends nothing.
	reads := make(chan error, 2)
	for _, c := range []net.Conn{out, in} {
		go func() {
			_, err := c.Read(make([]byte, 1))
			reads <- err
		}()
	}
	a.cutRaftConns()
	b.cutRaftConns()
	for range 2 {
		select {
		case err := <-reads:
			if err == nil {
				t.Fatal("a read on a cut connection returned data")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a read on a cut connection is still blocked")
		}
	}
	if c, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a dial after the cut succeeded")
	}
	if n := len(a.raftConns) + len(b.raftConns); n != 0 {
		t.Errorf("%d raft connections still tracked after the cut", n)
	}
}

// acceptOne accepts one raft connection on s in the background: the
// channel yields it, or closes empty if the accept fails.
func acceptOne(s *streamLayer) <-chan net.Conn {
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	return accepted
}
