package seaweed_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestCallGuardStopsCallsBeforeTheyLeave: with a call guard that refuses,
// neither a unary nor a streaming volume-server call reaches the server
// (the simulator's operation log stays empty), even on a context detached
// from the guarded one; with a guard that allows, they run.
func TestCallGuardStopsCallsBeforeTheyLeave(t *testing.T) {
	t.Parallel()
	c := simtest.Start(t, sim.Config{Servers: 1})
	vid := simtest.Volume(t, c, sim.VolumeSpec{Size: 1 << 20, FileCount: 10, DeleteCount: 5, DeletedBytes: 1 << 19})
	server := c.Server(0).Address().String()
	vc := simtest.VolumeClient(t)

	allowed := true
	ctx := seaweed.WithCallGuard(context.Background(), func() (time.Time, error) {
		if allowed {
			return time.Time{}, nil
		}
		return time.Time{}, errors.New("lease lost")
	})
	allowed = false
	detachedCtx := context.WithoutCancel(ctx)
	if err := vc.VolumeMarkReadonly(detachedCtx, server, vid, false); status.Code(err) != codes.Aborted || !seaweed.GuardRefused(fmt.Errorf("mark: %w", err)) {
		t.Fatalf("unary call under a refusing guard: %v, want Aborted and GuardRefused", err)
	}
	if err := vc.VacuumVolumeCompact(ctx, server, vid, nil); status.Code(err) != codes.Aborted {
		t.Fatalf("streaming call under a refusing guard: %v, want Aborted", err)
	}
	if ops := c.OpLog(); len(ops) != 0 {
		t.Fatalf("refused calls reached the server: %v", ops)
	}
	allowed = true
	if err := vc.VolumeMarkReadonly(ctx, server, vid, false); err != nil {
		t.Fatalf("unary call under an allowing guard: %v", err)
	}
	if err := vc.VacuumVolumeCompact(ctx, server, vid, nil); err != nil {
		t.Fatalf("streaming call under an allowing guard: %v", err)
	}
	if ops := c.OpLog(); len(ops) != 2 {
		t.Fatalf("op log has %d operations, want 2: %v", len(ops), ops)
	}
}

// TestCallGuardCancelsARunningCall: a call whose permission lapses while it
// runs is cancelled (and the server's handler stops with it), with the
// guard's error; one whose permission is renewed meanwhile runs to its end.
func TestCallGuardCancelsARunningCall(t *testing.T) {
	t.Parallel()
	c := simtest.Start(t, sim.Config{Servers: 1, CompactDuration: 600 * time.Millisecond})
	vid := simtest.Volume(t, c, sim.VolumeSpec{Size: 1 << 20, FileCount: 10, DeleteCount: 5, DeletedBytes: 1 << 19})
	server := c.Server(0).Address().String()
	vc := simtest.VolumeClient(t)

	// Renewed: every check extends the permission by 100 ms.
	var checks atomic.Int32
	renewed := seaweed.WithCallGuard(context.Background(), func() (time.Time, error) {
		checks.Add(1)
		return time.Now().Add(100 * time.Millisecond), nil
	})
	if err := vc.VacuumVolumeCompact(renewed, server, vid, nil); err != nil {
		t.Fatalf("compaction under a renewed permission: %v", err)
	}
	if n := checks.Load(); n < 3 {
		t.Fatalf("the guard was checked %d times during a 600 ms call with 100 ms permissions", n)
	}
	if err := vc.VacuumVolumeCleanup(context.Background(), server, vid); err != nil {
		t.Fatal(err)
	}

	// Lapsing: allowed for 150 ms, then refused.
	deadline := time.Now().Add(150 * time.Millisecond)
	lapsing := seaweed.WithCallGuard(context.Background(), func() (time.Time, error) {
		if time.Now().Before(deadline) {
			return deadline, nil
		}
		return time.Time{}, errors.New("lease lost")
	})
	began := time.Now()
	err := vc.VacuumVolumeCompact(lapsing, server, vid, nil)
	if status.Code(err) != codes.Aborted || !seaweed.GuardRefused(err) {
		t.Fatalf("compaction whose permission lapsed: %v, want Aborted and GuardRefused", err)
	}
	if d := time.Since(began); d > 450*time.Millisecond {
		t.Fatalf("the call ran %s, past its permission (150 ms) by far", d)
	}
	// The server records the cancelled compaction once its handler returns.
	var compact *sim.Op
	for wait := time.Now().Add(5 * time.Second); compact == nil && time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		for _, o := range c.OpLog() {
			if o.Method == "VacuumVolumeCompact" && o.Start.After(began) {
				compact = &o
			}
		}
	}
	if compact == nil {
		t.Fatal("the server never recorded the cancelled compaction")
	}
	if compact.End.After(deadline.Add(200 * time.Millisecond)) {
		t.Fatalf("the server's compaction ran until %s, permission ended %s: %v", compact.End.Format("15:04:05.000"), deadline.Format("15:04:05.000"), compact)
	}
}
