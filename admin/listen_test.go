package admin

import (
	"context"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.0.0.13:7001": true, "[::1]:9": true, "localhost:9": true,
		":9": false, "0.0.0.0:9": false, "[::]:9": false, "10.0.0.1:9": false, "example.com:9": false, "junk": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestStartRefusesPlaintextBeyondLoopback: without TLS or Insecure, Start
// binds nothing on a non-loopback address.
func TestStartRefusesPlaintextBeyondLoopback(t *testing.T) {
	_, err := Start(context.Background(), Config{ID: "a1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "--grpc-addr 0.0.0.0:0 is not a loopback address") {
		t.Fatalf("Start = %v, want a refusal of the wildcard --grpc-addr", err)
	}
}
