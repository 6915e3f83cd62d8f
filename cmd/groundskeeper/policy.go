package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// ctl's maintenance policy commands: policy show, policy set, policy
// history, policy edit, pause and resume (the policy file form: policy_doc.go).

// policyJSON is the policy as ctl --json shows it (docs/architecture.md
// §11): every known type, enabled or not.
type policyJSON struct {
	Revision    uint64          `json:"revision"`
	Paused      bool            `json:"paused"`
	PauseReason string          `json:"pause_reason,omitempty"`
	Types       map[string]bool `json:"types_enabled"`
	UpdatedAt   string          `json:"updated_at,omitempty"`
	UpdatedBy   string          `json:"updated_by,omitempty"`
}

type policyChangeJSON struct {
	Revision uint64 `json:"revision"`
	At       string `json:"at"`
	By       string `json:"by"`
	Summary  string `json:"summary"`
}

func toPolicyJSON(p *fsmpb.Policy) *policyJSON {
	out := &policyJSON{Revision: p.GetRevision(), Paused: p.GetPaused(), PauseReason: p.GetPauseReason(), Types: map[string]bool{},
		UpdatedAt: stamp(p.GetUpdatedAt()), UpdatedBy: p.GetUpdatedBy()}
	for _, t := range fsm.TaskTypes {
		out.Types[fsm.TypeName(t)] = fsm.TypeEnabled(p, t)
	}
	return out
}

// policySetKeys names the keys of policy set, for refusals.
func policySetKeys() string {
	return "paused, reason, time_zone, repairs_ignore_windows, windows (\"sat,sun 1-6; * 22-24\"), include_collections, exclude_collections, " +
		"exclude_data_centers, exclude_racks, exclude_servers (comma lists), caps.global, caps.per_server, caps.per_collection, " +
		"thresholds.vacuum_garbage_ratio, thresholds.ec_fullness_ratio, thresholds.ec_quiet, thresholds.ec_min_size_mb, thresholds.balance_imbalance, " +
		"thresholds.balance_moves_per_round, thresholds.repair_after, thresholds.delete_empty_quiet, or TYPE.enabled, TYPE.max_concurrent with TYPE one of " + typeNames()
}

func typeNames() string {
	names := make([]string, len(fsm.TaskTypes))
	for i, t := range fsm.TaskTypes {
		names[i] = fsm.TypeName(t)
	}
	return strings.Join(names, ", ")
}

func (o *ctlOpts) policy(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return o.policyShow(args)
	}
	switch args[0] {
	case "show":
		return o.policyShow(args[1:])
	case "set":
		return o.policySet(args[1:])
	case "history":
		return o.policyHistory(args[1:])
	case "edit":
		return o.policyEdit(args[1:])
	}
	return usagef("unknown policy subcommand %q (want show, set, edit or history)", args[0])
}

// getPolicy reads the policy (from the leader unless --stale).
func (o *ctlOpts) getPolicy() (*pb.GetPolicyResponse, error) {
	return ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.GetPolicyResponse, error) {
		return a.GetPolicy(ctx, &pb.GetPolicyRequest{Consistency: o.consistency()})
	})
}

func (o *ctlOpts) policyShow(args []string) error {
	var format string
	fs, err := o.subFlags("policy show", args, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "", "print the whole policy as toml or json, the form policy edit reads")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if format != "" && format != "toml" && format != "json" {
		return usagef("unknown format %q (want toml or json)", format)
	}
	resp, err := o.getPolicy()
	if err != nil {
		return err
	}
	if format != "" {
		b, err := marshalPolicyDoc(toPolicyDoc(resp.Policy), format)
		if err != nil {
			return err
		}
		_, err = o.out.Write(b)
		return err
	}
	return printPolicy(o, resp.Policy)
}

func printPolicy(o *ctlOpts, p *fsmpb.Policy) error {
	if o.json {
		return o.writeJSON(toPolicyJSON(p))
	}
	if p.GetRevision() == 0 {
		fmt.Fprintln(o.out, "policy revision 0: the default, never changed")
	} else {
		fmt.Fprintf(o.out, "policy revision %d, changed %s by %s\n", p.Revision, stamp(p.UpdatedAt), p.UpdatedBy)
	}
	fmt.Fprintf(o.out, "maintenance: %s\n", maintenanceText(p))
	for _, line := range policyLines(p) {
		fmt.Fprintln(o.out, line)
	}
	fmt.Fprintln(o.out)
	w := o.table()
	fmt.Fprintln(w, "TYPE\tENABLED\tMAX CONCURRENT")
	for _, t := range fsm.TaskTypes {
		limit := "-"
		if n := fsm.TypeCap(p, t); n > 0 {
			limit = strconv.Itoa(int(n))
		}
		fmt.Fprintf(w, "%s\t%v\t%s\n", fsm.TypeName(t), fsm.TypeEnabled(p, t), limit)
	}
	return w.Flush()
}

