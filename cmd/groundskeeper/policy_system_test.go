package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
)

// TestSystemCtlPolicy: the policy commands end to end against three
// admins: set, show (identical through each admin), pause and status,
// resume, history; a change from a stale revision is refused.
func TestSystemCtlPolicy(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(1))
	s.StartAdmins(admintest.SchedConfig())

	out, _, err := s.ctlRun("policy", "set", "balance.enabled=false", "vacuum.enabled=true")
	if err != nil || !strings.Contains(out, "policy revision 1: balance disabled") {
		t.Fatalf("policy set: %q, %v", out, err)
	}
	var shown []string
	for _, addr := range s.GRPCAddrs() {
		var o, e strings.Builder
		if err := runCtlIO([]string{"--admin", addr, "--timeout", "10s", "policy", "show", "--json"}, &o, &e); err != nil {
			t.Fatalf("policy show via %s: %v (%s)", addr, err, e.String())
		}
		var j policyJSON
		if err := json.Unmarshal([]byte(o.String()), &j); err != nil || j.Revision != 1 || j.Types["balance"] || !j.Types["vacuum"] {
			t.Fatalf("policy show --json via %s: %+v (%v)", addr, j, err)
		}
		shown = append(shown, o.String())
	}
	if shown[0] != shown[1] || shown[1] != shown[2] {
		t.Errorf("admins answer differently: %q", shown)
	}

	if out, _, err = s.ctlRun("pause", "--reason", "disk swap"); err != nil || !strings.Contains(out, "maintenance paused (policy revision 2)") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	if out, _, err = s.ctlRun("status"); err != nil || !strings.Contains(out, "maintenance: PAUSED (disk swap, by plaintext from 127.0.0.1") ||
		!strings.Contains(out, "disabled by policy: balance") {
		t.Fatalf("status while paused: %q, %v", out, err)
	}
	if out, _, err = s.ctlRun("resume"); err != nil || !strings.Contains(out, "maintenance resumed (policy revision 3)") {
		t.Fatalf("resume: %q, %v", out, err)
	}
	out, _, err = s.ctlRun("policy", "history")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1  ", "balance disabled", "paused (reason: disk swap)", "resumed", "plaintext from 127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy history %q does not show %q", out, want)
		}
	}

	// Mistakes: each named, nothing changed.
	_, _, err = s.ctlRun("policy", "set", "reason=why", "frob.enabled=true")
	wantSentence(t, "policy set with mistakes", err, "nothing changed", "frob")
	_, _, err = s.ctlRun("policy", "set", "reason=why")
	wantSentence(t, "a reason without a pause", err, "nothing changed", "not paused")
	if out, _, _ := s.ctlRun("policy", "show", "--json"); !strings.Contains(out, `"revision": 3`) {
		t.Errorf("a refused set changed the policy: %s", out)
	}
}
