package scheduler

import "sync"

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
// (which then sees the worker alive and requeues nothing) or after the
// requeue committed (and the reconciliation cancels the attempts). The lock
// is taken before s.mu, never while holding it.
type ownership struct {
	mu    sync.Mutex
	locks map[string]*ownerLock
}

type ownerLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes worker's lock and returns its release.
func (o *ownership) lock(worker string) (unlock func()) {
	o.mu.Lock()
	if o.locks == nil {
		o.locks = map[string]*ownerLock{}
	}
	l := o.locks[worker]
	if l == nil {
		l = &ownerLock{}
		o.locks[worker] = l
	}
	l.refs++
	o.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		o.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(o.locks, worker)
		}
		o.mu.Unlock()
	}
}
