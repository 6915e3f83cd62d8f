package fsm

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func disabled(types ...fsmpb.TaskType) []*fsmpb.TaskTypePolicy {
	var out []*fsmpb.TaskTypePolicy
	for _, t := range types {
		out = append(out, &fsmpb.TaskTypePolicy{Type: t, Disabled: true})
	}
	return out
}

// TestPolicyDefault: a state whose policy was never set answers with the
// default policy (revision 0: nothing paused, every type enabled), and its
// snapshot carries no policy, as earlier builds wrote it.
func TestPolicyDefault(t *testing.T) {
	s := NewState()
	p := s.Policy()
	if p.Revision != 0 || p.Paused || len(p.Types) != 0 {
		t.Fatalf("default policy %v", p)
	}
	for _, typ := range TaskTypes {
		if !PolicyAllows(p, typ) {
			t.Errorf("default policy does not allow %s", TypeName(typ))
		}
	}
	if snap := s.Snapshot(); snap.Policy != nil || snap.PolicyHistory != nil {
		t.Fatalf("the snapshot of a default policy carries %v %v", snap.Policy, snap.PolicyHistory)
	}
}

// TestSetPolicy: a change is stamped with the command's time and identity,
// bumps the revision, is recorded in the history and is stored in
// canonical form; a change from a stale revision is refused (CONFLICT)
// without changing anything; a change that changes nothing records nothing.
func TestSetPolicy(t *testing.T) {
	h := newHarness(t)
	res := h.apply(SetPolicyCmd(&fsmpb.Policy{
		Types: []*fsmpb.TaskTypePolicy{{Type: balance, Disabled: true}, {Type: vacuum}, {Type: ecType, Disabled: true}},
		// Ignored: Apply sets them.
		Revision: 7, UpdatedBy: "mallory", UpdatedAt: 1,
	}, 0, "alice"))
	if res.ErrorCode != codeNone {
		t.Fatalf("refused: %s", res.Error)
	}
	want := &fsmpb.Policy{Revision: 1, Types: disabled(ecType, balance), UpdatedAt: h.now, UpdatedBy: "alice"}
	if !proto.Equal(res.Policy, want) || !proto.Equal(h.s.Policy(), want) {
		t.Fatalf("policy %v (state %v); want %v", res.Policy, h.s.Policy(), want)
	}
	if PolicyAllows(h.s.Policy(), balance) || !PolicyAllows(h.s.Policy(), vacuum) {
		t.Fatalf("balance allowed or vacuum not")
	}
	hist := h.s.PolicyHistory()
	if len(hist) != 1 || hist[0].Revision != 1 || hist[0].By != "alice" || hist[0].At != h.now || hist[0].Summary != "erasure_coding disabled; balance disabled" {
		t.Fatalf("history %v", hist)
	}

	// Bob read revision 0 too: his change is refused, whole.
	res = h.refuse(fsmpb.ErrorCode_ERROR_CODE_CONFLICT, SetPolicyCmd(&fsmpb.Policy{Paused: true}, 0, "bob"))
	if !strings.Contains(res.Error, "revision 1, not 0") || !strings.Contains(res.Error, "alice") {
		t.Fatalf("conflict message %q", res.Error)
	}

	// The same policy again: accepted, nothing recorded.
	before := contentKey(t, h.s)
	res = h.apply(SetPolicyCmd(&fsmpb.Policy{Types: disabled(balance, ecType)}, 1, "carol"))
	if res.ErrorCode != codeNone || res.Policy.Revision != 1 || contentKey(t, h.s) != before {
		t.Fatalf("a change that changes nothing: %v %s, policy %v", res.ErrorCode, res.Error, res.Policy)
	}

	h.ok(SetPolicyCmd(&fsmpb.Policy{Paused: true, PauseReason: "disk swap", Types: disabled(ecType)}, 1, "bob"))
	hist = h.s.PolicyHistory()
	if got := hist[len(hist)-1]; got.Revision != 2 || got.Summary != `paused (reason: disk swap); balance enabled` {
		t.Fatalf("second change %v", got)
	}
}

