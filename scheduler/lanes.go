package scheduler

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// maxQueuedReports and maxQueuedReportBytes bound the task reports one
// session has accepted but not handled yet (their number, so the raft
// proposals one stream has in flight, and their encoded size, so the
// memory a hostile worker can pin); beyond either, Dispatch blocks the
// stream's reader until reports finish. One report larger than the byte
// bound is still taken when nothing else is queued, as a synchronous
// reader would hold it.
const (
	maxQueuedReports     = 64
	maxQueuedReportBytes = 4 << 20
)

// lanes runs one session's task reports (started, progress, completed,
// failed, released) concurrently across tasks and in stream order within a
// task. Handled one at a time, every report waited for the raft commit of
// the one before it, whatever task it was about: a worker with many slots
// queued its starts and completions behind each other, and the slots sat
// idle (BenchmarkRepairAfterServerLoss). Reports of different attempts do
// not depend on each other; their proposals, made concurrently, are
// committed together by raft's group commit.
//
// A message that is not a task report (a heartbeat) is a barrier: it is
// handled only once every report received before it has been, as when
// everything was handled in turn, so its reconciliation sees them. The
// first error ends the session's handling: the session is closed at once
// (its stream ends, as when a synchronous handler failed), the reports
// queued after it are dropped unacknowledged (the worker re-sends them on
// its next stream), and Dispatch returns the error.
//
// The zero value is ready to use.
type lanes struct {
	mu      sync.Mutex
	cond    *sync.Cond // signalled when queued drops or err is set
	queued  int        // reports accepted, not finished
	bytes   int        // their encoded size
	running map[uint64][]queuedReport
	err     error
	waiting int // callers blocked in enqueue or barrier (tests observe it)
}

type queuedReport struct {
	run  func() error
	size int
}

func (l *lanes) init() {
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
		l.running = map[uint64][]queuedReport{}
	}
}

// enqueue runs fn (a report of size encoded bytes) after every earlier
// report of task, blocking while the session is at a bound. It returns the
// error that ended the session's handling, if one did.
func (l *lanes) enqueue(ctx context.Context, task uint64, size int, fn func() error, onErr func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	for l.err == nil && ctx.Err() == nil && l.queued > 0 &&
		(l.queued >= maxQueuedReports || l.bytes+size > maxQueuedReportBytes) {
		l.waitLocked(ctx)
	}
	if l.err != nil {
		return l.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.queued++
	l.bytes += size
	q, busy := l.running[task]
	l.running[task] = append(q, queuedReport{run: fn, size: size})
	if !busy {
		go l.drain(task, onErr)
	}
	return nil
}

// drain runs task's queued reports in order until none is left. The first
// error is kept, and onErr (closing the session, which ends the stream)
// runs once for it.
func (l *lanes) drain(task uint64, onErr func()) {
	for {
		l.mu.Lock()
		q := l.running[task]
		if len(q) == 0 {
			delete(l.running, task)
			l.mu.Unlock()
			return
		}
		r := q[0]
		failed := l.err != nil
		l.mu.Unlock()

		var err error
		if !failed {
			err = r.run()
		}

		l.mu.Lock()
		l.running[task] = l.running[task][1:]
		l.queued--
		l.bytes -= r.size
		first := err != nil && l.err == nil
		if first {
			l.err = err
		}
		l.cond.Broadcast()
		l.mu.Unlock()
		if first && onErr != nil {
			onErr()
		}
	}
}

// barrier waits until every accepted report has been handled, and returns
// the error that ended the session's handling, if one did.
func (l *lanes) barrier(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	for l.err == nil && l.queued > 0 && ctx.Err() == nil {
		l.waitLocked(ctx)
	}
	if l.err != nil {
		return l.err
	}
	return ctx.Err()
}

// waitLocked waits on cond, woken also when ctx ends.
func (l *lanes) waitLocked(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	l.waiting++
	l.cond.Wait()
	l.waiting--
	stop()
}

// reportTask is the task a worker message reports on, and whether it is a
// task report at all.
func reportTask(m *pb.WorkerMessage) (uint64, bool) {
	switch b := m.Body.(type) {
	case *pb.WorkerMessage_Started:
		return b.Started.GetTaskId(), true
	case *pb.WorkerMessage_Progress:
		return b.Progress.GetTaskId(), true
	case *pb.WorkerMessage_Completed:
		return b.Completed.GetTaskId(), true
	case *pb.WorkerMessage_Failed:
		return b.Failed.GetTaskId(), true
	case *pb.WorkerMessage_Released:
		return b.Released.GetTaskId(), true
	}
	return 0, false
}

// Dispatch is how a worker stream's reader hands over its messages: task
// reports run concurrently across tasks and in order within a task (see
// lanes), anything else once the reports before it are handled. It
// returns an error once the session's handling has failed; the stream
// then ends and the worker reconnects.
func (s *Scheduler) Dispatch(ctx context.Context, sess *Session, m *pb.WorkerMessage) error {
	if task, ok := reportTask(m); ok {
		return sess.lanes.enqueue(ctx, task, proto.Size(m), func() error { return s.Handle(ctx, sess, m) }, sess.close)
	}
	if err := sess.lanes.barrier(ctx); err != nil {
		return err
	}
	return s.Handle(ctx, sess, m)
}
