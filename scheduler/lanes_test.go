package scheduler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

const lanesWait = 10 * time.Second

// put queues a one-byte report with no error hook.
func (l *lanes) put(ctx context.Context, task uint64, fn func() error) error {
	return l.enqueue(ctx, task, 1, fn, nil)
}

// TestLanesKeepOrderWithinATask: a task's reports run in the order they
// were received, while other tasks' reports run beside them.
func TestLanesKeepOrderWithinATask(t *testing.T) {
	var l lanes
	ctx := context.Background()
	var mu sync.Mutex
	var got []int
	for i := range 200 {
		if err := l.put(ctx, uint64(100+i), func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := l.put(ctx, 7, func() error {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.barrier(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 200 || !slices.IsSorted(got) {
		t.Fatalf("task 7's reports ran as %v; want 0..199 in order", got)
	}
}

// TestLanesRunTasksConcurrently: a report of one task waiting on its commit
// does not hold up another task's report (which a single reader did).
func TestLanesRunTasksConcurrently(t *testing.T) {
	var l lanes
	ctx := context.Background()
	release := make(chan struct{})
	bDone := make(chan struct{})
	if err := l.put(ctx, 1, func() error { <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := l.put(ctx, 2, func() error { close(bDone); return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bDone:
	case <-time.After(lanesWait):
		t.Fatal("task 2's report did not run while task 1's was blocked")
	}
	close(release)
	if err := l.barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLanesBarrierWaitsForEarlierReports: a heartbeat is handled only after
// every report received before it.
func TestLanesBarrierWaitsForEarlierReports(t *testing.T) {
	var l lanes
	ctx := context.Background()
	var mu sync.Mutex
	var events []string
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	release := make(chan struct{})
	started := make(chan struct{})
	if err := l.put(ctx, 1, func() error { close(started); <-release; note("report 1 done"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := l.put(ctx, 2, func() error { note("report 2 done"); return nil }); err != nil {
		t.Fatal(err)
	}
	<-started
	done := make(chan error, 1)
	go func() {
		err := l.barrier(ctx)
		note("barrier")
		done <- err
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 3 || events[2] != "barrier" {
		t.Fatalf("events %v; want both reports done before the barrier returns", events)
	}
}

// TestLanesFirstErrorEndsHandling: once a report fails, the session is
// closed at once (its stream ends), the reports queued after it are dropped
// (the worker re-sends them) and every later call returns that error.
func TestLanesFirstErrorEndsHandling(t *testing.T) {
	var l lanes
	ctx := context.Background()
	boom := errors.New("outcome unknown")
	release := make(chan struct{})
	ran := false
	closed := make(chan struct{})
	if err := l.enqueue(ctx, 1, 1, func() error { <-release; return boom }, func() { close(closed) }); err != nil {
		t.Fatal(err)
	}
	if err := l.put(ctx, 1, func() error { ran = true; return nil }); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(lanesWait):
		t.Fatal("the session was not closed after a report failed")
	}
	if err := l.barrier(ctx); !errors.Is(err, boom) {
		t.Fatalf("barrier: %v; want %v", err, boom)
	}
	if ran {
		t.Error("a report queued after the failed one ran")
	}
	if err := l.put(ctx, 3, func() error { return nil }); !errors.Is(err, boom) {
		t.Fatalf("enqueue after the failure: %v; want %v", err, boom)
	}
}

// TestLanesBoundQueuedReports: beyond maxQueuedReports the reader blocks
// until a report finishes, and a cancelled stream unblocks it.
func TestLanesBoundQueuedReports(t *testing.T) {
	var l lanes
	release := make(chan struct{})
	for i := range maxQueuedReports {
		if err := l.put(context.Background(), uint64(i), func() error { <-release; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.put(ctx, 9999, func() error { return nil }) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("enqueue past the bound on a cancelled stream: %v; want context.Canceled", err)
		}
	case <-time.After(lanesWait):
		t.Fatal("enqueue past the bound did not return when the stream ended")
	}
	l.mu.Lock()
	queued := l.queued
	l.mu.Unlock()
	if queued != maxQueuedReports {
		t.Fatalf("%d reports queued; want the bound %d (the refused one not counted)", queued, maxQueuedReports)
	}
	go func() { done <- l.put(context.Background(), 9999, func() error { return nil }) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestLanesBoundQueuedBytes: the reports queued are bounded by their size
// too, so a worker sending large messages for tasks whose proposals are
// slow cannot pin more than the bound; a single report over the bound is
// still taken when nothing else is queued.
func TestLanesBoundQueuedBytes(t *testing.T) {
	var l lanes
	release := make(chan struct{})
	half := maxQueuedReportBytes / 2
	for i := range 2 {
		if err := l.enqueue(context.Background(), uint64(i), half, func() error { <-release; return nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.enqueue(ctx, 3, 1, func() error { return nil }, nil) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a report past the byte bound: %v; want it held until the stream ended", err)
	}
	close(release)
	if err := l.barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.enqueue(context.Background(), 4, 2*maxQueuedReportBytes, func() error { return nil }, nil); err != nil {
		t.Fatalf("a lone report over the byte bound on an idle session: %v; want it taken", err)
	}
	if err := l.barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.queued != 0 || l.bytes != 0 {
		t.Fatalf("%d reports and %d bytes still counted after all finished", l.queued, l.bytes)
	}
}
