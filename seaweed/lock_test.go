package seaweed_test

import (
	"context"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// runLock runs the lock keeper l until the test ends, or until stop.
func runLock(t *testing.T, l *seaweed.AdminLock) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func waitLock(t *testing.T, l *seaweed.AdminLock, what string, cond func(seaweed.LockState) bool) seaweed.LockState {
	t.Helper()
	return waitLockWithin(t, l, 20*time.Second, what, cond)
}

// waitLockWithin polls cond on the lock's state, waking on each of its
// changes, until it holds or within has passed.
func waitLockWithin(t *testing.T, l *seaweed.AdminLock, within time.Duration, what string, cond func(seaweed.LockState) bool) seaweed.LockState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := l.State()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: lock state %+v", what, st)
		}
		select {
		case <-l.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestAdminLockKeeper against the simulated master: refused while another
// client holds the lock (named), ours once it is released; a failed
// renewal keeps the token, so the next one, within the lease, still
// renews it instead of being refused as "already locked by" ourselves; a
// master restart, which forgets the lock, gets it back.
func TestAdminLockKeeper(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.Servers = 1 // the lease: 10 s, as SeaweedFS
	c := simtest.Start(t, cfg)
	conn, err := grpc.NewClient(c.MasterServerAddress().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	mc := master_pb.NewSeaweedClient(conn)
	ctx := context.Background()
	other, err := mc.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{LockName: seaweed.AdminLockName, ClientName: "admin-server"})
	if err != nil {
		t.Fatal(err)
	}

	m := simtest.Master(t, c)
	l := m.NewAdminLock("groundskeeper a1")
	stop := runLock(t, l)

	st := waitLock(t, l, "the lock refused to us, held by admin-server", func(s seaweed.LockState) bool {
		return s.Status == seaweed.LockOther && s.Holder == "admin-server"
	})
	if st.Since.IsZero() {
		t.Errorf("held elsewhere with no since: %+v", st)
	}
	if _, err := mc.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{LockName: seaweed.AdminLockName, PreviousToken: other.Token, PreviousLockTime: other.LockTsNs}); err != nil {
		t.Fatal(err)
	}
	waitLock(t, l, "the lock ours once released", func(s seaweed.LockState) bool { return s.Status == seaweed.LockOurs })

	// One renewal fails; the next (a second later, well within the lease)
	// must renew with the kept token.
	f := c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "LeaseAdminToken", FailNext: 1})
	waitLock(t, l, "a failed renewal to leave the lock unknown, last ours", func(s seaweed.LockState) bool {
		return s.Status == seaweed.LockUnknown && s.Last == seaweed.LockOurs && s.Err != nil
	})
	st = waitLock(t, l, "the next renewal to succeed", func(s seaweed.LockState) bool { return s.Status != seaweed.LockUnknown })
	if st.Status != seaweed.LockOurs {
		t.Fatalf("after one failed renewal within the lease the lock is %+v; want ours (the token kept)", st)
	}
	if f.Fired() != 1 {
		t.Fatalf("the fault fired %d times", f.Fired())
	}

	if err := c.RestartMaster(); err != nil {
		t.Fatal(err)
	}
	// The restarted master forgot the lock; the next renewal takes it anew.
	waitLock(t, l, "the restarted master to name us as the holder", func(s seaweed.LockState) bool {
		holder, held := c.AdminLock(seaweed.AdminLockName)
		return held && holder == "groundskeeper a1" && s.Status == seaweed.LockOurs
	})

	// Leaving releases it at once.
	stop()
	if _, held := c.AdminLock(seaweed.AdminLockName); held {
		t.Fatal("the lock is still held after the keeper stopped")
	}
}

