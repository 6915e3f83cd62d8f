package fsm

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// The policy fields of command version 5 (ControlVersion): detection
// thresholds, collection lists, placement exclusions, concurrency caps and
// maintenance windows. A SetPolicy that sets any of them is written as
// version 5 (RequiredVersion): a version-4 build would drop them.

// Bounds on what a policy may hold, so that any input gets a bounded
// answer and the state stays small.
const (
	MaxPolicyNames   = 1000 // entries of each collection or exclusion list
	MaxPolicyNameLen = 256  // bytes of one entry
	MaxPolicyWindows = 32
	MaxPolicyCap     = 1_000_000
	// MaxPolicySeconds bounds the threshold durations: a year.
	MaxPolicySeconds = 365 * 24 * 3600
)

// usesControlFields reports whether p sets a field of command version 5.
func usesControlFields(p *fsmpb.Policy) bool {
	if p.GetThresholds() != nil || len(p.GetIncludeCollections()) > 0 || len(p.GetExcludeCollections()) > 0 ||
		len(p.GetExcludeDataCenters()) > 0 || len(p.GetExcludeRacks()) > 0 || len(p.GetExcludeServers()) > 0 ||
		p.GetCaps() != nil || len(p.GetWindows()) > 0 || p.GetTimeZone() != "" || p.GetRepairsIgnoreWindows() {
		return true
	}
	for _, tp := range p.GetTypes() {
		if tp.GetMaxConcurrent() != 0 {
			return true
		}
	}
	return false
}

// validateControlFields returns one sentence per mistake in p's version-5
// fields. It reads no clock and no time zone database (Apply must give the
// same answer on every node): a zone name is checked for its form only;
// the admin checks that it loads before proposing (see ValidTimeZone).
func validateControlFields(p *fsmpb.Policy) []string {
	var errs []string
	if th := p.GetThresholds(); th != nil {
		errs = append(errs, validateThresholds(th)...)
	}
	errs = append(errs, validateNames("include_collections", p.IncludeCollections, true)...)
	errs = append(errs, validateNames("exclude_collections", p.ExcludeCollections, true)...)
	for _, c := range p.IncludeCollections {
		if slices.Contains(p.ExcludeCollections, c) {
			errs = append(errs, fmt.Sprintf("collection %q is both included and excluded", c))
			break
		}
	}
	errs = append(errs, validateNames("exclude_data_centers", p.ExcludeDataCenters, false)...)
	errs = append(errs, validateNames("exclude_racks", p.ExcludeRacks, false)...)
	for _, r := range p.ExcludeRacks {
		if dc, rack, ok := strings.Cut(r, "/"); !ok || dc == "" || rack == "" || strings.Contains(rack, "/") {
			errs = append(errs, fmt.Sprintf("excluded rack %q must be written data-centre/rack", r))
			break
		}
	}
	errs = append(errs, validateNames("exclude_servers", p.ExcludeServers, false)...)
	if c := p.GetCaps(); c != nil {
		for _, v := range []struct {
			name string
			n    uint32
		}{{"global", c.Global}, {"per_server", c.PerServer}, {"per_collection", c.PerCollection}} {
			if v.n > MaxPolicyCap {
				errs = append(errs, fmt.Sprintf("the %s cap %d is more than %d", v.name, v.n, MaxPolicyCap))
			}
		}
	}
	for _, tp := range p.Types {
		if tp.GetMaxConcurrent() > MaxPolicyCap {
			errs = append(errs, fmt.Sprintf("the %s cap %d is more than %d", TypeName(tp.Type), tp.MaxConcurrent, MaxPolicyCap))
		}
	}
	errs = append(errs, validateWindows(p.Windows)...)
	if z := p.TimeZone; z != "" && !timeZoneForm(z) {
		errs = append(errs, fmt.Sprintf("time zone %q is not an IANA zone name (like Europe/Paris)", z))
	}
	return errs
}

func validateThresholds(th *fsmpb.PolicyThresholds) []string {
	var errs []string
	ratio := func(name string, v *float64) {
		if v != nil && !(*v > 0 && *v <= 1) {
			errs = append(errs, fmt.Sprintf("%s %v is out of range (0, 1]", name, *v))
		}
	}
	seconds := func(name string, v *int64) {
		if v != nil && (*v < 0 || *v > MaxPolicySeconds) {
			errs = append(errs, fmt.Sprintf("%s %d is out of range [0, %d]", name, *v, MaxPolicySeconds))
		}
	}
	ratio("vacuum_garbage_ratio", th.VacuumGarbageRatio)
	ratio("ec_fullness_ratio", th.EcFullnessRatio)
	seconds("ec_quiet_seconds", th.EcQuietSeconds)
	seconds("repair_after_seconds", th.RepairAfterSeconds)
	seconds("delete_empty_quiet_seconds", th.DeleteEmptyQuietSeconds)
	if v := th.EcMinSizeMb; v != nil && *v > 1<<30 {
		errs = append(errs, fmt.Sprintf("ec_min_size_mb %d is more than %d", *v, 1<<30))
	}
	if v := th.BalanceImbalance; v != nil && !(*v > 0 && *v <= 100) {
		errs = append(errs, fmt.Sprintf("balance_imbalance %v is out of range (0, 100]", *v))
	}
	if v := th.BalanceMovesPerRound; v != nil && (*v < 1 || *v > 10000) {
		errs = append(errs, fmt.Sprintf("balance_moves_per_round %d is out of range [1, 10000]", *v))
	}
	return errs
}

