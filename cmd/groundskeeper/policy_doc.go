package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// policyDoc is the whole policy in the readable form `ctl policy show
// --format toml|json` prints and `ctl policy edit FILE` reads: every
// setting, durations as Go durations ("10m0s"), days by name. Its revision
// is the one the file was read at: edit sets the policy only if it is
// still current (compare-and-set). Parsed and printed again it gives the
// same text.
type policyDoc struct {
	Revision             uint64                    `toml:"revision" json:"revision"`
	Paused               bool                      `toml:"paused" json:"paused"`
	PauseReason          string                    `toml:"pause_reason" json:"pause_reason"`
	TimeZone             string                    `toml:"time_zone" json:"time_zone"`
	RepairsIgnoreWindows bool                      `toml:"repairs_ignore_windows" json:"repairs_ignore_windows"`
	IncludeCollections   []string                  `toml:"include_collections" json:"include_collections"`
	ExcludeCollections   []string                  `toml:"exclude_collections" json:"exclude_collections"`
	ExcludeDataCenters   []string                  `toml:"exclude_data_centers" json:"exclude_data_centers"`
	ExcludeRacks         []string                  `toml:"exclude_racks" json:"exclude_racks"`
	ExcludeServers       []string                  `toml:"exclude_servers" json:"exclude_servers"`
	Thresholds           thresholdsDoc             `toml:"thresholds" json:"thresholds"`
	Caps                 capsDoc                   `toml:"caps" json:"caps"`
	Types                map[string]*typePolicyDoc `toml:"types" json:"types"`
	Windows              []windowDoc               `toml:"windows" json:"windows"`
}

// thresholdsDoc: an absent key leaves the threshold to the leader's flag.
type thresholdsDoc struct {
	VacuumGarbageRatio   *float64 `toml:"vacuum_garbage_ratio,omitempty" json:"vacuum_garbage_ratio,omitempty"`
	ECFullnessRatio      *float64 `toml:"ec_fullness_ratio,omitempty" json:"ec_fullness_ratio,omitempty"`
	ECQuiet              string   `toml:"ec_quiet,omitempty" json:"ec_quiet,omitempty"`
	ECMinSizeMB          *uint64  `toml:"ec_min_size_mb,omitempty" json:"ec_min_size_mb,omitempty"`
	BalanceImbalance     *float64 `toml:"balance_imbalance,omitempty" json:"balance_imbalance,omitempty"`
	BalanceMovesPerRound *uint32  `toml:"balance_moves_per_round,omitempty" json:"balance_moves_per_round,omitempty"`
	RepairAfter          string   `toml:"repair_after,omitempty" json:"repair_after,omitempty"`
	DeleteEmptyQuiet     string   `toml:"delete_empty_quiet,omitempty" json:"delete_empty_quiet,omitempty"`
}

type capsDoc struct {
	Global        uint32 `toml:"global" json:"global"`
	PerServer     uint32 `toml:"per_server" json:"per_server"`
	PerCollection uint32 `toml:"per_collection" json:"per_collection"`
}

type typePolicyDoc struct {
	Enabled       bool   `toml:"enabled" json:"enabled"`
	MaxConcurrent uint32 `toml:"max_concurrent" json:"max_concurrent"`
}