// TestPauseIgnoresRevision: pause and resume take only paused and the
// reason, whatever the revision, and keep the rest of the policy.
func TestPauseIgnoresRevision(t *testing.T) {
	h := newHarness(t)
	h.ok(SetPolicyCmd(&fsmpb.Policy{Types: disabled(vacuum)}, 0, "alice"))
	h.ok(SetPolicyCmd(&fsmpb.Policy{Types: disabled(vacuum, balance)}, 1, "alice"))
	res := h.apply(PauseCmd(true, "incident 42", "bob"))
	if res.ErrorCode != codeNone {
		t.Fatalf("pause refused: %s", res.Error)
	}
	want := &fsmpb.Policy{Revision: 3, Paused: true, PauseReason: "incident 42", Types: disabled(vacuum, balance), UpdatedAt: h.now, UpdatedBy: "bob"}
	if !proto.Equal(h.s.Policy(), want) {
		t.Fatalf("after pause %v; want %v", h.s.Policy(), want)
	}
	for _, typ := range TaskTypes {
		if PolicyAllows(h.s.Policy(), typ) {
			t.Errorf("paused policy allows %s", TypeName(typ))
		}
	}
	// Pausing again with the same reason records nothing.
	if res := h.apply(PauseCmd(true, "incident 42", "carol")); res.ErrorCode != codeNone || res.Policy.Revision != 3 || !res.Existing {
		t.Fatalf("second pause: %v %s %v", res.ErrorCode, res.Error, res.Policy)
	}
	h.ok(PauseCmd(false, "", "bob"))
	p := h.s.Policy()
	if p.Paused || p.PauseReason != "" || p.Revision != 4 || !PolicyAllows(p, ecType) || PolicyAllows(p, vacuum) {
		t.Fatalf("after resume %v", p)
	}
	if got := h.s.PolicyHistory()[3].Summary; got != "resumed" {
		t.Fatalf("resume summary %q", got)
	}
}

// TestSetPolicyValidation: every mistake is named, in one sentence each,
// and nothing of a refused policy is applied.
func TestSetPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want []string
	}{
		{"no policy", &fsmpb.Command{Body: &fsmpb.Command_SetPolicy{SetPolicy: &fsmpb.SetPolicy{By: "x"}}}, []string{"no policy given"}},
		{"unknown type", SetPolicyCmd(&fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: 99, Disabled: true}}}, 0, "x"), []string{"unknown task type 99"}},
		{"unspecified type", SetPolicyCmd(&fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Disabled: true}}}, 0, "x"), []string{"unknown task type 0"}},
		{"twice", SetPolicyCmd(&fsmpb.Policy{Types: disabled(vacuum, vacuum)}, 0, "x"), []string{"vacuum is given twice"}},
		{"reason without pause", SetPolicyCmd(&fsmpb.Policy{PauseReason: "why"}, 0, "x"), []string{"not paused"}},
		{"two mistakes, half valid", SetPolicyCmd(&fsmpb.Policy{Paused: true, PauseReason: "a\nb", Types: []*fsmpb.TaskTypePolicy{{Type: balance, Disabled: true}, {Type: 42}}}, 0, "x"),
			[]string{"one line", "unknown task type 42"}},
		{"long reason", PauseCmd(true, strings.Repeat("r", MaxPolicyReasonLen+1), "x"), []string{"more than 256"}},
		{"long identity", PauseCmd(true, "", strings.Repeat("b", MaxPolicyByLen+1)), []string{"identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			res := h.refuse(fsmpb.ErrorCode_ERROR_CODE_INVALID, tc.cmd)
			for _, w := range tc.want {
				if !strings.Contains(res.Error, w) {
					t.Errorf("error %q does not say %q", res.Error, w)
				}
			}
			if h.s.Policy().Revision != 0 {
				t.Fatalf("refused policy applied: %v", h.s.Policy())
			}
		})
	}
}

// TestPolicyHistoryBounded: the history keeps the newest MaxPolicyHistory
// changes, in revision order.
func TestPolicyHistoryBounded(t *testing.T) {
	h := newHarness(t)
	for i := range MaxPolicyHistory + 7 {
		h.ok(PauseCmd(i%2 == 0, "", "op"))
	}
	hist := h.s.PolicyHistory()
	if len(hist) != MaxPolicyHistory {
		t.Fatalf("history of %d changes; want %d", len(hist), MaxPolicyHistory)
	}
	if hist[0].Revision != 8 || hist[len(hist)-1].Revision != MaxPolicyHistory+7 {
		t.Fatalf("history spans revisions %d..%d", hist[0].Revision, hist[len(hist)-1].Revision)
	}
}

