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
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := b.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
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