type windowDoc struct {
	Days      []string `toml:"days" json:"days"`
	StartHour uint32   `toml:"start_hour" json:"start_hour"`
	EndHour   uint32   `toml:"end_hour" json:"end_hour"`
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func toPolicyDoc(p *fsmpb.Policy) *policyDoc {
	list := func(s []string) []string { return append([]string{}, s...) }
	d := &policyDoc{Revision: p.GetRevision(), Paused: p.GetPaused(), PauseReason: p.GetPauseReason(), TimeZone: p.GetTimeZone(),
		RepairsIgnoreWindows: p.GetRepairsIgnoreWindows(), IncludeCollections: list(p.GetIncludeCollections()),
		ExcludeCollections: list(p.GetExcludeCollections()), ExcludeDataCenters: list(p.GetExcludeDataCenters()),
		ExcludeRacks: list(p.GetExcludeRacks()), ExcludeServers: list(p.GetExcludeServers()),
		Caps:  capsDoc{Global: p.GetCaps().GetGlobal(), PerServer: p.GetCaps().GetPerServer(), PerCollection: p.GetCaps().GetPerCollection()},
		Types: map[string]*typePolicyDoc{}, Windows: []windowDoc{}}
	if th := p.GetThresholds(); th != nil {
		d.Thresholds = thresholdsDoc{VacuumGarbageRatio: th.VacuumGarbageRatio, ECFullnessRatio: th.EcFullnessRatio, ECMinSizeMB: th.EcMinSizeMb,
			BalanceImbalance: th.BalanceImbalance, BalanceMovesPerRound: th.BalanceMovesPerRound,
			ECQuiet: secondsText(th.EcQuietSeconds), RepairAfter: secondsText(th.RepairAfterSeconds),
			DeleteEmptyQuiet: secondsText(th.DeleteEmptyQuietSeconds)}
	}
	for _, t := range fsm.TaskTypes {
		d.Types[fsm.TypeName(t)] = &typePolicyDoc{Enabled: fsm.TypeEnabled(p, t), MaxConcurrent: fsm.TypeCap(p, t)}
	}
	for _, w := range p.GetWindows() {
		wd := windowDoc{Days: []string{}, StartHour: w.StartHour, EndHour: w.EndHour}
		for _, day := range w.Days {
			wd.Days = append(wd.Days, dayNames[day%7])
		}
		d.Windows = append(d.Windows, wd)
	}
	return d
}

func secondsText(s *int64) string {
	if s == nil {
		return ""
	}
	return (time.Duration(*s) * time.Second).String()
}

// policy converts the document, one sentence per mistake it can see
// (fsm.ValidatePolicy finds the rest).
func (d *policyDoc) policy() (*fsmpb.Policy, []string) {
	var errs []string
	p := &fsmpb.Policy{Paused: d.Paused, PauseReason: d.PauseReason, TimeZone: d.TimeZone, RepairsIgnoreWindows: d.RepairsIgnoreWindows,
		IncludeCollections: d.IncludeCollections, ExcludeCollections: d.ExcludeCollections, ExcludeDataCenters: d.ExcludeDataCenters,
		ExcludeRacks: d.ExcludeRacks, ExcludeServers: d.ExcludeServers,
		Caps: &fsmpb.PolicyCaps{Global: d.Caps.Global, PerServer: d.Caps.PerServer, PerCollection: d.Caps.PerCollection}}
	th := d.Thresholds
	p.Thresholds = &fsmpb.PolicyThresholds{VacuumGarbageRatio: th.VacuumGarbageRatio, EcFullnessRatio: th.ECFullnessRatio, EcMinSizeMb: th.ECMinSizeMB,
		BalanceImbalance: th.BalanceImbalance, BalanceMovesPerRound: th.BalanceMovesPerRound}
	dur := func(name, s string) *int64 {
		if s == "" {
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil || v%time.Second != 0 {
			errs = append(errs, fmt.Sprintf("thresholds.%s %q is not a duration in whole seconds (like 10m or 90s)", name, s))
			return nil
		}
		sec := int64(v / time.Second)
		return &sec
	}
	p.Thresholds.EcQuietSeconds, p.Thresholds.RepairAfterSeconds = dur("ec_quiet", th.ECQuiet), dur("repair_after", th.RepairAfter)
	p.Thresholds.DeleteEmptyQuietSeconds = dur("delete_empty_quiet", th.DeleteEmptyQuiet)
	names := make([]string, 0, len(d.Types))
	for name := range d.Types {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t, err := fsm.ParseTaskType(name)
		if err != nil {
			errs = append(errs, fmt.Sprintf("types.%s: %s", name, err))
			continue
		}
		if tp := d.Types[name]; tp != nil {
			p.Types = append(p.Types, &fsmpb.TaskTypePolicy{Type: t, Disabled: !tp.Enabled, MaxConcurrent: tp.MaxConcurrent})
		}
	}
	for i, w := range d.Windows {
		mw := &fsmpb.MaintenanceWindow{StartHour: w.StartHour, EndHour: w.EndHour}
		for _, day := range w.Days {
			n := slices.Index(dayNames, strings.ToLower(day))
			if n < 0 {
				errs = append(errs, fmt.Sprintf("window %d: day %q is not one of %s", i+1, day, strings.Join(dayNames, ", ")))
				continue
			}
			mw.Days = append(mw.Days, uint32(n))
		}
		p.Windows = append(p.Windows, mw)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return fsm.NormalizePolicy(p), fsm.ValidatePolicy(p)
}

// policyDocHeader opens the TOML form: what the file is and how to use it.
const policyDocHeader = `# groundskeeper maintenance policy. Edit and apply with:
#   groundskeeper ctl policy edit FILE
# revision: the revision this was read at; edit refuses the file if the
# policy changed since. thresholds: an absent key leaves that threshold
# to the leader's flag. caps and max_concurrent: 0 is no cap. windows:
# days sun..sat (none: every day), hours [start_hour, end_hour) in
# time_zone (IANA, "" is UTC); no window: always open.
`

func marshalPolicyDoc(d *policyDoc, format string) ([]byte, error) {
	switch format {
	case "toml":
		var buf bytes.Buffer
		buf.WriteString(policyDocHeader)
		enc := toml.NewEncoder(&buf)
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encode policy: %w", err)
		}
		return buf.Bytes(), nil
	case "json":
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode policy: %w", err)
		}
		return append(b, '\n'), nil
	}
	return nil, usagef("unknown format %q (want toml or json)", format)
}

// parsePolicyDoc reads a policy document, JSON if it starts with "{",
// else TOML; unknown keys are mistakes.
func parsePolicyDoc(b []byte) (*policyDoc, error) {
	d := &policyDoc{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(d); err != nil {
			return nil, fmt.Errorf("the policy file is not a valid JSON policy: %w", err)
		}
		return d, nil
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(d); err != nil {
		return nil, fmt.Errorf("the policy file is not a valid TOML policy: %w", err)
	}
	return d, nil
}

// setDocKey applies one KEY=VALUE of policy set that policySettings does
// not handle itself; ok is false for an unknown key.
func setDocKey(d *policyDoc, key, value string) (ok bool, err error) {
	list := func() []string {
		if value == "" {
			return []string{}
		}
		parts := strings.Split(value, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	u32 := func(dst *uint32) error {
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return fmt.Errorf("%s=%q: want a whole number", key, value)
		}
		*dst = uint32(n)
		return nil
	}
	optFloat := func(dst **float64) error {
		if value == "" {
			*dst = nil
			return nil
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("%s=%q: want a number (or nothing: the flag's)", key, value)
		}
		*dst = &f
		return nil
	}
	th := &d.Thresholds
	switch key {
	case "time_zone":
		d.TimeZone = value
	case "repairs_ignore_windows":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return true, fmt.Errorf("%s=%q: want true or false", key, value)
		}
		d.RepairsIgnoreWindows = b
	case "include_collections":
		d.IncludeCollections = list()
	case "exclude_collections":
		d.ExcludeCollections = list()
	case "exclude_data_centers":
		d.ExcludeDataCenters = list()
	case "exclude_racks":
		d.ExcludeRacks = list()
	case "exclude_servers":
		d.ExcludeServers = list()
	case "caps.global":
		return true, u32(&d.Caps.Global)
	case "caps.per_server":
		return true, u32(&d.Caps.PerServer)
	case "caps.per_collection":
		return true, u32(&d.Caps.PerCollection)
	case "thresholds.vacuum_garbage_ratio":
		return true, optFloat(&th.VacuumGarbageRatio)
	case "thresholds.ec_fullness_ratio":
		return true, optFloat(&th.ECFullnessRatio)
	case "thresholds.balance_imbalance":
		return true, optFloat(&th.BalanceImbalance)
	case "thresholds.ec_quiet":
		th.ECQuiet = value
	case "thresholds.repair_after":
		th.RepairAfter = value
	case "thresholds.delete_empty_quiet":
		th.DeleteEmptyQuiet = value
	case "thresholds.ec_min_size_mb", "thresholds.balance_moves_per_round":
		if value == "" {
			th.ECMinSizeMB, th.BalanceMovesPerRound = clearIf(key == "thresholds.ec_min_size_mb", th.ECMinSizeMB), clearIf(key != "thresholds.ec_min_size_mb", th.BalanceMovesPerRound)
			return true, nil
		}
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return true, fmt.Errorf("%s=%q: want a whole number (or nothing: the flag's)", key, value)
		}
		if key == "thresholds.ec_min_size_mb" {
			th.ECMinSizeMB = &n
		} else {
			m := uint32(n)
			th.BalanceMovesPerRound = &m
		}
	case "windows":
		ws, err := parseWindows(value)
		if err != nil {
			return true, fmt.Errorf("windows=%q: %w", value, err)
		}
		d.Windows = ws
	default:
		if typ, ok := strings.CutSuffix(key, ".max_concurrent"); ok {
			t, err := fsm.ParseTaskType(typ)
			if err != nil {
				return true, fmt.Errorf("%s: %w", key, err)
			}
			tp := d.Types[fsm.TypeName(t)]
			if tp == nil {
				tp = &typePolicyDoc{Enabled: true}
				d.Types[fsm.TypeName(t)] = tp
			}
			return true, u32(&tp.MaxConcurrent)
		}
		return false, nil
	}
	return true, nil
}

func clearIf[T any](cond bool, v *T) *T {
	if cond {
		return nil
	}
	return v
}

// parseWindows reads "DAYS START-END; ..." ("sat,sun 1-6; * 22-24"; "*"
// is every day; "" no window).
func parseWindows(s string) ([]windowDoc, error) {
	out := []windowDoc{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		days, hours, ok := strings.Cut(part, " ")
		start, end, ok2 := strings.Cut(strings.TrimSpace(hours), "-")
		a, err1 := strconv.ParseUint(start, 10, 32)
		b, err2 := strconv.ParseUint(end, 10, 32)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not DAYS START-END (like sat,sun 1-6 or * 22-24)", part)
		}
		w := windowDoc{Days: []string{}, StartHour: uint32(a), EndHour: uint32(b)}
		if days != "*" {
			w.Days = strings.Split(days, ",")
		}
		out = append(out, w)
	}
	return out, nil
}