// TestPolicySnapshotRoundTrip: the policy and its history survive a
// snapshot (and a restore's checks), and the restored state hashes alike
// and goes on counting revisions.
func TestPolicySnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.ok(SetPolicyCmd(&fsmpb.Policy{Types: disabled(balance)}, 0, "alice"))
	h.ok(PauseCmd(true, "maintenance window", "bob"))
	snap := h.s.Snapshot()
	if snap.Policy == nil || len(snap.PolicyHistory) != 2 {
		t.Fatalf("snapshot policy %v history %v", snap.Policy, snap.PolicyHistory)
	}
	b, err := MarshalSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back fsmpb.StateSnapshot
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := CheckCounters(&back, h.idx); err != nil {
		t.Fatalf("restore check: %v", err)
	}
	r, err := FromSnapshot(&back)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash() != h.s.Hash() || !proto.Equal(r.Policy(), h.s.Policy()) {
		t.Fatalf("restored policy %v; want %v", r.Policy(), h.s.Policy())
	}
	b2, _ := EncodeAgreed(h.now+1, CurrentVersion, SetPolicyCmd(&fsmpb.Policy{}, 2, "carol"))
	cmd, _ := Decode(b2)
	if res := r.Apply(h.idx+1, cmd); res.ErrorCode != codeNone || r.Policy().Revision != 3 || len(r.PolicyHistory()) != 3 {
		t.Fatalf("after restore: %v %s, revision %d", res.ErrorCode, res.Error, r.Policy().Revision)
	}
}

// TestCheckPolicyRefuses: a restored snapshot's policy must be one
// SetPolicy could have left.
func TestCheckPolicyRefuses(t *testing.T) {
	ok := &fsmpb.Policy{Revision: 2, Types: disabled(vacuum)}
	hist := []*fsmpb.PolicyChange{{Revision: 1}, {Revision: 2}}
	if err := checkPolicy(ok, hist); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	for name, tc := range map[string]struct {
		p    *fsmpb.Policy
		hist []*fsmpb.PolicyChange
	}{
		"history without policy": {nil, hist},
		"revision 0":             {&fsmpb.Policy{}, []*fsmpb.PolicyChange{{}}},
		"unsorted types":         {&fsmpb.Policy{Revision: 2, Types: disabled(balance, vacuum)}, hist},
		"default entry":          {&fsmpb.Policy{Revision: 2, Types: []*fsmpb.TaskTypePolicy{{Type: vacuum}}}, hist},
		"unknown type":           {&fsmpb.Policy{Revision: 2, Types: disabled(77)}, hist},
		"history gap":            {ok, []*fsmpb.PolicyChange{{Revision: 0}, {Revision: 2}}},
		"history behind":         {ok, hist[:1]},
		"no history":             {ok, nil},
	} {
		if err := checkPolicy(tc.p, tc.hist); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSetPolicyNeedsPolicyVersion: SetPolicy is written as version 4
// (PolicyVersion), and stamped with an older version it is refused
// without changing anything, as a build that predates it would not apply
// it either (it halts on the unknown body).
func TestSetPolicyNeedsPolicyVersion(t *testing.T) {
	if PolicyVersion != RepairVersion || PolicyVersion > CurrentVersion {
		t.Fatalf("PolicyVersion %d, RepairVersion %d, CurrentVersion %d", PolicyVersion, RepairVersion, CurrentVersion)
	}
	for _, cmd := range []*fsmpb.Command{SetPolicyCmd(&fsmpb.Policy{Paused: true}, 0, "x"), PauseCmd(true, "", "x")} {
		if got := RequiredVersion(cmd); got != PolicyVersion {
			t.Fatalf("RequiredVersion = %d; want %d", got, PolicyVersion)
		}
		b, err := Encode(1, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if v := peekVersion(b); v != PolicyVersion {
			t.Fatalf("written as version %d", v)
		}
		dec, _ := Decode(b)
		dec.Version = OwnerVersion
		s := NewState()
		before := contentKey(t, s)
		if res := s.Apply(1, dec); res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_INVALID || contentKey(t, s) != before {
			t.Fatalf("version-3 SetPolicy: %v %q", res.ErrorCode, res.Error)
		}
		// A build that stops at version 3 does not apply it at all.
		old := NewState()
		old.maxVersion = OwnerVersion
		dec.Version = PolicyVersion
		if res := old.Apply(1, dec); res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_UNKNOWN_VERSION {
			t.Fatalf("version-3 build: %v %q", res.ErrorCode, res.Error)
		}
	}
}
