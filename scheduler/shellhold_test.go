package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

func TestShellHoldDecide(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	base := func(f func(*ShellHoldState)) ShellHoldState {
		s := ShellHoldState{Now: now, Yield: 2 * time.Second, Fairness: time.Minute}
		f(&s)
		return s
	}
	for _, c := range []struct {
		name               string
		st                 ShellHoldState
		keep, assign, send bool
		why                string
	}{
		{"idle, no work: not taken", base(func(s *ShellHoldState) {}), false, false, false, ""},
		{"work to assign: taken before assigning", base(func(s *ShellHoldState) { s.Want = true }), true, false, false, "taking"},
		{"taking: wait for it", base(func(s *ShellHoldState) { s.Want, s.Keeping = true, true }), true, false, false, "taking"},
		{"ours: assign", base(func(s *ShellHoldState) {
			s.Want, s.Keeping, s.Held, s.HeldSince = true, true, true, ago(time.Second)
		}), true, true, true, ""},
		{"ours, attempts in flight: kept, more assigned", base(func(s *ShellHoldState) {
			s.InFlight, s.Want, s.Keeping, s.Held, s.HeldSince = 2, true, true, true, ago(30*time.Second)
		}), true, true, true, ""},
		{"attempts in flight, nothing more to assign: kept", base(func(s *ShellHoldState) {
			s.InFlight, s.Keeping, s.Held, s.HeldSince = 1, true, true, ago(time.Second)
		}), true, true, true, ""},
		{"attempts in flight, lock not ours (held elsewhere, a new master leader): kept trying, nothing new", base(func(s *ShellHoldState) {
			s.InFlight, s.Keeping = 1, true
		}), true, false, false, "taking"},
		{"attempts in flight (a new leader inherits them): taken", base(func(s *ShellHoldState) { s.InFlight = 1 }), true, false, false, "taking"},
		{"nothing in flight, nothing to assign: released", base(func(s *ShellHoldState) {
			s.Keeping, s.Held, s.HeldSince, s.IdleSince = true, true, ago(10*time.Second), now
		}), false, false, false, ""},
		{"held idle with work that does not go out: released after the grace", base(func(s *ShellHoldState) {
			s.Want, s.Keeping, s.Held, s.HeldSince, s.IdleSince = true, true, true, ago(10*time.Second), ago(shellIdleGrace)
		}), false, false, false, "nothing went out"},
		{"held idle within the grace: kept", base(func(s *ShellHoldState) {
			s.Want, s.Keeping, s.Held, s.HeldSince, s.IdleSince = true, true, true, ago(10*time.Second), ago(time.Second)
		}), true, true, true, ""},
		{"yield window after our release: left free", base(func(s *ShellHoldState) {
			s.Want, s.ReleasedAt = true, ago(1500*time.Millisecond)
		}), false, false, false, "leaving"},
		{"yield window over: taken again", base(func(s *ShellHoldState) {
			s.Want, s.ReleasedAt = true, ago(2*time.Second)
		}), true, false, false, "taking"},
		{"releasing: wait for the release", base(func(s *ShellHoldState) {
			s.Want, s.Keeping, s.Releasing, s.HeldSince = true, true, true, ago(time.Second)
		}), false, false, false, "releasing"},
		{"releasing with attempts in flight (a new assignment raced the release): taken again after", base(func(s *ShellHoldState) {
			s.InFlight, s.Keeping, s.Releasing = 1, true, true
		}), true, false, false, "taking"},
		{"fairness window passed, attempts in flight: kept, nothing new, re-sends go on", base(func(s *ShellHoldState) {
			s.InFlight, s.Want, s.Keeping, s.Held, s.HeldSince = 3, true, true, true, ago(time.Minute+time.Millisecond)
		}), true, false, true, "longer than 1m0s"},
		{"fairness window passed, nothing in flight: released though work waits", base(func(s *ShellHoldState) {
			s.Want, s.Keeping, s.Held, s.HeldSince = true, true, true, ago(2*time.Minute)
		}), false, false, false, "longer than 1m0s"},
		{"fairness exactly at the window: not yet", base(func(s *ShellHoldState) {
			s.InFlight, s.Want, s.Keeping, s.Held, s.HeldSince = 1, true, true, true, ago(time.Minute)
		}), true, true, true, ""},
		{"fairness off: held as long as work runs", base(func(s *ShellHoldState) {
			s.InFlight, s.Want, s.Keeping, s.Held, s.HeldSince, s.Fairness = 1, true, true, true, ago(time.Hour), -1
		}), true, true, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := ShellHoldDecide(c.st)
			if d.Keep != c.keep || d.Assign != c.assign || d.Resend != c.send {
				t.Fatalf("keep, assign, resend = %v, %v, %v; want %v, %v, %v (%q)", d.Keep, d.Assign, d.Resend, c.keep, c.assign, c.send, d.Why)
			}
			if c.why == "" && d.Why != "" && d.Assign {
				t.Fatalf("assigning, yet why = %q", d.Why)
			}
			if c.why != "" && !strings.Contains(d.Why, c.why) {
				t.Fatalf("why = %q, want it to mention %q", d.Why, c.why)
			}
		})
	}
}

// shellPoller is a `weed shell` user's `lock`: it asks the master for the
// shell lock every 500 ms (exclusive_locks asks about every second) until
// it gets it, and then keeps it until released.
type shellPoller struct {
	got  chan time.Time
	stop chan struct{}
	done chan struct{}
}

