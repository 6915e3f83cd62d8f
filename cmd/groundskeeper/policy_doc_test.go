package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestPolicyDocRoundTrip: the policy show --format prints, read back by
// policy edit, is the same policy and prints the same text, in TOML and
// JSON, for the default policy and a full one.
func TestPolicyDocRoundTrip(t *testing.T) {
	ratio, quiet, moves := 0.4, int64(5400), uint32(3)
	full := fsm.NormalizePolicy(&fsmpb.Policy{
		Paused: true, PauseReason: "disk swap", TimeZone: "Europe/Paris", RepairsIgnoreWindows: true,
		IncludeCollections: []string{"", "photos"}, ExcludeServers: []string{"10.0.0.1:8080"}, ExcludeRacks: []string{"dc1/r2"},
		Thresholds: &fsmpb.PolicyThresholds{VacuumGarbageRatio: &ratio, EcQuietSeconds: &quiet, BalanceMovesPerRound: &moves},
		Caps:       &fsmpb.PolicyCaps{PerServer: 2},
		Types:      []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}, {Type: fsmpb.TaskType_TASK_TYPE_VACUUM, MaxConcurrent: 4}},
		Windows:    []*fsmpb.MaintenanceWindow{{Days: []uint32{0, 6}, StartHour: 1, EndHour: 6}, {StartHour: 22, EndHour: 24}},
	})
	var text strings.Builder
	if err := printPolicy(&ctlOpts{out: &text}, full); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"caps: global 0, per server 2, per collection 0", `exclude servers: ["10.0.0.1:8080"]`,
		"windows: sun,sat 1-6; * 22-24 (Europe/Paris), repairs ignore them: true", `"vacuum_garbage_ratio":0.4`, `"ec_quiet":"1h30m0s"`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("policy show does not say %q:\n%s", want, text.String())
		}
	}
	for _, p := range []*fsmpb.Policy{{}, full} {
		for _, format := range []string{"toml", "json"} {
			text, err := marshalPolicyDoc(toPolicyDoc(p), format)
			if err != nil {
				t.Fatal(err)
			}
			d, err := parsePolicyDoc(text)
			if err != nil {
				t.Fatalf("%s: %v\n%s", format, err, text)
			}
			back, errs := d.policy()
			if len(errs) > 0 || !proto.Equal(back, fsm.NormalizePolicy(p)) {
				t.Fatalf("%s: read back %v %v; want %v\n%s", format, back, errs, p, text)
			}
			again, _ := marshalPolicyDoc(toPolicyDoc(back), format)
			if string(again) != string(text) {
				t.Fatalf("%s: printed again differs:\n%s\nvs\n%s", format, again, text)
			}
		}
	}
}

// TestPolicySetKeys: the new keys of policy set change the policy; a
// mistake is one sentence and nothing else.
func TestPolicySetKeys(t *testing.T) {
	ps, errs := parsePolicySettings([]string{"caps.per_server=2", "vacuum.max_concurrent=1", "exclude_servers=s1, s2", "windows=sat,sun 1-6; * 22-24",
		"time_zone=Europe/Paris", "thresholds.repair_after=5m", "thresholds.vacuum_garbage_ratio=0.5", "thresholds.delete_empty_quiet=24h", "delete_empty.enabled=true"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p, errs := ps.apply(&fsmpb.Policy{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.Caps.PerServer != 2 || fsm.TypeCap(p, fsmpb.TaskType_TASK_TYPE_VACUUM) != 1 || len(p.ExcludeServers) != 2 || len(p.Windows) != 2 ||
		p.Thresholds.GetRepairAfterSeconds() != 300 || p.Thresholds.GetVacuumGarbageRatio() != 0.5 || p.Thresholds.GetDeleteEmptyQuietSeconds() != 86400 || p.TimeZone != "Europe/Paris" {
		t.Fatalf("policy %v", p)
	}
	for _, tc := range []struct{ arg, want string }{
		{"caps.per_server=x", "want a whole number"},
		{"windows=sat", "is not DAYS START-END"},
		{"nope=1", "unknown key"},
	} {
		if _, errs := parsePolicySettings([]string{tc.arg}); len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Errorf("%s: %q; want one sentence with %q", tc.arg, errs, tc.want)
		}
	}
	ps, _ = parsePolicySettings([]string{"windows=xyz 1-2"})
	if _, errs := ps.apply(&fsmpb.Policy{}); len(errs) != 1 || !strings.Contains(errs[0], `day "xyz"`) {
		t.Errorf("bad day: %q", errs)
	}
}
