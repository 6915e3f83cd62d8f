package rpc

import "sync"

// ChangeFeed broadcasts "something changed" to any number of waiters
// without ever blocking the notifier: Notify closes the channel the waiters
// hold and puts a fresh one in its place, so a burst of notifications while
// a waiter is busy collapses into one wake-up. The node wires it to the
// FSM's apply callback and to its topology cache.
type ChangeFeed struct {
	mu     sync.Mutex
	gen    uint64
	ch     chan struct{}
	done   chan struct{}
	closed bool
}

// NewChangeFeed returns an open feed.
func NewChangeFeed() *ChangeFeed {
	return &ChangeFeed{ch: make(chan struct{}), done: make(chan struct{})}
}

// Notify wakes every waiter. It never blocks (beyond a short mutex) and is
// safe to call from raft's apply goroutine.
func (f *ChangeFeed) Notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.gen++
	close(f.ch)
	f.ch = make(chan struct{})
}

// Changed returns a channel closed at the first Notify after the call.
// Take it before reading the state, so no change can slip in between.
func (f *ChangeFeed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

// Generation counts the notifications so far.
func (f *ChangeFeed) Generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// Done is closed by Close.
func (f *ChangeFeed) Done() <-chan struct{} { return f.done }

// Close ends the feed: Done is closed and watchers stop. Idempotent.
func (f *ChangeFeed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
}
