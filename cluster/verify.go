package cluster

import (
	"context"
	"sync"
)

// verifyBatcher lets concurrent linearizable reads share leadership checks,
// read-index style: a request joins the next round to start, and a round
// starts only after every request in it has arrived, so each request is
// answered by a round of contact with a quorum that began after it came in.
// At most one round runs at a time; requests that arrive meanwhile form the
// following round. A round is not tied to any request's context: a caller
// that gives up leaves the round running for the others.
type verifyBatcher struct {
	verify func() error // one round: raft's VerifyLeader

	mu      sync.Mutex
	running bool         // a goroutine is running rounds
	next    *verifyRound // the round requests join; nil when none waits
}

type verifyRound struct {
	done    chan struct{}
	err     error // set before done is closed
	members int   // requests that joined (for tests)
}

func newVerifyBatcher(verify func() error) *verifyBatcher {
	return &verifyBatcher{verify: verify}
}

// do waits for a round that starts after the call and returns its result,
// or ctx's error if ctx ends first.
func (b *verifyBatcher) do(ctx context.Context) error {
	b.mu.Lock()
	r := b.next
	if r == nil {
		r = &verifyRound{done: make(chan struct{})}
		b.next = r
	}
	r.members++
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run performs rounds while requests wait for one.
func (b *verifyBatcher) run() {
	for {
		b.mu.Lock()
		r := b.next
		if r == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		// From here on nobody joins r: the round starts after all its members.
		b.next = nil
		b.mu.Unlock()
		r.err = b.verify()
		close(r.done)
	}
}
