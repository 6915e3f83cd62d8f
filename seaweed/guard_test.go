package seaweed_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestCallGuardStopsCallsBeforeTheyLeave: with a call guard that refuses,
// neither a unary nor a streaming volume-server call reaches the server
// (the simulator's operation log stays empty), even on a context detached
// from the guarded one; with a guard that allows, they run.
func TestCallGuardStopsCallsBeforeTheyLeave(t *testing.T) {
	c, err := sim.New(sim.Config{Servers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vid, err := c.AddVolume(sim.VolumeSpec{Size: 1 << 20, FileCount: 10, DeleteCount: 5, DeletedBytes: 1 << 19})
	if err != nil {
		t.Fatal(err)
	}
	server := c.Server(0).Address().String()
	vc := seaweed.NewVolumeClient()
	defer vc.Close()

	allowed := true
	ctx := seaweed.WithCallGuard(context.Background(), func() error {
		if allowed {
			return nil
		}
		return errors.New("lease lost")
	})
	allowed = false
	detachedCtx := context.WithoutCancel(ctx)
	if err := vc.VolumeMarkReadonly(detachedCtx, server, vid, false); status.Code(err) != codes.Aborted {
		t.Fatalf("unary call under a refusing guard: %v, want Aborted", err)
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