// validateNames checks one list: bounded, one line per entry, no
// duplicates, no empty entry unless emptyOK (the default collection).
func validateNames(list string, names []string, emptyOK bool) []string {
	if len(names) > MaxPolicyNames {
		return []string{fmt.Sprintf("%s has %d entries, more than %d", list, len(names), MaxPolicyNames)}
	}
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case n == "" && !emptyOK:
			return []string{fmt.Sprintf("%s has an empty entry", list)}
		case len(n) > MaxPolicyNameLen:
			return []string{fmt.Sprintf("an entry of %s is %d bytes long, more than %d", list, len(n), MaxPolicyNameLen)}
		case strings.IndexFunc(n, unicode.IsControl) >= 0 || strings.TrimSpace(n) != n:
			return []string{fmt.Sprintf("%s entry %q has control characters or surrounding spaces", list, n)}
		case seen[n]:
			return []string{fmt.Sprintf("%s names %q twice", list, n)}
		}
		seen[n] = true
	}
	return nil
}

func validateWindows(ws []*fsmpb.MaintenanceWindow) []string {
	if len(ws) > MaxPolicyWindows {
		return []string{fmt.Sprintf("the policy has %d maintenance windows, more than %d", len(ws), MaxPolicyWindows)}
	}
	var errs []string
	for i, w := range ws {
		switch {
		case w == nil:
			errs = append(errs, fmt.Sprintf("maintenance window %d is empty", i+1))
			continue
		case w.EndHour > 24 || w.StartHour >= w.EndHour:
			errs = append(errs, fmt.Sprintf("maintenance window %d runs from hour %d to %d: want 0 <= start < end <= 24", i+1, w.StartHour, w.EndHour))
		}
		seen := map[uint32]bool{}
		for _, d := range w.Days {
			if d > 6 || seen[d] {
				errs = append(errs, fmt.Sprintf("maintenance window %d has day %d out of range 0 (Sunday) .. 6 or twice", i+1, d))
				break
			}
			seen[d] = true
		}
	}
	return errs
}

// timeZoneForm reports whether z looks like an IANA zone name ("UTC",
// "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+3").
func timeZoneForm(z string) bool {
	if len(z) > 64 || strings.HasPrefix(z, "/") || strings.HasSuffix(z, "/") || strings.Contains(z, "..") || strings.Contains(z, "//") {
		return false
	}
	for _, r := range z {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+-", r)) {
			return false
		}
	}
	return true
}

// normalizeControlFields copies p's version-5 fields into out in canonical
// form: lists sorted, days sorted, empty messages dropped.
func normalizeControlFields(out, p *fsmpb.Policy) {
	sorted := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		s = slices.Clone(s)
		slices.Sort(s)
		return s
	}
	if th := p.GetThresholds(); th != nil && !proto.Equal(th, &fsmpb.PolicyThresholds{}) {
		out.Thresholds = proto.Clone(th).(*fsmpb.PolicyThresholds)
	}
	out.IncludeCollections = sorted(p.GetIncludeCollections())
	out.ExcludeCollections = sorted(p.GetExcludeCollections())
	out.ExcludeDataCenters = sorted(p.GetExcludeDataCenters())
	out.ExcludeRacks = sorted(p.GetExcludeRacks())
	out.ExcludeServers = sorted(p.GetExcludeServers())
	if c := p.GetCaps(); c != nil && !proto.Equal(c, &fsmpb.PolicyCaps{}) {
		out.Caps = proto.Clone(c).(*fsmpb.PolicyCaps)
	}
	for _, w := range p.GetWindows() {
		w = proto.Clone(w).(*fsmpb.MaintenanceWindow)
		if len(w.Days) == 0 {
			w.Days = nil
		}
		slices.Sort(w.Days)
		out.Windows = append(out.Windows, w)
	}
	out.TimeZone = p.GetTimeZone()
	out.RepairsIgnoreWindows = p.GetRepairsIgnoreWindows()
}

// controlSummary says in a few words which version-5 parts changed from a
// to b.
func controlSummary(a, b *fsmpb.Policy) []string {
	var parts []string
	if !proto.Equal(a.GetThresholds(), b.GetThresholds()) {
		parts = append(parts, "thresholds changed")
	}
	if !slices.Equal(a.GetIncludeCollections(), b.GetIncludeCollections()) || !slices.Equal(a.GetExcludeCollections(), b.GetExcludeCollections()) {
		parts = append(parts, "collections changed")
	}
	if !slices.Equal(a.GetExcludeDataCenters(), b.GetExcludeDataCenters()) || !slices.Equal(a.GetExcludeRacks(), b.GetExcludeRacks()) ||
		!slices.Equal(a.GetExcludeServers(), b.GetExcludeServers()) {
		parts = append(parts, "exclusions changed")
	}
	capsChanged := !proto.Equal(a.GetCaps(), b.GetCaps())
	for _, t := range TaskTypes {
		if typeCap(a, t) != typeCap(b, t) {
			capsChanged = true
		}
	}
	if capsChanged {
		parts = append(parts, "caps changed")
	}
	if len(a.GetWindows()) != len(b.GetWindows()) || a.GetTimeZone() != b.GetTimeZone() || a.GetRepairsIgnoreWindows() != b.GetRepairsIgnoreWindows() ||
		!slices.EqualFunc(a.GetWindows(), b.GetWindows(), func(x, y *fsmpb.MaintenanceWindow) bool { return proto.Equal(x, y) }) {
		parts = append(parts, "windows changed")
	}
	return parts
}

// typeCap is policy p's cap on attempts of type t (0: none).
func typeCap(p *fsmpb.Policy, t fsmpb.TaskType) uint32 {
	for _, tp := range p.GetTypes() {
		if tp.GetType() == t {
			return tp.GetMaxConcurrent()
		}
	}
	return 0
}

// TypeCap is policy p's cap on the attempts of type t assigned or running
// at once (0: none).
func TypeCap(p *fsmpb.Policy, t fsmpb.TaskType) uint32 { return typeCap(p, t) }