// stopAndRelease stops asking and releases the lock if it was got, as
// `unlock` does.
func (p *shellPoller) stopAndRelease() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func pollShellLock(t *testing.T, masterGRPC string) *shellPoller {
	t.Helper()
	conn, err := grpc.NewClient(masterGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p := &shellPoller{got: make(chan time.Time, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c := master_pb.NewSeaweedClient(conn)
	t.Cleanup(func() { p.stopAndRelease(); conn.Close() })
	go func() {
		defer close(p.done)
		var token, ts int64
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := c.LeaseAdminToken(ctx, &master_pb.LeaseAdminTokenRequest{PreviousToken: token, PreviousLockTime: ts,
				LockName: seaweed.ShellLockName, ClientName: "shell"})
			cancel()
			if err == nil {
				if token == 0 {
					p.got <- time.Now()
				}
				token, ts = resp.Token, resp.LockTsNs
			}
			select {
			case <-p.stop:
				if token != 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, _ = c.ReleaseAdminToken(ctx, &master_pb.ReleaseAdminTokenRequest{PreviousToken: token, PreviousLockTime: ts, LockName: seaweed.ShellLockName})
					cancel()
				}
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return p
}

// TestShellLockHeldAroundAttempts: with HoldShellLock the leader takes
// SeaweedFS's shell lock before it assigns and keeps it while the attempt
// runs, so a `weed shell` `lock` issued meanwhile waits; once the attempt
// ends the lock is released and left free for the yield window, which the
// waiting shell uses; while the shell holds it nothing new goes out (our
// own hold never counted as held elsewhere), and once it unlocks, the
// leader takes the lock again and assigns.
func TestShellLockHeldAroundAttempts(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.MasterRefillDelay = 2, 100*time.Millisecond
	c := simtest.Start(t, cfg)
	first, second := volumePair(t, c, sim.VolumeSpec{Size: 4 << 20, FileCount: 400})
	master := simtest.Master(t, c)
	lcfg := vacuumConfig
	lcfg.HoldShellLock, lcfg.ShellYield = true, 2*time.Second
	s, f := newLeader(master, lcfg)
	sess := addVacuumWorker(s)
	runScheduler(t, s)
	shellHolder := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		h, held, err := master.LockHolder(ctx, seaweed.ShellLockName)
		if err != nil || !held {
			return fmt.Sprint(err)
		}
		return h
	}

	submitManualVacuum(t, s, first)
	var spec *pb.TaskSpec
	select {
	case m := <-sess.out:
		spec = m.GetAssign().GetSpec()
	case <-time.After(20 * time.Second):
		t.Fatal("the manual vacuum was not assigned")
	}
	// Taken before the assignment went out, not after.
	if h := shellHolder(); h != "groundskeeper a1" {
		t.Fatalf("shell lock holder while our attempt is assigned: %s, want groundskeeper a1", h)
	}
	shell := pollShellLock(t, c.MasterServerAddress().GRPC)
	time.Sleep(1500 * time.Millisecond) // three of the shell's asks, all refused
	select {
	case <-shell.got:
		t.Fatal("the shell got the lock while our attempt was running")
	default:
	}
	st, _ := s.Status()
	if !st.ShellLockOurs || st.ShellLockOursSince == 0 || st.ShellLockHolder != "" || st.AssignmentPaused {
		t.Fatalf("status while we hold the shell lock: %v; want ours, not held elsewhere, not paused", st)
	}

	ended := time.Now()
	if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{
		TaskId: spec.GetTask().GetId(), Fence: spec.GetTask().GetFence(), Change: &fsmpb.CapacityChange{OldSize: 2, NewSize: 1}}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-shell.got:
		if at.Before(ended) {
			t.Fatalf("the shell got the lock at %s, before our attempt ended at %s", at, ended)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the waiting shell did not get the lock after our attempt ended; holder %s", shellHolder())
	}

	// The shell holds it: work submitted now waits.
	submitManualVacuum(t, s, second)
	waitFivePolls(t, s, "the shell lock held by the shell", func(st *pb.Maintenance) bool {
		return st.ShellLockHolder == "shell" && st.AssignmentPaused && !st.ShellLockOurs
	})
	if byVol := taskStates(f); byVol[second] != fsmpb.TaskState_TASK_STATE_PENDING {
		t.Fatalf("while the shell holds the lock: %v; want the second vacuum pending", byVol)
	}
	for len(sess.out) > 0 {
		if m := <-sess.out; m.GetAssign() != nil {
			t.Fatalf("assigned while the shell holds the lock: %v", m)
		}
	}

	// The shell unlocks: we take the lock again and the work goes out.
	shell.stopAndRelease()
	deadline := time.After(20 * time.Second)
	for spec = nil; spec == nil; {
		select {
		case m := <-sess.out:
			if a := m.GetAssign(); a != nil {
				if id := a.GetSpec().GetTask().GetVolumeId(); id != second {
					t.Fatalf("assigned volume %d, want %d", id, second)
				}
				spec = a.GetSpec()
			}
		case <-deadline:
			t.Fatal("the second vacuum was not assigned after the shell unlocked")
		}
	}
	if h := shellHolder(); h != "groundskeeper a1" {
		t.Fatalf("shell lock holder while our second attempt is assigned: %s", h)
	}

	// Nothing left in flight: the lock is released, and an idle leader
	// neither holds it nor says it is paused.
	if err := s.Handle(context.Background(), sess, &pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{
		TaskId: spec.GetTask().GetId(), Fence: spec.GetTask().GetFence(), Change: &fsmpb.CapacityChange{OldSize: 2, NewSize: 1}}}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the shell lock released once nothing is in flight", func() (bool, string) {
		st, _ := s.Status()
		h := shellHolder()
		return !st.ShellLockOurs && !st.AssignmentPaused && st.Paused == "" && h == "<nil>", fmt.Sprintf("holder %s; %v", h, st)
	})
}
