// Package testaddr hands tests loopback addresses to listen on. It is for
// tests only; nothing in the product imports it.
package testaddr

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

var (
	mu   sync.Mutex
	used = map[int]bool{}
)

// Free returns a loopback address whose port was free a moment ago, never
// the same one twice in this test binary. It picks below the kernel's
// ephemeral range, so a port released by a stopped node is not handed to
// some outgoing connection before the node restarts on it.
func Free(t testing.TB) string {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	for try := 0; try < 1000 && hi-lo > 1000; try++ {
		p := lo + rand.IntN(hi-lo)
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		used[p] = true
		return l.Addr().String()
	}
	// No room below the ephemeral range: let the kernel choose.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow is the first port the kernel hands out for port 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 0 {
			return lo
		}
	}
	return 32768
}
