package seaweed

import "testing"

func TestRefillGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		agree bool
		polls []int
		want  []Verdict
	}{
		{"first topology trusted at once", false, []int{4, 4}, []Verdict{Trusted, Trusted}},
		{"a new leader waits for two agreeing polls", true, []int{2, 3, 3, 3}, []Verdict{Waiting, Waiting, Trusted, Trusted}},
		{"empty is never trusted", false, []int{0, 0, 4}, []Verdict{Refilling, Refilling, Trusted}},
		{"growth is trusted", false, []int{4, 5, 6}, []Verdict{Trusted, Trusted, Trusted}},
		{"a restarted master refilling", false, []int{6, 0, 2, 4, 6}, []Verdict{Trusted, Refilling, Refilling, Refilling, Trusted}},
		{"a smaller count that holds three polls", false, []int{6, 5, 5, 5, 5}, []Verdict{Trusted, Refilling, Refilling, Smaller, Trusted}},
		{"a count still changing is not trusted", false, []int{6, 3, 4, 5, 4, 4}, []Verdict{Trusted, Refilling, Refilling, Refilling, Refilling, Refilling}},
	} {
		g := RefillGuard{Agree: tc.agree}
		for i, n := range tc.polls {
			if got := g.Trust(n); got != tc.want[i] {
				t.Errorf("%s: poll %d (%d servers) = %v, want %v", tc.name, i, n, got, tc.want[i])
			}
		}
	}
}

// TestRefillGuardLeaderChanged: a new master leader's smaller topology is
// judged afresh: the old leader's polls at the same count do not make it
// accepted sooner, and it is trusted once it reaches the expected count.
func TestRefillGuardLeaderChanged(t *testing.T) {
	t.Parallel()
	var g RefillGuard
	if v := g.Trust(3); v != Trusted {
		t.Fatalf("first topology: %v", v)
	}
	for i := 0; i < RefillPolls-1; i++ {
		if v := g.Trust(2); v != Refilling {
			t.Fatalf("old leader, a server fewer, poll %d: %v, want refilling", i, v)
		}
	}
	g.LeaderChanged()
	for i := 0; i < RefillPolls-1; i++ {
		if v := g.Trust(2); v != Refilling {
			t.Fatalf("new leader at 2 of 3 servers, poll %d: %v, want refilling", i, v)
		}
	}
	if v := g.Trust(3); v != Trusted || g.Expected() != 3 {
		t.Fatalf("new leader refilled: %v (expected %d), want trusted at 3", v, g.Expected())
	}
}
