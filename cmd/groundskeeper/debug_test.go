package main

import (
	"errors"
	"strings"
	"testing"
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
