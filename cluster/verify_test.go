package cluster

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// roundErr carries the number of the round that answered.
type roundErr struct{ n int64 }

func (e roundErr) Error() string { return fmt.Sprintf("round %d", e.n) }

// TestVerifyBatcherRoundStartsAfterArrival: every caller is answered by a
// round that started after it called, and concurrent callers share rounds.
func TestVerifyBatcherRoundStartsAfterArrival(t *testing.T) {
	var started atomic.Int64
	b := newVerifyBatcher(func() error {
		n := started.Add(1)
		// Let more callers pile up while the round is in flight.
		for i := 0; i < 50; i++ {
			runtime.Gosched()
		}
		return roundErr{n}
	})
	const callers, calls = 64, 200
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, callers)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				before := started.Load()
				err := b.do(context.Background())
				var re roundErr
				if !errors.As(err, &re) {
					errs <- fmt.Errorf("got %v, want a round's answer", err)
					return
				}
				if re.n <= before {
					errs <- fmt.Errorf("answered by round %d, which started before the call (round %d had started)", re.n, before)
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rounds := started.Load()
	t.Logf("%d calls shared %d rounds", total.Load(), rounds)
	if rounds > total.Load() {
		t.Fatalf("%d rounds for %d calls", rounds, total.Load())
	}
}

// blockedBatcher is a batcher whose rounds are counted in started and
// answer result(round number), the first one only once release is closed.
func blockedBatcher(result func(n int64) error) (b *verifyBatcher, started *atomic.Int64, release chan struct{}) {
	started, release = new(atomic.Int64), make(chan struct{})
	b = newVerifyBatcher(func() error {
		n := started.Add(1)
		if n == 1 {
			<-release
		}
		return result(n)
	})
	return b, started, release
}

// TestVerifyBatcherShares: callers that arrive while a round is in flight
// share the next one.
func TestVerifyBatcherShares(t *testing.T) {
	b, started, release := blockedBatcher(func(n int64) error { return roundErr{n} })
	first := make(chan error, 1)
	go func() { first <- b.do(context.Background()) }()
	waitFor(t, "the first round to start", func() bool { return started.Load() == 1 })
	const n = 20
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { results <- b.do(context.Background()) }()
	}
	// All n join the pending round before the first round ends.
	waitFor(t, "every caller to join the pending round", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.next != nil && b.next.members == n
	})
	close(release)
	if err := <-first; !errors.Is(err, roundErr{1}) {
		t.Fatalf("first caller: %v, want round 1", err)
	}
	for i := 0; i < n; i++ {
		if err := <-results; !errors.Is(err, roundErr{2}) {
			t.Fatalf("waiting caller: %v, want round 2", err)
		}
	}
	if got := started.Load(); got != 2 {
		t.Fatalf("%d rounds, want 2", got)
	}
}

// TestVerifyBatcherCancel: a caller whose context ends returns at once; the
// round still answers the others, and later calls get fresh rounds.
func TestVerifyBatcherCancel(t *testing.T) {
	b, started, release := blockedBatcher(func(int64) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- b.do(ctx) }()
	other := make(chan error, 1)
	go func() { other <- b.do(context.Background()) }()
	waitFor(t, "the first round to start", func() bool { return started.Load() == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	if err := <-other; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if err := b.do(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the round goroutine to end", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return !b.running
	})
}
