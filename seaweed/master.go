package seaweed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc/status"
)

// AdminLockName is the master lock groundskeeper's leader holds: the one
// SeaweedFS's own `weed admin` holds (as client "admin-server") to announce
// itself (admin_presence_lock.go); while someone else holds it the leader
// detects and assigns nothing. While it is held a vacuum switched off with
// by_plugin stays off (and switches itself back on if we die). Holding it
// does not keep weed admin's jobs away: weed admin runs them under
// ShellLockName, so the leader also pauses while that one is held.
const AdminLockName = "admin-server"

// ShellLockName is the lock `weed shell`'s `lock` command takes, and
// `weed admin` takes around each detection and job of its plugin
// scheduler (AdminLockManager, client "admin-plugin"). The leader holds it
// (NewLock) while its attempts are assigned or running, as weed admin
// does around its jobs (scheduler.ShellHoldDecide), and asks who holds it
// (LockHolder) otherwise.
const ShellLockName = "shell"

// Lock timing, as SeaweedFS's wdclient/exclusive_locks: the master grants
// 10 s (LockDuration); renew every 4 s, ask again every second while the
// lock is not ours, and give each call 3 s. The lock counts as ours until
// lockLease after the last renewal that succeeded was sent, less
// lockMargin for the two clocks' drift and the master's own processing.
const (
	lockLease      = 10 * time.Second
	lockMargin     = 1500 * time.Millisecond
	lockRenewEvery = 4 * time.Second
	lockRetryEvery = time.Second
	lockRPCTimeout = 3 * time.Second
)

// MaxTopologyMessage is the largest VolumeList answer accepted (a million
// volumes is roughly 40 MB on the wire).
const MaxTopologyMessage = 256 << 20