// policyLines says what the version-5 settings are, one line each, only
// those that are set (policy show --format toml prints them all).
func policyLines(p *fsmpb.Policy) []string {
	var out []string
	d := toPolicyDoc(p)
	if th, err := json.Marshal(d.Thresholds); err == nil && string(th) != "{}" {
		out = append(out, "thresholds: "+string(th)+" (the others: the leader's flags)")
	}
	if c := p.GetCaps(); c != nil {
		out = append(out, fmt.Sprintf("caps: global %d, per server %d, per collection %d (0: none)", c.Global, c.PerServer, c.PerCollection))
	}
	for _, l := range []struct {
		name  string
		names []string
	}{{"include collections", p.GetIncludeCollections()}, {"exclude collections", p.GetExcludeCollections()},
		{"exclude data centres", p.GetExcludeDataCenters()}, {"exclude racks", p.GetExcludeRacks()}, {"exclude servers", p.GetExcludeServers()}} {
		if len(l.names) > 0 {
			out = append(out, fmt.Sprintf("%s: %q", l.name, l.names))
		}
	}
	if len(d.Windows) > 0 {
		var ws []string
		for _, w := range d.Windows {
			days := "*"
			if len(w.Days) > 0 {
				days = strings.Join(w.Days, ",")
			}
			ws = append(ws, fmt.Sprintf("%s %d-%d", days, w.StartHour, w.EndHour))
		}
		zone := p.GetTimeZone()
		if zone == "" {
			zone = "UTC"
		}
		out = append(out, fmt.Sprintf("windows: %s (%s), repairs ignore them: %v", strings.Join(ws, "; "), zone, p.GetRepairsIgnoreWindows()))
	}
	return out
}

// maintenanceText says whether the policy lets maintenance run.
func maintenanceText(p *fsmpb.Policy) string {
	if !p.GetPaused() {
		return "running"
	}
	reason := p.GetPauseReason()
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Sprintf("PAUSED (%s, by %s, %s): nothing new is detected or assigned; running tasks finish", reason, p.GetUpdatedBy(), stamp(p.GetUpdatedAt()))
}

// policySettings are the KEY=VALUE settings of policy set, parsed.
type policySettings struct {
	paused  *bool
	reason  *string
	enabled map[fsmpb.TaskType]bool
	// The other keys (policy_doc.go's setDocKey), in order.
	doc [][2]string
}

// parsePolicySettings parses KEY=VALUE settings, giving one sentence per
// mistake, before any admin is asked.
func parsePolicySettings(settings []string) (policySettings, []string) {
	ps := policySettings{enabled: map[fsmpb.TaskType]bool{}}
	var errs []string
	seen := map[string]bool{}
	for _, kv := range settings {
		key, value, ok := strings.Cut(kv, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" {
			errs = append(errs, fmt.Sprintf("%q is not KEY=VALUE (keys: %s)", kv, policySetKeys()))
			continue
		}
		if seen[key] {
			errs = append(errs, fmt.Sprintf("%s is given twice", key))
			continue
		}
		seen[key] = true
		switch {
		case key == "paused":
			b, err := strconv.ParseBool(value)
			if err != nil {
				errs = append(errs, fmt.Sprintf("paused=%q: want true or false", value))
				continue
			}
			ps.paused = &b
		case key == "reason":
			ps.reason = &value
		case strings.HasSuffix(key, ".enabled"):
			t, err := fsm.ParseTaskType(strings.TrimSuffix(key, ".enabled"))
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s", key, err))
				continue
			}
			b, err := strconv.ParseBool(value)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: want true or false", key, value))
				continue
			}
			if _, dup := ps.enabled[t]; dup {
				errs = append(errs, fmt.Sprintf("task type %s is given twice", fsm.TypeName(t)))
				continue
			}
			ps.enabled[t] = b
		default:
			ok, err := setDocKey(toPolicyDoc(&fsmpb.Policy{}), key, value)
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("unknown key %q (want %s)", key, policySetKeys()))
			case err != nil:
				errs = append(errs, err.Error())
			default:
				ps.doc = append(ps.doc, [2]string{key, value})
			}
		}
	}
	return ps, errs
}

// apply gives policy p with the settings applied, in canonical form, or
// one sentence per mistake (fsm.ValidatePolicy) and no policy.
func (ps policySettings) apply(p *fsmpb.Policy) (*fsmpb.Policy, []string) {
	next := fsm.NormalizePolicy(p)
	if ps.paused != nil {
		next.Paused = *ps.paused
	}
	switch {
	case ps.reason != nil:
		next.PauseReason = *ps.reason
	case !next.Paused:
		// Resuming drops the reason of the pause.
		next.PauseReason = ""
	}
	for _, t := range fsm.TaskTypes {
		on, ok := ps.enabled[t]
		if !ok {
			continue
		}
		next.Types = slices.DeleteFunc(next.Types, func(tp *fsmpb.TaskTypePolicy) bool { return tp.Type == t })
		if !on {
			next.Types = append(next.Types, &fsmpb.TaskTypePolicy{Type: t, Disabled: true})
		}
	}
	if len(ps.doc) > 0 {
		d := toPolicyDoc(next)
		for _, kv := range ps.doc {
			if _, err := setDocKey(d, kv[0], kv[1]); err != nil {
				return nil, []string{err.Error()}
			}
		}
		var errs []string
		if next, errs = d.policy(); len(errs) > 0 {
			return nil, errs
		}
	}
	if errs := fsm.ValidatePolicy(next); len(errs) > 0 {
		return nil, errs
	}
	return fsm.NormalizePolicy(next), nil
}

