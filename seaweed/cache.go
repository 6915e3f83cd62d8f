package seaweed

import (
	"context"
	"sync"
	"time"
)

// TopologySource is what a TopologyCache polls (a *Master).
type TopologySource interface {
	Topology(ctx context.Context) (*Topology, error)
}

// TopologyCache keeps the master's last topology on a node, whether or not
// it leads: it polls every interval and, while the master is unreachable,
// keeps the last topology it got.
type TopologyCache struct {
	src      TopologySource
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
	// OnError, if set, is told of every failed poll.
	OnError func(error)
	// OnUpdate, if set, is called after every poll that replaced the kept
	// topology (capacity watches wake on it). It must not block.
	OnUpdate func()

	mu      sync.Mutex
	topo    *Topology
	at      time.Time
	lastErr error
	guard   RefillGuard
	polled  chan struct{} // closed and replaced after every poll
}

// NewTopologyCache polls src every interval (at least 100ms).
func NewTopologyCache(src TopologySource, interval time.Duration) *TopologyCache {
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	return &TopologyCache{src: src, interval: interval, timeout: 30 * time.Second, now: time.Now, polled: make(chan struct{})}
}

// Run polls until ctx ends.
func (c *TopologyCache) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll fetches the topology once; on failure the last one is kept.
func (c *TopologyCache) Poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	topo, err := c.src.Topology(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	updated := false
	c.mu.Lock()
	if err == nil && topo != nil {
		if c.accept(topo) {
			c.topo, c.at = topo, c.now()
			updated = true
		}
		c.lastErr = nil
	} else {
		c.lastErr = err
	}
	close(c.polled)
	c.polled = make(chan struct{})
	c.mu.Unlock()
	if err != nil && c.OnError != nil {
		c.OnError(err)
	}
	if updated && c.OnUpdate != nil {
		c.OnUpdate()
	}
}

// accept decides whether a fetched topology replaces the kept one: a master
// that has just restarted answers with no or only some volume servers until
// they re-register, and its partial view must not hide the sizes it
// reported before (see RefillGuard). Call with c.mu held.
func (c *TopologyCache) accept(t *Topology) bool {
	v := c.guard.Trust(len(t.Servers))
	// With nothing kept yet, even an empty cluster is better than no answer.
	return c.topo == nil || v == Trusted || v == Smaller
}

// Latest returns the last topology fetched and when (nil before the first
// successful poll). The topology must not be modified.
func (c *TopologyCache) Latest() (*Topology, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.topo, c.at
}

// LastError is the error of the last poll, nil if it succeeded.
func (c *TopologyCache) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Polled returns a channel closed when the next poll ends.
func (c *TopologyCache) Polled() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.polled
}
