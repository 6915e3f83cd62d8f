package fsm

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

// TestValidatePolicyFields: each mistake in the version-5 fields gets one
// sentence, and a valid policy none.
func TestValidatePolicyFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *fsmpb.Policy
		want []string // substrings, one per sentence, in order
	}{
		{"valid", &fsmpb.Policy{
			Thresholds:         &fsmpb.PolicyThresholds{VacuumGarbageRatio: f64(0.4), EcQuietSeconds: i64(0), RepairAfterSeconds: i64(600)},
			IncludeCollections: []string{"", "photos"}, ExcludeCollections: []string{"tmp"},
			ExcludeDataCenters: []string{"dc2"}, ExcludeRacks: []string{"dc1/r3"}, ExcludeServers: []string{"10.0.0.1:8080"},
			Caps:     &fsmpb.PolicyCaps{Global: 10, PerServer: 2, PerCollection: 4},
			Types:    []*fsmpb.TaskTypePolicy{{Type: vacuum, MaxConcurrent: 3}},
			Windows:  []*fsmpb.MaintenanceWindow{{Days: []uint32{6, 0}, StartHour: 1, EndHour: 24}},
			TimeZone: "America/Argentina/Buenos_Aires", RepairsIgnoreWindows: true,
		}, nil},
		{"ratio", &fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{VacuumGarbageRatio: f64(0), EcFullnessRatio: f64(1.5)}},
			[]string{"vacuum_garbage_ratio 0 is out of range", "ec_fullness_ratio 1.5 is out of range"}},
		{"seconds", &fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{RepairAfterSeconds: i64(-1)}}, []string{"repair_after_seconds -1 is out of range"}},
		{"moves", &fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{BalanceMovesPerRound: new(uint32)}}, []string{"balance_moves_per_round 0 is out of range"}},
		{"both lists", &fsmpb.Policy{IncludeCollections: []string{"a"}, ExcludeCollections: []string{"a"}}, []string{`collection "a" is both included and excluded`}},
		{"twice", &fsmpb.Policy{ExcludeServers: []string{"s1", "s1"}}, []string{`exclude_servers names "s1" twice`}},
		{"empty server", &fsmpb.Policy{ExcludeServers: []string{""}}, []string{"exclude_servers has an empty entry"}},
		{"rack form", &fsmpb.Policy{ExcludeRacks: []string{"r1"}}, []string{`excluded rack "r1" must be written data-centre/rack`}},
		{"cap", &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{PerServer: MaxPolicyCap + 1}}, []string{"the per_server cap"}},
		{"window hours", &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{StartHour: 5, EndHour: 5}}}, []string{"maintenance window 1 runs from hour 5 to 5"}},
		{"window day", &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{Days: []uint32{7}, EndHour: 2}}}, []string{"maintenance window 1 has day 7"}},
		{"zone", &fsmpb.Policy{TimeZone: "../etc/passwd"}, []string{`time zone "../etc/passwd" is not an IANA zone name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ValidatePolicy(tc.p)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q; want %d sentences like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("sentence %d %q; want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestSetPolicyFields: a policy with the new fields is applied whole, in
// canonical form, with a history line naming what changed; an invalid one
// is refused whole, leaving the state as it was.
func TestSetPolicyFields(t *testing.T) {
	h := newHarness(t)
	p := &fsmpb.Policy{
		ExcludeServers: []string{"s2", "s1"},
		Caps:           &fsmpb.PolicyCaps{PerServer: 1},
		Windows:        []*fsmpb.MaintenanceWindow{{Days: []uint32{3, 1}, StartHour: 2, EndHour: 4}},
		TimeZone:       "Europe/Paris",
	}
	res := h.apply(SetPolicyCmd(p, 0, "alice"))
	if res.ErrorCode != codeNone {
		t.Fatalf("refused: %s", res.Error)
	}
	got := h.s.Policy()
	if !slicesEq(got.ExcludeServers, []string{"s1", "s2"}) || !slicesEq32(got.Windows[0].Days, []uint32{1, 3}) || got.Caps.PerServer != 1 || got.TimeZone != "Europe/Paris" {
		t.Fatalf("stored %v", got)
	}
	if hist := h.s.PolicyHistory(); hist[len(hist)-1].Summary != "exclusions changed; caps changed; windows changed" {
		t.Fatalf("history %v", hist)
	}
	before := contentKey(t, h.s)
	bad := proto.Clone(p).(*fsmpb.Policy)
	bad.Caps = &fsmpb.PolicyCaps{PerServer: 2}
	bad.Windows[0].EndHour = 25
	res = h.refuse(fsmpb.ErrorCode_ERROR_CODE_INVALID, SetPolicyCmd(bad, 1, "bob"))
	if !strings.Contains(res.Error, "window 1") || contentKey(t, h.s) != before {
		t.Fatalf("refusal %q or the state changed", res.Error)
	}
	// A per-type cap alone is a change too.
	h.apply(SetPolicyCmd(&fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: balance, MaxConcurrent: 2}}}, 1, "carol"))
	if TypeCap(h.s.Policy(), balance) != 2 || h.s.Policy().Revision != 2 {
		t.Fatalf("policy %v", h.s.Policy())
	}
	// Pause keeps the new fields.
	h.apply(PauseCmd(true, "incident", "dave"))
	if TypeCap(h.s.Policy(), balance) != 2 || !h.s.Policy().Paused {
		t.Fatalf("after pause %v", h.s.Policy())
	}
}

func slicesEq(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
func slicesEq32(a, b []uint32) bool {
	return proto.Equal(&fsmpb.MaintenanceWindow{Days: a}, &fsmpb.MaintenanceWindow{Days: b})
}

// TestPolicyFieldsNeedControlVersion: a SetPolicy that sets any version-5
// field is written as version 5; one that does not (and a pause) stays at
// version 4. Stamped version 4, a version-5 policy is refused as a
// version-4 build would (it would drop the fields), changing nothing, and
// a build that stops at version 4 halts on it instead of applying part of
// it.
func TestPolicyFieldsNeedControlVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want uint32
	}{
		{"thresholds", SetPolicyCmd(&fsmpb.Policy{Thresholds: &fsmpb.PolicyThresholds{VacuumGarbageRatio: f64(0.5)}}, 0, "a"), ControlVersion},
		{"exclusion", SetPolicyCmd(&fsmpb.Policy{ExcludeServers: []string{"s1"}}, 0, "a"), ControlVersion},
		{"type cap", SetPolicyCmd(&fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: vacuum, MaxConcurrent: 1}}}, 0, "a"), ControlVersion},
		{"window", SetPolicyCmd(&fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{EndHour: 1}}}, 0, "a"), ControlVersion},
		{"zone", SetPolicyCmd(&fsmpb.Policy{TimeZone: "UTC"}, 0, "a"), ControlVersion},
		{"disable", SetPolicyCmd(&fsmpb.Policy{Types: disabled(vacuum)}, 0, "a"), PolicyVersion},
		{"pause", PauseCmd(true, "x", "a"), PolicyVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RequiredVersion(tc.cmd); got != tc.want {
				t.Fatalf("RequiredVersion = %d; want %d", got, tc.want)
			}
			if tc.want != ControlVersion {
				return
			}
			checkGated(t, tc.name, tc.cmd, ControlVersion)
		})
	}
}

// TestPolicyFieldsSnapshot: a policy with every version-5 field survives
// a snapshot and its restore checks (canonical form included), and a
// snapshot holding an unsorted list is refused.
func TestPolicyFieldsSnapshot(t *testing.T) {
	h := newHarness(t)
	moves := uint32(2)
	h.apply(SetPolicyCmd(&fsmpb.Policy{
		Thresholds:         &fsmpb.PolicyThresholds{EcQuietSeconds: i64(0), BalanceMovesPerRound: &moves},
		IncludeCollections: []string{"b", ""}, ExcludeRacks: []string{"dc1/r1"}, ExcludeDataCenters: []string{"dc9"},
		Caps: &fsmpb.PolicyCaps{Global: 5}, Types: []*fsmpb.TaskTypePolicy{{Type: ecType, MaxConcurrent: 1}},
		Windows:  []*fsmpb.MaintenanceWindow{{Days: []uint32{5, 2}, StartHour: 3, EndHour: 4}, {EndHour: 24}},
		TimeZone: "Asia/Tokyo", RepairsIgnoreWindows: true,
	}, 0, "alice"))
	snap := h.s.Snapshot()
	if err := checkPolicy(snap.Policy, snap.PolicyHistory); err != nil {
		t.Fatalf("restore check of a valid policy: %v", err)
	}
	r, err := FromSnapshot(snap)
	if err != nil || r.Hash() != h.s.Hash() || !proto.Equal(r.Policy(), h.s.Policy()) {
		t.Fatalf("restored %v, %v; want %v", r.Policy(), err, h.s.Policy())
	}
	bad := proto.Clone(snap.Policy).(*fsmpb.Policy)
	bad.IncludeCollections = []string{"b", ""}
	if err := checkPolicy(bad, snap.PolicyHistory); err == nil {
		t.Fatal("an unsorted collection list passed the restore check")
	}
}
