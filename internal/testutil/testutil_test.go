package testutil

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFreeAddrBelowEphemeralRange: addresses are distinct, listenable and
// below the ephemeral range, which the integration harness's own helper
// handed out before (a restarting node could lose its port to an outgoing
// connection).
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, p, _ := net.SplitHostPort(addr)
		if port, _ := strconv.Atoi(p); port >= ephemeralLow() || port < 10000 {
			t.Fatalf("port %d is outside [10000, %d)", port, ephemeralLow())
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
	}
	p := FreePortPair(t, 10000)
	if p < 10000 || p+10000 >= ephemeralLow() {
		t.Fatalf("pair %d, %d is outside [10000, %d)", p, p+10000, ephemeralLow())
	}
	ports, err := FreePorts(3)
	if err != nil || len(ports) != 3 {
		t.Fatalf("FreePorts(3) = %v, %v", ports, err)
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

// TestEventuallyReportsLastReason: a condition that never holds fails the
// test with what was awaited and the last reason it gave; one that comes
// to hold returns.
func TestEventuallyReportsLastReason(t *testing.T) {
	r := &recorder{TB: t}
	n := 0
	// Fatalf on the recorder does not stop the loop: stop it by holding
	// once the failure has been recorded.
	Eventually(r, 30*time.Millisecond, "the answer", func() (bool, string) {
		n++
		return r.failed != "", fmt.Sprintf("tried %d times", n)
	})
	if !strings.Contains(r.failed, "waiting for the answer; last check: tried ") {
		t.Fatalf("failure %q does not name the wait and the last reason", r.failed)
	}
	calls := 0
	took := Poll(t, time.Second, time.Millisecond, "three calls", func() (bool, string) { calls++; return calls == 3, "" })
	if calls != 3 || took <= 0 {
		t.Fatalf("Poll returned after %d calls in %s", calls, took)
	}
	EventuallyTrue(t, time.Second, "true", func() bool { return true })
}