// TestAdminLockReleasedAfterFailedRenewal: a keeper whose last renewal
// failed still holds a lease the master granted, and one that stops while a
// renewal is in flight holds the lease that renewal granted; either way
// stopping releases the lock at once instead of leaving the next leader to
// wait for the lease to run out.
func TestAdminLockReleasedAfterFailedRenewal(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"renewal failed", "stopped during a renewal"} {
		t.Run(tc, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Servers = 1 // the lease: 10 s, as SeaweedFS
			c := simtest.Start(t, cfg)
			m := simtest.Master(t, c)
			l := m.NewAdminLock("groundskeeper a1")
			stop := runLock(t, l)
			waitLock(t, l, "the lock ours", func(s seaweed.LockState) bool { return s.Status == seaweed.LockOurs })

			if tc == "renewal failed" {
				c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "LeaseAdminToken", Err: status.Error(codes.Unavailable, "sim: master unreachable")})
				waitLock(t, l, "a failed renewal", func(s seaweed.LockState) bool { return s.Status == seaweed.LockUnknown })
			} else {
				// The master renews (a new token) but answers slowly; the
				// keeper is stopped meanwhile.
				calls := c.CallCount("LeaseAdminToken")
				c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "LeaseAdminToken", Latency: time.Second, After: true})
				waitLock(t, l, "a renewal in flight", func(seaweed.LockState) bool { return c.CallCount("LeaseAdminToken") > calls })
			}
			stop()
			if holder, held := c.AdminLock(seaweed.AdminLockName); held {
				t.Fatalf("the lock is still held by %q after the keeper stopped; want it released", holder)
			}
		})
	}
}

// TestAdminLockTokenLost: a renewal the master processed but whose answer
// was lost leaves the master naming us as the holder of a token we do not
// know; the keeper says so (ours, token lost), not that another process
// holds it, and takes the lock anew once that lease lapses.
func TestAdminLockTokenLost(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.AdminLockDuration = 1, 3*time.Second
	c := simtest.Start(t, cfg)
	m := simtest.Master(t, c)
	l := m.NewAdminLock("groundskeeper a1")
	runLock(t, l)
	waitLock(t, l, "the lock ours", func(s seaweed.LockState) bool { return s.Status == seaweed.LockOurs })

	c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "LeaseAdminToken", FailNext: 1, After: true})
	st := waitLock(t, l, "a renewal refused for a token the master replaced", func(s seaweed.LockState) bool {
		return s.Status != seaweed.LockOurs && s.Status != seaweed.LockUnknown
	})
	if st.Status != seaweed.LockLost || st.Status.String() != "ours, token lost" || st.Holder != "groundskeeper a1" || st.OursAt(time.Now()) {
		t.Fatalf("after a renewal whose answer was lost the lock is %+v (%v); want ours, token lost, named groundskeeper a1, not held", st, st.Status)
	}
	waitLock(t, l, "the lock ours again once the lost lease lapsed", func(s seaweed.LockState) bool { return s.Status == seaweed.LockOurs })
}

// TestAdminLockUntil: the lock counts as ours until the master's lease
// (10 s) less a margin (1.5 s) after the successful renewal was SENT, not
// answered: a slow answer shortens what it confirms.
func TestAdminLockUntil(t *testing.T) {
	t.Parallel()
	cfg := sim.DefaultConfig()
	cfg.Servers = 1
	c := simtest.Start(t, cfg)
	m := simtest.Master(t, c)
	c.InjectFault(sim.Fault{Server: sim.MasterName, Method: "LeaseAdminToken", Latency: time.Second})
	l := m.NewAdminLock("groundskeeper a1")
	start := time.Now()
	runLock(t, l)
	st := waitLock(t, l, "the lock ours", func(s seaweed.LockState) bool { return s.Status == seaweed.LockOurs })
	seen := time.Now()
	const valid = 10*time.Second - 1500*time.Millisecond
	// Sent at or after start, and at least the injected second before the
	// answer was seen.
	if st.Until.Before(start.Add(valid)) || st.Until.After(seen.Add(valid-time.Second)) {
		t.Fatalf("ours until %v after start (seen ours %v after start); want between %v and %v", st.Until.Sub(start), seen.Sub(start), valid, seen.Sub(start)+valid-time.Second)
	}
	if !st.OursAt(st.Until.Add(-time.Millisecond)) || st.OursAt(st.Until) {
		t.Fatalf("OursAt disagrees with Until %v", st.Until)
	}
}
