package scheduler

import (
	"strings"
	"testing"
	"time"
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
