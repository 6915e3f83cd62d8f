package scheduler

import (
	"context"
	"sync"
)

// ownership serializes, per worker, the leader's decisions about which
// attempts a worker owns together with the proposals they lead to.
//
// Without it a lease expiry could decide to requeue a silent worker's
// attempts, and before the RequeueTask committed, the worker (restarted, or
// reconnected) could say hello: its attempts, checked against the state
// from before the requeue, were judged still its own and got no cancel, and
// the worker then rolled back or resumed them while the task was pending or
// already given to another attempt.
//
// Holding the worker's lock:
//   - a lease expiry re-checks that the worker is still silent and proposes
//     the requeues of its attempts, until they are committed (or refused);
//   - a hello registers the session and reconciles the attempts it lists;
//   - a heartbeat reconciles the attempts it lists (restored ones included)
//     and queues its ack, the point from which the worker treats what was
//     not cancelled as its own.
//
// So a hello or heartbeat is either handled before the expiry's re-check
// (which then sees the worker alive and requeues nothing) or after
// the requeue committed (and the reconciliation cancels the attempts).
//
// The heartbeat's part is not made redundant by the re-check: a session may
// still be registered while the re-check finds the worker silent (it was
// registered after the expiry's decision, and went quiet for a lease while
// the requeues of other workers were being proposed), and its next
// heartbeat, reconciled against the state from before the requeue, would be
// acknowledged without a cancel.
//
// Waiting for the lock honours the waiter's context: a hello the worker has
// given up on must not register a session after the worker's next one. The
// lock is taken before s.mu, never while holding it.
type ownership struct {
	mu sync.Mutex
	// locks holds one lock per worker ever seen and never shrinks: workers
	// are few.
	locks map[string]*ownerLock
}

type ownerLock struct {
	// sem holds a token while the lock is held.
	sem chan struct{}
	// waiting counts the goroutines waiting for the lock (under
	// ownership.mu), for tests to observe.
	waiting int
}

// lock takes worker's lock and returns its release, or ctx's error if ctx
// ends first (also when it ended as the lock was taken).
func (o *ownership) lock(ctx context.Context, worker string) (unlock func(), err error) {
	o.mu.Lock()
	if o.locks == nil {
		o.locks = map[string]*ownerLock{}
	}
	l := o.locks[worker]
	if l == nil {
		l = &ownerLock{sem: make(chan struct{}, 1)}
		o.locks[worker] = l
	}
	l.waiting++
	o.mu.Unlock()
	release := func() { <-l.sem }
	select {
	case l.sem <- struct{}{}:
		err = ctx.Err()
		if err != nil {
			release()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	o.mu.Lock()
	l.waiting--
	o.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return release, nil
}

// waiters reports how many goroutines wait for worker's lock.
func (o *ownership) waiters(worker string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l := o.locks[worker]; l != nil {
		return l.waiting
	}
	return 0
}
