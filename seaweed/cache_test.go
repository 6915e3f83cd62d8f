package seaweed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeSource struct {
	mu   sync.Mutex
	topo *Topology
	err  error
}

func (f *fakeSource) Topology(context.Context) (*Topology, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.topo, f.err
}

func (f *fakeSource) set(t *Topology, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topo, f.err = t, err
}

func TestTopologyCacheKeepsLastTopology(t *testing.T) {
	t.Parallel()
	src := &fakeSource{}
	c := NewTopologyCache(src, time.Hour)
	ctx := context.Background()
	if topo, at := c.Latest(); topo != nil || !at.IsZero() {
		t.Fatalf("before any poll: got %v at %v", topo, at)
	}
	src.set(nil, errors.New("down"))
	c.Poll(ctx)
	if topo, _ := c.Latest(); topo != nil || c.LastError() == nil {
		t.Fatalf("failed first poll: topo %v err %v", topo, c.LastError())
	}
	first := &Topology{VolumeSizeLimit: 1}
	src.set(first, nil)
	c.Poll(ctx)
	topo, at := c.Latest()
	if topo != first || at.IsZero() || c.LastError() != nil {
		t.Fatalf("after a poll: got %v at %v err %v", topo, at, c.LastError())
	}
	src.set(nil, errors.New("master gone"))
	c.Poll(ctx)
	if topo2, at2 := c.Latest(); topo2 != first || at2 != at || c.LastError() == nil {
		t.Fatalf("master unreachable: want the last topology kept, got %v at %v", topo2, at2)
	}
}

func TestTopologyCacheRefilling(t *testing.T) {
	t.Parallel()
	servers := func(n int) *Topology {
		t := &Topology{}
		for i := 0; i < n; i++ {
			t.Servers = append(t.Servers, &Server{ID: string(rune('a' + i))})
		}
		return t
	}
	src := &fakeSource{}
	c := NewTopologyCache(src, time.Hour)
	ctx := context.Background()
	full := servers(3)
	src.set(full, nil)
	c.Poll(ctx)
	// A restarted master: empty, then partial.
	src.set(servers(0), nil)
	for i := 0; i < 5; i++ {
		c.Poll(ctx)
	}
	if got, _ := c.Latest(); got != full {
		t.Fatal("an empty topology replaced a full one")
	}
	partial := servers(2)
	src.set(partial, nil)
	for i := 1; i < RefillPolls; i++ {
		c.Poll(ctx)
		if got, _ := c.Latest(); got != full {
			t.Fatalf("poll %d: a smaller topology replaced the full one too early", i)
		}
	}
	c.Poll(ctx)
	if got, _ := c.Latest(); got != partial {
		t.Fatalf("a smaller topology held for %d polls was not accepted", RefillPolls)
	}
	// Back to full at once.
	src.set(full, nil)
	c.Poll(ctx)
	if got, _ := c.Latest(); got != full {
		t.Fatal("a larger topology was not accepted at once")
	}
}

func TestTopologyCacheRun(t *testing.T) {
	t.Parallel()
	src := &fakeSource{topo: &Topology{}}
	c := NewTopologyCache(src, 100*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	polled := c.Polled()
	go func() { c.Run(ctx); close(done) }()
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		t.Fatal("no poll")
	}
	if topo, _ := c.Latest(); topo == nil {
		t.Fatal("no topology after the first poll")
	}
	cancel()
	<-done
}

func TestTopologyCacheOnUpdate(t *testing.T) {
	t.Parallel()
	src := &fakeSource{}
	c := NewTopologyCache(src, time.Hour)
	updates := 0
	c.OnUpdate = func() { updates++ }
	ctx := context.Background()
	src.set(nil, errors.New("down"))
	c.Poll(ctx)
	if updates != 0 {
		t.Fatalf("a failed poll notified %d times", updates)
	}
	src.set(&Topology{Servers: []*Server{{ID: "a"}}}, nil)
	c.Poll(ctx)
	c.Poll(ctx)
	if updates != 2 {
		t.Fatalf("two accepted polls notified %d times, want 2", updates)
	}
}

// countingSource counts polls and, while gate is set, holds each poll until
// gate is closed.
type countingSource struct {
	mu    sync.Mutex
	polls int
	gate  chan struct{}
	topo  *Topology
}

func (s *countingSource) Topology(ctx context.Context) (*Topology, error) {
	s.mu.Lock()
	s.polls++
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.topo, nil
}

func (s *countingSource) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

