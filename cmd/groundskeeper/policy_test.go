package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestPolicySettings: KEY=VALUE settings apply to the current policy, and
// every mistake is named once, with nothing applied.
func TestPolicySettings(t *testing.T) {
	paused := &fsmpb.Policy{Revision: 3, Paused: true, PauseReason: "incident", Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}}}
	for _, tc := range []struct {
		name     string
		from     *fsmpb.Policy
		settings []string
		want     *fsmpb.Policy
	}{
		{"pause with reason", &fsmpb.Policy{}, []string{"paused=true", "reason=disk swap"}, &fsmpb.Policy{Paused: true, PauseReason: "disk swap"}},
		{"disable and enable", paused, []string{"vacuum.enabled=false", "balance.enabled=true"},
			&fsmpb.Policy{Paused: true, PauseReason: "incident", Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, Disabled: true}}}},
		{"resume drops the reason", paused, []string{"paused=false"}, &fsmpb.Policy{Types: paused.Types}},
		{"ec alias", &fsmpb.Policy{}, []string{"EC.enabled=0"}, &fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, Disabled: true}}}},
	} {
		ps, errs := parsePolicySettings(tc.settings)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", tc.name, errs)
		}
		got, errs := ps.apply(tc.from)
		if len(errs) > 0 || !proto.Equal(got, tc.want) {
			t.Errorf("%s: %v %v; want %v", tc.name, got, errs, tc.want)
		}
	}

	_, errs := parsePolicySettings([]string{"paused=maybe", "colour=blue", "vacuum.enabled=true", "vacuum.enabled=false", "frob.enabled=true", "novalue"})
	if len(errs) != 5 {
		t.Fatalf("%d mistakes named; want 5: %q", len(errs), errs)
	}
	for i, w := range []string{"want true or false", `unknown key "colour"`, "vacuum.enabled is given twice", `unknown task type "frob"`, "not KEY=VALUE"} {
		if !strings.Contains(errs[i], w) {
			t.Errorf("mistake %d %q does not say %q", i, errs[i], w)
		}
	}
	ps, _ := parsePolicySettings([]string{"reason=why"})
	if _, errs := ps.apply(&fsmpb.Policy{}); len(errs) != 1 || !strings.Contains(errs[0], "not paused") {
		t.Errorf("a reason without a pause: %q", errs)
	}
}

// TestCtlPolicyUsage: mistakes in the policy commands are usage errors
// (exit 2) in one line, found before any admin is contacted.
func TestCtlPolicyUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "set"}, "at least one KEY=VALUE"},
		{[]string{"policy", "set", "paused=perhaps", "nope=1"}, "nothing changed"},
		{[]string{"policy", "frob"}, "want show, set, edit or history"},
		{[]string{"policy", "history", "x"}, "unexpected argument"},
		{[]string{"pause", "now"}, "unexpected argument"},
		{[]string{"resume", "--bogus"}, "bogus"},
	} {
		var out bytes.Buffer
		err := runCtlIO(append([]string{"--admin", "127.0.0.1:1", "--timeout", time.Second.String()}, tc.args...), &out, &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", tc.args, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q, want one line mentioning %q", tc.args, msg, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on stdout", tc.args, out.String())
		}
	}
}

// TestPrintStatusPolicy: ctl status shows a pause with its reason, who
// and when, and the types the policy disables; --json carries the policy.
func TestPrintStatusPolicy(t *testing.T) {
	at := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	st := &pb.StatusResponse{NodeId: "a1", LeaderId: "a1", Policy: &fsmpb.Policy{Revision: 4, Paused: true, PauseReason: "disk swap",
		UpdatedBy: "alice (operator)", UpdatedAt: at.UnixNano(), Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}}}}
	var text bytes.Buffer
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"maintenance: PAUSED (disk swap, by alice (operator), 2026-12-03T11:00:00Z)",
		"disabled by policy: balance",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status %q does not show %q", text.String(), want)
		}
	}
	text.Reset()
	st.Policy = &fsmpb.Policy{}
	if err := printStatus(&ctlOpts{out: &text}, st); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "maintenance:") || strings.Contains(text.String(), "disabled by policy") {
		t.Errorf("status of the default policy mentions it: %q", text.String())
	}
	text.Reset()
	st.Policy.Paused = true
	if err := printStatus(&ctlOpts{out: &text, json: true}, st); err != nil {
		t.Fatal(err)
	}
	var j statusJSON
	if err := json.Unmarshal(text.Bytes(), &j); err != nil || j.Policy == nil || !j.Policy.Paused || !j.Policy.Types["vacuum"] {
		t.Errorf("status --json policy %+v (%v)", j.Policy, err)
	}
}