// Topology fetches the whole topology from the master leader.
func (m *Master) Topology(ctx context.Context) (*Topology, error) {
	m.maybeSurvey()
	var resp *master_pb.VolumeListResponse
	err := m.call(ctx, "volume list", true, func(ctx context.Context, c master_pb.SeaweedClient) (err error) {
		resp, err = c.VolumeList(ctx, &master_pb.VolumeListRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return FromVolumeList(resp), nil
}

// SetAutoVacuum switches the master leader's own periodic vacuum on or
// off. It uses the plugin flag, which the master keeps only while
// AdminLockName is held, and leaves the operator's own switch alone. The
// setting lives in the master leader's memory, so callers re-send it
// periodically (a new master leader starts without it). Followers accept
// the call without a word (SeaweedFS does not check), so it goes to the
// master that last answered a leader-only call.
func (m *Master) SetAutoVacuum(ctx context.Context, on bool) error {
	return m.call(ctx, fmt.Sprintf("set automatic vacuum %v", on), false, func(ctx context.Context, c master_pb.SeaweedClient) (err error) {
		if on {
			_, err = c.EnableVacuum(ctx, &master_pb.EnableVacuumRequest{ByPlugin: true})
		} else {
			_, err = c.DisableVacuum(ctx, &master_pb.DisableVacuumRequest{ByPlugin: true})
		}
		return err
	})
}

// LockHolder asks the master leader who holds the named lock; held is
// false when nobody does (or the holder's lease ran out).
func (m *Master) LockHolder(ctx context.Context, name string) (holder string, held bool, err error) {
	var resp *master_pb.GetAdminLockStatusResponse
	err = m.call(ctx, fmt.Sprintf("lock %q status", name), true, func(ctx context.Context, c master_pb.SeaweedClient) (err error) {
		resp, err = c.GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: name})
		return err
	})
	if err != nil {
		return "", false, err
	}
	return resp.GetClientName(), resp.GetIsLocked(), nil
}

// AdminLock keeps the master's admin lock while it runs, the way SeaweedFS's
// own holders do (weed/wdclient/exclusive_locks, which `weed admin` uses for
// this lock and `weed shell` for its "shell" lock): the master grants a
// lease of 10 s to the first client that asks, and renews it only for a
// request carrying the current token (each renewal hands out a new one);
// anyone else is refused with "already locked by CLIENT: " until the holder
// releases it or its lease runs out. While the lock is not ours we ask
// again every second, as those holders do; while it is, we renew every
// 4 s.
type AdminLock struct {
	m      *Master
	name   string
	client string
	now    func() time.Time

	mu    sync.Mutex
	token int64
	ts    int64
	// epoch is the master leader epoch (Master.leaderEpoch) of the last
	// grant: the lease counts only while that master leader is followed.
	epoch   uint64
	state   LockState
	changed chan struct{}
}

// LockStatus is what the master last told about the admin lock.
type LockStatus int

// The admin lock is ours, held by another client, or not known: no answer
// yet, or the master could not be asked (see LockState.Last). LockLost: the
// master names us as the holder but refuses our token: it processed a
// renewal whose answer we never got, so the lease is ours with a token we
// do not know, until it lapses.
const (
	LockUnknown LockStatus = iota
	LockOurs
	LockOther
	LockLost
)

func (s LockStatus) String() string {
	switch s {
	case LockOurs:
		return "ours"
	case LockOther:
		return "held elsewhere"
	case LockLost:
		return "ours, token lost"
	default:
		return "unknown"
	}
}

// LockState is the admin lock as last seen.
type LockState struct {
	Status LockStatus
	// Holder is the client the master named as holding it (ours when it is
	// ours); for LockUnknown, the holder of the last definite answer.
	Holder string
	// Since is when the lock became ours, when another holder was first
	// refused us (the master does not tell when it took the lock), or when
	// asking started to fail.
	Since time.Time
	// Last is, for LockUnknown, the last definite status (LockUnknown if
	// the master never answered).
	Last LockStatus
	// Err is why the master could not be asked (LockUnknown only).
	Err error
	// Until is, while the lock is ours or was ours when the master last
	// answered, the local time (with its monotonic reading) until which it
	// surely still is: when the last renewal that succeeded was sent, plus
	// the master's lease, less a margin. Past it, with no renewal
	// confirmed since (the master does not answer, a new master leader
	// that never granted it, a process pause), another client may hold it.
	Until time.Time
	// From is, for a lock granted by a master leader that took over from
	// another one we followed, when it starts to count as ours: SeaweedFS's
	// lease after we moved to it. A new master leader starts with no
	// locks, so it grants ours at once while a process that held this lock
	// (or the shell lock) on the old leader may still believe it does, and
	// answers "not held" for the shell lock until that holder's renewal
	// reaches it; by From every lease of the old leader has lapsed and live
	// holders have renewed on the new one. Zero: at once.
	From time.Time
}

// OursAt reports whether the lock is surely ours at now (a time from the
// same clock as Until, e.g. time.Now()).
func (s LockState) OursAt(now time.Time) bool {
	return s.Status == LockOurs && !now.Before(s.From) && now.Before(s.Until)
}

// lockedByPrefix starts the master's refusal (master_grpc_server_admin.go).
const lockedByPrefix = "already locked by "

// NewAdminLock returns a keeper of the admin lock (AdminLockName)
// identifying itself as client.
func (m *Master) NewAdminLock(client string) *AdminLock {
	return m.NewLock(AdminLockName, client)
}

// NewLock returns a keeper of the master lock name (AdminLockName,
// ShellLockName) identifying itself as client. Every master lock is kept
// the same way (exclusive_locks).
func (m *Master) NewLock(name, client string) *AdminLock {
	return &AdminLock{m: m, name: name, client: client, now: time.Now, changed: make(chan struct{}, 1)}
}

// Name is the master lock this keeper keeps.
func (l *AdminLock) Name() string { return l.name }

// Client is the name this keeper gives the master.
func (l *AdminLock) Client() string { return l.client }

// State is the lock as last seen. A lease granted by a master leader we
// no longer follow counts for nothing from when we moved on: the new
// master leader never granted it, and another process may hold the lock
// there already (it is the keeper's next renewal, on the new leader, that
// tells).
func (l *AdminLock) State() LockState {
	l.mu.Lock()
	st, granted := l.state, l.epoch
	l.mu.Unlock()
	if l.m == nil || st.Status != LockOurs && (st.Status != LockUnknown || st.Last != LockOurs) {
		return st
	}
	epoch, since, _ := l.m.leaderEpoch()
	if epoch == granted {
		return st
	}
	cut := st
	cut.Status, cut.Last, cut.Since = LockUnknown, LockOurs, since
	if since.Before(cut.Until) {
		cut.Until = since
	}
	cut.Err = fmt.Errorf("the SeaweedFS master leader changed to %s after it was granted, which has not granted it yet", l.m.Addr().HTTP)
	return cut
}

// Held reports whether the lock is surely ours now, and the last error.
func (l *AdminLock) Held() (bool, error) {
	st := l.State()
	return st.OursAt(time.Now()), st.Err
}

// Changed is signalled (without blocking; it holds one signal) whenever the
// lock's status or holder changes.
func (l *AdminLock) Changed() <-chan struct{} { return l.changed }

// Run acquires the lock and renews it until ctx ends, then releases it.
// Losing it (master restart, another client holding it) is retried every
// second; State tells the current state.
func (l *AdminLock) Run(ctx context.Context) {
	for {
		_, _, moved := l.m.leaderEpoch()
		l.renew(ctx)
		every := lockRetryEvery
		st := l.State()
		waiting := false
		if st.Status == LockOurs {
			every = lockRenewEvery
			if d := time.Until(st.From); d > 0 && d <= every {
				// Wake when it starts to count, so work resumes then
				// rather than at the next detection round.
				every, waiting = d, true
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			l.release()
			return
		case <-moved:
			// Another master leader is followed: ask it at once rather
			// than stay paused until the next renewal.
			t.Stop()
			l.signal()
		case <-t.C:
			if waiting {
				l.signal()
			}
		}
	}
}

func (l *AdminLock) renew(ctx context.Context) {
	l.mu.Lock()
	token, ts := l.token, l.ts
	l.mu.Unlock()
	sent := l.now()
	// Not cut short when ctx ends: a renewal the master processed hands
	// out a new token, and only with that one can release give the lock
	// back (with the old one the successor waits for the lease to run out).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockRPCTimeout)
	defer cancel()
	// The lock lives in the master leader's memory: after a leader change
	// the call goes to the new leader, which knows no token of ours and
	// grants the lock anew (or names whoever took it there first).
	var resp *master_pb.LeaseAdminTokenResponse
	epoch, followed, err := l.m.callAt(rctx, fmt.Sprintf("lock %q", l.name), true, func(ctx context.Context, c master_pb.SeaweedClient) (err error) {
		resp, err = c.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{
			PreviousToken: token, PreviousLockTime: ts, LockName: l.name, ClientName: l.client,
			Message: "groundskeeper leader",
		})
		return err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	switch holder, refused := lockedBy(err); {
	case err == nil:
		l.token, l.ts = resp.GetToken(), resp.GetLockTsNs()
		l.epoch = epoch
		if !followed {
			// A concurrent call moved on to another master leader while
			// this one granted it: that lease counts for nothing there.
			l.epoch = ^uint64(0)
		}
		var from time.Time
		if e, moved, _ := l.m.leaderEpoch(); e == epoch && e > 1 {
			// Not the first master leader we follow (see LockState.From).
			// The first one found may have just taken over too; that, and
			// two masters both believing they lead, are not covered.
			from = moved.Add(lockLease)
		}
		l.setLocked(LockState{Status: LockOurs, Holder: l.client, Until: sent.Add(lockLease - lockMargin), From: from})
	case refused && holder == l.client:
		// The master renewed for us once without our hearing the answer
		// (a reply lost, a call timed out after it was processed): our
		// token is dead, and nobody, us included, gets the lock until that
		// lease lapses.
		l.token, l.ts = 0, 0
		l.setLocked(LockState{Status: LockLost, Holder: holder})
	case refused:
		// Our token, if we had one, is dead: someone else holds the lock.
		l.token, l.ts = 0, 0
		l.setLocked(LockState{Status: LockOther, Holder: holder})
	default:
		// Keep the token: if our lease is still running, the next renewal
		// with it succeeds.
		l.setLocked(LockState{Status: LockUnknown, Err: err})
	}
}

// setLocked records a new observation, keeping Since while nothing changed.
// Call with l.mu held.
func (l *AdminLock) setLocked(next LockState) {
	prev := l.state
	if next.Status == LockUnknown {
		next.Holder, next.Last, next.Until, next.From = prev.Holder, prev.Status, prev.Until, prev.From
		if prev.Status == LockUnknown {
			next.Last = prev.Last
		}
	}
	if prev.Status == next.Status && prev.Holder == next.Holder && !prev.Since.IsZero() {
		next.Since = prev.Since
	} else {
		next.Since = l.now()
	}
	l.state = next
	if prev.Status != next.Status || prev.Holder != next.Holder {
		l.signal()
	}
}

// signal wakes whoever waits on Changed, without blocking.
func (l *AdminLock) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// lockedBy reports whether err is the master's refusal because another
// client holds the lock, and that client. SeaweedFS never stores the
// holder's message, so the refusal reads "already locked by CLIENT: ".
func lockedBy(err error) (holder string, refused bool) {
	if err == nil {
		return "", false
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return "", false
	}
	msg := se.GRPCStatus().Message()
	rest, ok := strings.CutPrefix(msg, lockedByPrefix)
	if !ok {
		return "", false
	}
	if i := strings.LastIndex(rest, ": "); i >= 0 {
		rest = rest[:i]
	} else {
		rest = strings.TrimSuffix(rest, ":")
	}
	return rest, true
}

// release gives the lock back whenever we hold a token, whatever the last
// renewal said: after a renewal that failed the lease it renewed may still
// run, and our successor would wait for it. A token the master no longer
// knows is ignored by it. The call is detached from the ended context, with
// a short timeout of its own.
func (l *AdminLock) release() {
	l.mu.Lock()
	token, ts := l.token, l.ts
	l.token, l.ts = 0, 0
	l.state = LockState{}
	l.mu.Unlock()
	if token == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockRPCTimeout)
	defer cancel()
	_ = l.m.call(ctx, fmt.Sprintf("release lock %q", l.name), true, func(ctx context.Context, c master_pb.SeaweedClient) error {
		_, err := c.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{PreviousToken: token, PreviousLockTime: ts, LockName: l.name})
		return err
	})
}