func (o *ctlOpts) policySet(args []string) error {
	fs, err := o.subFlags("policy set", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("policy set needs at least one KEY=VALUE (keys: %s)", policySetKeys())
	}
	ps, errs := parsePolicySettings(fs.Args())
	if len(errs) > 0 {
		return usagef("nothing changed: %s", strings.Join(errs, "; "))
	}
	cur, err := o.getPolicy()
	if err != nil {
		return err
	}
	next, errs := ps.apply(cur.Policy)
	if len(errs) > 0 {
		return usagef("nothing changed: %s", strings.Join(errs, "; "))
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.SetPolicyResponse, error) {
		return a.SetPolicy(ctx, &pb.SetPolicyRequest{Policy: next, ExpectedRevision: cur.Policy.GetRevision()})
	})
	if err != nil {
		return err
	}
	return printPolicyChange(o, cur.Policy, resp.Policy, resp.Changed)
}

// printPolicyChange reports a change from before to after.
func printPolicyChange(o *ctlOpts, before, after *fsmpb.Policy, changed bool) error {
	if o.json {
		return o.writeJSON(map[string]any{"changed": changed, "policy": toPolicyJSON(after)})
	}
	if !changed {
		fmt.Fprintf(o.out, "policy unchanged (revision %d): it already was as asked\n", after.GetRevision())
		return nil
	}
	summary := fsm.PolicySummary(before, after)
	if summary == "" {
		summary = "changed"
	}
	fmt.Fprintf(o.out, "policy revision %d: %s\n", after.GetRevision(), summary)
	return nil
}

func (o *ctlOpts) policyHistory(args []string) error {
	fs, err := o.subFlags("policy history", args, nil)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	resp, err := o.getPolicy()
	if err != nil {
		return err
	}
	out := []policyChangeJSON{}
	for _, c := range resp.History {
		out = append(out, policyChangeJSON{Revision: c.Revision, At: stamp(c.At), By: c.By, Summary: c.Summary})
	}
	return printRows(o, "no policy changes (the default policy holds)", "REVISION\tAT\tBY\tCHANGE", out, func(w io.Writer, c policyChangeJSON) {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", c.Revision, c.At, c.By, c.Summary)
	})
}

func (o *ctlOpts) pause(args []string) error {
	var reason string
	fs, err := o.subFlags("pause", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why, one line (shown by ctl status)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.PauseResponse, error) {
		return a.Pause(ctx, &pb.PauseRequest{Reason: reason})
	})
	if err != nil {
		return err
	}
	if o.json {
		return o.writeJSON(map[string]any{"changed": resp.Changed, "policy": toPolicyJSON(resp.Policy)})
	}
	if !resp.Changed {
		fmt.Fprintf(o.out, "maintenance was already paused (policy revision %d)\n", resp.Policy.GetRevision())
		return nil
	}
	fmt.Fprintf(o.out, "maintenance paused (policy revision %d): nothing new is detected or assigned from the next round; running tasks finish\n", resp.Policy.GetRevision())
	return nil
}

func (o *ctlOpts) resume(args []string) error {
	fs, err := o.subFlags("resume", args, nil)
	if err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.ResumeResponse, error) {
		return a.Resume(ctx, &pb.ResumeRequest{})
	})
	if err != nil {
		return err
	}
	if o.json {
		return o.writeJSON(map[string]any{"changed": resp.Changed, "policy": toPolicyJSON(resp.Policy)})
	}
	if !resp.Changed {
		fmt.Fprintf(o.out, "maintenance was not paused (policy revision %d)\n", resp.Policy.GetRevision())
		return nil
	}
	fmt.Fprintf(o.out, "maintenance resumed (policy revision %d)\n", resp.Policy.GetRevision())
	return nil
}

// policyEdit sets the whole policy from a file in the form policy show
// --format prints, if the policy is still at the file's revision.
func (o *ctlOpts) policyEdit(args []string) error {
	fs, err := o.subFlags("policy edit", args, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("policy edit needs one FILE (write one with policy show --format toml)")
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read the policy file: %w", err)
	}
	d, err := parsePolicyDoc(b)
	if err != nil {
		return usagef("nothing changed: %s", err)
	}
	next, errs := d.policy()
	if len(errs) > 0 {
		return usagef("nothing changed: %s", strings.Join(errs, "; "))
	}
	cur, err := o.getPolicy()
	if err != nil {
		return err
	}
	resp, err := ctlCall(o, func(ctx context.Context, a pb.AdminClient) (*pb.SetPolicyResponse, error) {
		return a.SetPolicy(ctx, &pb.SetPolicyRequest{Policy: next, ExpectedRevision: d.Revision})
	})
	if err != nil {
		return err
	}
	return printPolicyChange(o, cur.Policy, resp.Policy, resp.Changed)
}
