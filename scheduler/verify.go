package scheduler

import (
	"context"
	"sync"
	"time"
)

// leadershipCheck coalesces leadership verifications. A heartbeat ack
// tells a worker that its attempts are safe from requeueing for lease +
// grace after the heartbeat left it; only a leader that still leads after
// receiving the heartbeat may say so. A deposed leader (frozen by SIGSTOP
// or a VM pause, or cut off, while a new leader took over) may not have
// noticed yet, and its acks would keep a worker running attempts the new
// leader is about to hand to someone else. So a heartbeat is acknowledged
// only after a leadership verification that started after it arrived has
// succeeded: any new leader was elected after that start, and requeues
// nothing before lease + grace from its own start.
type leadershipCheck struct {
	verify func(ctx context.Context) error

	mu sync.Mutex
	// okStart is the start time of the latest successful verification.
	okStart time.Time
	// The verification in flight, if any.
	running  bool
	curStart time.Time
	done     chan struct{}
	lastErr  error
}

// confirm returns once a verification that started at or after `after` has
// succeeded, or with the error of one that failed. runCtx bounds the
// verification itself (it may serve several callers); ctx bounds the wait.
func (l *leadershipCheck) confirm(ctx, runCtx context.Context, after time.Time, now func() time.Time) error {
	if l.verify == nil {
		return nil
	}
	for {
		l.mu.Lock()
		if !l.okStart.Before(after) {
			l.mu.Unlock()
			return nil
		}
		if !l.running {
			l.running, l.curStart, l.done = true, now(), make(chan struct{})
			start, done := l.curStart, l.done
			go func() {
				err := l.verify(runCtx)
				l.mu.Lock()
				if err == nil && start.After(l.okStart) {
					l.okStart = start
				}
				l.lastErr, l.running = err, false
				l.mu.Unlock()
				close(done)
			}()
		}
		start, done := l.curStart, l.done
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.mu.Lock()
		err := l.lastErr
		ok := !l.okStart.Before(after)
		l.mu.Unlock()
		if ok {
			return nil
		}
		if !start.Before(after) && err != nil {
			return err
		}
		// That round started before the heartbeat arrived: run another.
	}
}
