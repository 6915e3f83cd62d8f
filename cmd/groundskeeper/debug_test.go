package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDebugAddrIsLoopbackOnly: the profiler, which serves no TLS, is
// refused on an address other hosts can reach, in one sentence naming the
// flag, before anything starts.
func TestDebugAddrIsLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:6060", "[::]:6060", "10.1.2.3:6060", "example.com:6060"} {
		dir := t.TempDir()
		var ue *usageError
		err := runAdmin([]string{"--id", "a1", "--data-dir", dir, "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2",
			"--peers", "a1=127.0.0.1:1", "--debug-addr", addr})
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--debug-addr") || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--debug-addr %s: %v; want a usage error saying it must be a loopback address", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:6060", "127.0.0.5:6060", "[::1]:6060", "localhost:6060"} {
		if err := loopbackOnly("--debug-addr", addr); err != nil {
			t.Errorf("--debug-addr %s refused: %v", addr, err)
		}
	}
}

// TestDebugServerTimeouts: the profiler's server bounds every phase of a
// connection (issue 11: a client that sends nothing, or reads nothing,
// does not hold it open), and its write timeout still fits pprof's
// longest default request, a 60 s profile or trace.
func TestDebugServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := debugServer(http.NewServeMux())
	for name, d := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		if d <= 0 || d > 2*time.Minute {
			t.Errorf("debug server %s = %v; want a bound above 0 and at most 2m", name, d)
		}
	}
	if srv.WriteTimeout <= 60*time.Second {
		t.Errorf("debug server WriteTimeout = %v; pprof refuses a 60 s profile unless the write timeout is longer", srv.WriteTimeout)
	}
}
