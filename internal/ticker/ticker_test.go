package ticker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryCallsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Millisecond, func() {
			if calls.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context was cancelled")
	}
	// A tick already due when ctx ends may still be taken: 3 or 4 calls.
	if n := calls.Load(); n < 3 || n > 4 {
		t.Fatalf("fn called %d times, want 3 (or 4 with a tick due at the cancel)", n)
	}
}

func TestEveryReturnsAtOnceOnEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Every(ctx, time.Hour, func() { t.Error("fn called on an ended context") })
}
