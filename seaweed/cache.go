package seaweed

import (
	"context"
	"errors"
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
	// epoch is the source's master leader epoch at the last poll (see
	// Master.LeaderEpoch; 0: the source does not count leaders).
	epoch  uint64
	polled chan struct{} // closed and replaced after every poll
	// lastPoll is when the last poll ended; inflight is the poll under way.
	lastPoll time.Time
	inflight *fetch
}

// NewTopologyCache polls src every interval (at least 100ms).
func NewTopologyCache(src TopologySource, interval time.Duration) *TopologyCache {
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	return &TopologyCache{src: src, interval: interval, timeout: 30 * time.Second, now: time.Now, polled: make(chan struct{})}
}

// Run polls until ctx ends: every interval after the last poll, whoever
// made it, so a node whose scheduler fetches through Fetch does not poll the
// master a second time.
func (c *TopologyCache) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		due := c.lastPoll.Add(c.interval)
		c.mu.Unlock()
		if wait := due.Sub(c.now()); wait > 0 {
			t.Reset(wait)
			continue
		}
		c.Poll(ctx)
		t.Reset(c.interval)
	}
}

// Poll fetches the topology once; on failure the last one is kept.
func (c *TopologyCache) Poll(ctx context.Context) {
	_, _, _ = c.Fetch(ctx)
}

// Fetch polls the master now, keeps the answer as Poll does, and returns the
// topology fetched (which the refill guard may not have let replace the kept
// one) or the poll's error, and when the poll that answered began. A call
// while another poll is under way shares that poll's answer instead of
// asking the master again: asked is then before the call, and a caller
// that must know the topology is newer than some moment (the scheduler
// waits for one asked for after a task's submission) uses asked, not the
// time of its call.
func (c *TopologyCache) Fetch(ctx context.Context) (topo *Topology, asked time.Time, err error) {
	c.mu.Lock()
	if f := c.inflight; f != nil {
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.topo, f.asked, f.err
		case <-ctx.Done():
			return nil, f.asked, ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{}), asked: c.now()}
	c.inflight = f
	c.mu.Unlock()

	// The poll runs on its own context: callers sharing it must not lose
	// their answer because the first caller gave up.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		alone := c.inflight == f && f.waiters == 0
		c.mu.Unlock()
		if alone {
			cancel()
		}
	})
	topo, err = c.src.Topology(pctx)
	stop()
	cancel()
	if err == nil && topo == nil {
		err = errors.New("the master answered no topology")
	}
	updated := false
	c.mu.Lock()
	c.inflight = nil
	f.topo, f.err = topo, err
	close(f.done)
	if ctx.Err() != nil && err != nil {
		// Cut short by our own caller: nothing was learnt about the master.
		c.mu.Unlock()
		return nil, f.asked, err
	}
	c.lastPoll = c.now()
	if err == nil {
		if c.accept(topo) {
			c.topo, c.at = topo, c.lastPoll
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
	return topo, f.asked, err
}

// fetch is one poll of the master, shared by the callers that overlap it.
type fetch struct {
	done    chan struct{}
	asked   time.Time // when the poll began
	waiters int
	topo    *Topology
	err     error
}

// accept decides whether a fetched topology replaces the kept one: a master
// that has just restarted answers with no or only some volume servers until
// they re-register, and its partial view must not hide the sizes it
// reported before (see RefillGuard). Call with c.mu held.
func (c *TopologyCache) accept(t *Topology) bool {
	if m, ok := c.src.(interface{ LeaderEpoch() uint64 }); ok {
		// A new master leader refills as a restarted master does.
		if e := m.LeaderEpoch(); e != c.epoch {
			if c.epoch != 0 {
				c.guard.LeaderChanged()
			}
			c.epoch = e
		}
	}
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
