package sim

import (
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.waiters = append(f.waiters, fakeWaiter{at: f.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock by d and fires every wait that is due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- f.now
	}
	f.waiters = kept
}

func (f *fakeClock) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// TestCompactionWaitsOnTheInjectedClock: an hour-long compaction on a fake
// clock is still running while the clock stands still and completes as
// soon as the test advances it by the hour, without the hour passing.
func TestCompactionWaitsOnTheInjectedClock(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	c := newCluster(t, Config{Servers: 1, CompactDuration: time.Hour, Clock: clk})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, DeleteCount: 5, DeletedBytes: 5 * mib}))
	s := c.Server(0)
	vc := vsClient(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := compact(ctxT(t), vc, 1)
		done <- err
	}()
	testutil.EventuallyTrue(t, 5*time.Second, "the compaction to wait on the clock", func() bool { return clk.waiting() > 0 })
	clk.Advance(time.Hour - time.Second)
	select {
	case err := <-done:
		t.Fatalf("compaction ended (%v) before its hour had passed on the clock", err)
	default:
	}
	if v, _ := s.Volume(1); !v.Compacting {
		t.Fatalf("volume %+v is not compacting a second before the hour is up", v)
	}
	clk.Advance(time.Second)
	select {
	case err := <-done:
		ok(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("compaction still running after the clock passed its hour")
	}
	if v, _ := s.Volume(1); !v.Compacted {
		t.Fatalf("after compact %+v", v)
	}
}
