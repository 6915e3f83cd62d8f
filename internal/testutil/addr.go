package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

var (
	mu   sync.Mutex
	used = map[string]bool{}
)

// FreeAddr returns a loopback address whose port was free a moment ago,
// never the same one twice in this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := FreeAddrOn("127.0.0.1")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr
}

// FreeAddrOn returns "ip:port" for a port on ip that was free a moment
// ago, never the same one twice in this process. It picks below the
// kernel's ephemeral range, so a port released by a stopped node is not
// handed to some outgoing connection (which takes its local port from that
// range) before the node restarts on it.
func FreeAddrOn(ip string) (string, error) {
	lo, hi := 10000, ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	var lastErr error
	for try := 0; try < 1000 && hi-lo > 1000; try++ {
		addr := net.JoinHostPort(ip, strconv.Itoa(lo+rand.IntN(hi-lo)))
		if used[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			lastErr = err
			continue
		}
		l.Close()
		used[addr] = true
		return addr, nil
	}
	// No room below the ephemeral range (or nothing there would do): let
	// the kernel choose.
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		if lastErr != nil {
			return "", fmt.Errorf("listen on %s: %w (below the ephemeral range: %v)", ip, err, lastErr)
		}
		return "", fmt.Errorf("listen on %s: %w", ip, err)
	}
	defer l.Close()
	addr := l.Addr().String()
	used[addr] = true
	return addr, nil
}

// FreePorts returns n distinct loopback ports chosen as FreeAddr chooses,
// for tools that start processes of their own.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		addr, err := FreeAddrOn("127.0.0.1")
		if err != nil {
			return nil, err
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("port of %s: %w", addr, err)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// FreePortPair returns a loopback port p such that p and p+offset were both
// free a moment ago and never handed out before in this process, both below
// the ephemeral range when there is room: for servers that derive a second
// port from the first (SeaweedFS listens for gRPC on port+10000).
func FreePortPair(t testing.TB, offset int) int {
	t.Helper()
	lo, hi := 10000, ephemeralLow()-offset
	mu.Lock()
	defer mu.Unlock()
	for try := 0; try < 1000; try++ {
		var p int
		if hi-lo > 1000 {
			p = lo + rand.IntN(hi-lo)
		} else if p = kernelPort(); p == 0 {
			continue
		}
		a, b := net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), net.JoinHostPort("127.0.0.1", strconv.Itoa(p+offset))
		if p+offset > 65535 || used[a] || used[b] || !listenable(a) || !listenable(b) {
			continue
		}
		used[a], used[b] = true, true
		return p
	}
	t.Fatalf("could not find a free port p with p+%d free too", offset)
	return 0
}

// kernelPort is a port the kernel chose as free, or 0.
func kernelPort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func listenable(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
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
