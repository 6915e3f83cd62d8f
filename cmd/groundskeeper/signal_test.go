package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// TestAdminSignalDuringStartStops: a SIGTERM that arrives after the node
// decided how to start (here: the moment it runs, standing for NewRaft or
// the gRPC setup) stops it; it used to be consumed by the start's signal
// context and the admin kept running.
func TestAdminSignalDuringStartStops(t *testing.T) {
	raftAddr, grpcAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	afterStartHook = func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	}
	defer func() { afterStartHook = nil }()
	done := make(chan error, 1)
	go func() {
		done <- runAdmin([]string{"--id", "a1", "--data-dir", t.TempDir(), "--raft-addr", raftAddr, "--grpc-addr", grpcAddr,
			"--peers", "a1=" + raftAddr, "--bootstrap", "--log-level", "error"})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("admin stopped by SIGTERM returned %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		// The admin listens for signals again by now: stop it.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		<-done
		t.Fatal("a SIGTERM while the admin started was lost: it kept running")
	}
}