func TestTopologyCacheFetchSharesAPollUnderWay(t *testing.T) {
	t.Parallel()
	src := &countingSource{gate: make(chan struct{}), topo: &Topology{VolumeSizeLimit: 7}}
	c := NewTopologyCache(src, time.Hour)
	ctx := context.Background()
	type answer struct {
		topo *Topology
		err  error
	}
	answers := make(chan answer, 3)
	for range 3 {
		go func() {
			topo, _, err := c.Fetch(ctx)
			answers <- answer{topo, err}
		}()
	}
	// Wait until all three are in: one polling, two waiting on it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		joined := c.inflight != nil && c.inflight.waiters == 2
		c.mu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the three fetches never met on one poll")
		}
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
	for range 3 {
		a := <-answers
		if a.err != nil || a.topo != src.topo {
			t.Fatalf("fetch answered %v, %v", a.topo, a.err)
		}
	}
	if n := src.count(); n != 1 {
		t.Fatalf("three overlapping fetches polled the master %d times, want 1", n)
	}
	if topo, _ := c.Latest(); topo != src.topo {
		t.Fatalf("the fetched topology was not kept: %v", topo)
	}
}

func TestTopologyCacheRunCountsFromTheLastFetch(t *testing.T) {
	t.Parallel()
	src := &countingSource{topo: &Topology{}}
	const interval = 300 * time.Millisecond
	c := NewTopologyCache(src, interval)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	polled := c.Polled()
	go c.Run(ctx)
	<-polled // Run's own first poll
	// A scheduler fetching every third of the interval keeps the cache
	// fresh: Run must not poll on top of it.
	tick := time.NewTicker(interval / 3)
	defer tick.Stop()
	fetches := 0
	for range 12 {
		<-tick.C
		if _, _, err := c.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		fetches++
	}
	if n := src.count(); n != 1+fetches {
		t.Fatalf("%d polls for %d fetches over %v: Run polled %d times on top of the fetches", n, fetches, 4*interval, n-1-fetches)
	}
	// Once the fetches stop, Run polls again by itself.
	deadline := time.Now().Add(10 * interval)
	for src.count() == 1+fetches {
		if time.Now().After(deadline) {
			t.Fatal("Run stopped polling after the fetches ended")
		}
		select {
		case <-c.Polled():
		case <-time.After(interval):
		}
	}
}

// A fetch that joins a poll under way answers with when that poll began,
// not when the fetch was called: the topology is no newer than that.
func TestTopologyCacheFetchTellsWhenThePollBegan(t *testing.T) {
	t.Parallel()
	src := &countingSource{gate: make(chan struct{}), topo: &Topology{}}
	c := NewTopologyCache(src, time.Hour)
	var mu sync.Mutex
	clock := time.Unix(1000, 0)
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ctx := context.Background()
	first := make(chan time.Time, 1)
	go func() {
		_, asked, _ := c.Fetch(ctx)
		first <- asked
	}()
	deadline := time.Now().Add(5 * time.Second)
	for src.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first fetch never polled")
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	clock = clock.Add(5 * time.Second)
	mu.Unlock()
	joined := make(chan time.Time, 1)
	go func() {
		_, asked, _ := c.Fetch(ctx)
		joined <- asked
	}()
	for {
		c.mu.Lock()
		in := c.inflight != nil && c.inflight.waiters == 1
		c.mu.Unlock()
		if in {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second fetch never joined the poll")
		}
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
	want := time.Unix(1000, 0)
	if a := <-first; !a.Equal(want) {
		t.Errorf("the polling fetch says it asked at %v, want %v", a, want)
	}
	if a := <-joined; !a.Equal(want) {
		t.Errorf("the joining fetch says it asked at %v, want the poll's start %v", a, want)
	}
}

// epochSource is a fakeSource that counts master leaders.
type epochSource struct {
	fakeSource
	epoch uint64
}

func (s *epochSource) LeaderEpoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// TestTopologyCacheLeaderChange: a new master leader's partial topology
// does not replace the kept one on the strength of the old leader's polls.
func TestTopologyCacheLeaderChange(t *testing.T) {
	t.Parallel()
	servers := func(n int) *Topology {
		t := &Topology{}
		for i := 0; i < n; i++ {
			t.Servers = append(t.Servers, &Server{ID: string(rune('a' + i))})
		}
		return t
	}
	src := &epochSource{epoch: 1}
	c := NewTopologyCache(src, time.Hour)
	ctx := context.Background()
	full := servers(3)
	src.set(full, nil)
	c.Poll(ctx)
	src.set(servers(2), nil)
	for i := 1; i < RefillPolls; i++ {
		c.Poll(ctx)
	}
	src.mu.Lock()
	src.epoch = 2
	src.mu.Unlock()
	c.Poll(ctx)
	if got, _ := c.Latest(); got != full {
		t.Fatal("a new master leader's partial topology replaced the full one at its first poll")
	}
}
