package testutil

import (
	"fmt"
	"testing"
	"time"
)

// PollEvery is how often Eventually and EventuallyTrue check their
// condition.
const PollEvery = 20 * time.Millisecond

// Eventually checks cond every PollEvery until it holds, and fails the test
// once within has passed, with what it waited for and cond's last reason.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (ok bool, reason string)) {
	t.Helper()
	Poll(t, within, PollEvery, what, cond)
}

// EventuallyTrue is Eventually for a condition that gives no reason. Should
// it time out, each detail is called once and what it says is added to the
// failure: for descriptions too costly to build on every check.
func EventuallyTrue(t testing.TB, within time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	if _, _, ok := poll(within, PollEvery, func() (bool, string) { return cond(), "" }); ok {
		return
	}
	msg := fmt.Sprintf("timed out after %s waiting for %s", within, what)
	for _, d := range detail {
		msg += ": " + d()
	}
	t.Fatal(msg)
}

// Poll checks cond every every until it holds and returns how long that
// took; once within has passed it fails the test with what it waited for
// and cond's last reason.
func Poll(t testing.TB, within, every time.Duration, what string, cond func() (ok bool, reason string)) time.Duration {
	t.Helper()
	took, reason, ok := poll(within, every, cond)
	if !ok {
		t.Fatalf("timed out after %s waiting for %s; last check: %s", within, what, reason)
	}
	return took
}

// poll checks cond every every until it holds (ok, and how long that took)
// or within has passed (not ok, and cond's last reason).
func poll(within, every time.Duration, cond func() (bool, string)) (took time.Duration, reason string, ok bool) {
	began := time.Now()
	deadline := began.Add(within)
	for {
		ok, reason := cond()
		if ok {
			return time.Since(began), "", true
		}
		if time.Now().After(deadline) {
			return time.Since(began), reason, false
		}
		time.Sleep(every)
	}
}
