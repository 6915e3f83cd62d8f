package fsm

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// The maintenance policy: one replicated, versioned object (fsmpb.Policy)
// that operators change with SetPolicy and the scheduler reads every
// round. The zero value is the default policy (nothing paused, every type
// enabled), and a state whose policy was never set stores nothing, so its
// snapshots and hashes are those of builds that predate the policy.

// MaxPolicyHistory bounds the policy history kept in the state: the
// newest changes.
const MaxPolicyHistory = 50

// MaxPolicyReasonLen bounds a pause reason, and MaxPolicyByLen the
// identity a change records, in bytes.
const (
	MaxPolicyReasonLen = 256
	MaxPolicyByLen     = 256
)

// ValidatePolicy checks a policy as an operator gives it, returning one
// sentence per mistake (nil: valid). Its revision and updated_* fields are
// not checked: Apply sets them.
func ValidatePolicy(p *fsmpb.Policy) []string {
	if p == nil {
		return []string{"no policy given"}
	}
	var errs []string
	if len(p.PauseReason) > MaxPolicyReasonLen {
		errs = append(errs, fmt.Sprintf("the pause reason is %d bytes long, more than %d", len(p.PauseReason), MaxPolicyReasonLen))
	}
	if strings.IndexFunc(p.PauseReason, unicode.IsControl) >= 0 {
		errs = append(errs, "the pause reason must be one line without control characters")
	}
	if p.PauseReason != "" && !p.Paused {
		errs = append(errs, "a pause reason is given but the policy is not paused")
	}
	seen := map[fsmpb.TaskType]bool{}
	var typeErrs []string
	for _, tp := range p.Types {
		switch {
		case tp == nil:
			typeErrs = append(typeErrs, "a task type entry is empty")
		case !ValidType(tp.Type):
			typeErrs = append(typeErrs, fmt.Sprintf("unknown task type %d (want %s)", int32(tp.Type), typeList()))
		case seen[tp.Type]:
			typeErrs = append(typeErrs, fmt.Sprintf("task type %s is given twice", TypeName(tp.Type)))
		default:
			seen[tp.Type] = true
		}
	}
	// A bounded answer to any input: the first few, and how many more.
	const maxTypeErrs = 3
	if n := len(typeErrs) - maxTypeErrs; n > 0 {
		typeErrs = append(typeErrs[:maxTypeErrs], fmt.Sprintf("%d more task type entries are wrong", n))
	}
	errs = append(errs, typeErrs...)
	return append(errs, validateControlFields(p)...)
}

// typeList names the known task types for refusals.
func typeList() string {
	names := make([]string, len(TaskTypes))
	for i, t := range TaskTypes {
		names[i] = TypeName(t)
	}
	return strings.Join(names, ", ")
}

// NormalizePolicy returns a valid policy's canonical form, a copy: its
// per-type entries sorted by type, those that say nothing beyond the
// default (enabled) dropped, and the fields Apply sets cleared.
func NormalizePolicy(p *fsmpb.Policy) *fsmpb.Policy {
	out := &fsmpb.Policy{Paused: p.GetPaused(), PauseReason: p.GetPauseReason()}
	for _, tp := range p.GetTypes() {
		if tp == nil || proto.Equal(tp, &fsmpb.TaskTypePolicy{Type: tp.Type}) {
			continue
		}
		out.Types = append(out.Types, proto.Clone(tp).(*fsmpb.TaskTypePolicy))
	}
	slices.SortFunc(out.Types, func(a, b *fsmpb.TaskTypePolicy) int { return int(a.Type) - int(b.Type) })
	normalizeControlFields(out, p)
	return out
}

// TypeEnabled reports whether policy p lets type t be detected and
// assigned (ignoring a pause). A nil policy is the default.
func TypeEnabled(p *fsmpb.Policy, t fsmpb.TaskType) bool {
	for _, tp := range p.GetTypes() {
		if tp.GetType() == t {
			return !tp.GetDisabled()
		}
	}
	return true
}

// PolicyAllows reports whether policy p lets new work of type t start
// (be detected, or be assigned): not paused, and t enabled.
func PolicyAllows(p *fsmpb.Policy, t fsmpb.TaskType) bool {
	return !p.GetPaused() && TypeEnabled(p, t)
}

// PolicySummary says in one line what changed from policy a to policy b
// ("" if nothing did).
func PolicySummary(a, b *fsmpb.Policy) string {
	var parts []string
	switch {
	case !a.GetPaused() && b.GetPaused():
		parts = append(parts, pausedText(b))
	case a.GetPaused() && !b.GetPaused():
		parts = append(parts, "resumed")
	case a.GetPaused() && a.GetPauseReason() != b.GetPauseReason():
		parts = append(parts, fmt.Sprintf("pause reason %q", b.GetPauseReason()))
	}
	types := slices.Clone(TaskTypes)
	for _, tp := range append(slices.Clone(a.GetTypes()), b.GetTypes()...) {
		if !slices.Contains(types, tp.GetType()) {
			types = append(types, tp.GetType())
		}
	}
	for _, t := range types {
		switch ea, eb := TypeEnabled(a, t), TypeEnabled(b, t); {
		case ea && !eb:
			parts = append(parts, TypeName(t)+" disabled")
		case !ea && eb:
			parts = append(parts, TypeName(t)+" enabled")
		}
	}
	return strings.Join(append(parts, controlSummary(a, b)...), "; ")
}

func pausedText(p *fsmpb.Policy) string {
	if p.GetPauseReason() == "" {
		return "paused"
	}
	return fmt.Sprintf("paused (reason: %s)", p.GetPauseReason())
}

// Policy returns the maintenance policy (the default, revision 0, if it
// was never set). The result must not be modified.
func (s *State) Policy() *fsmpb.Policy {
	if s.policy == nil {
		return &fsmpb.Policy{}
	}
	return s.policy
}

// PolicyHistory returns the policy's last changes, oldest first. The
// entries must not be modified.
func (s *State) PolicyHistory() []*fsmpb.PolicyChange {
	return slices.Clone(s.policyHistory)
}

// setPolicy applies a SetPolicy: validated as a whole before anything
// changes, compare-and-set on the revision unless pause_only, recorded
// only if it changes something.
func (s *State) setPolicy(now int64, c *fsmpb.SetPolicy) (p *fsmpb.Policy, unchanged bool, err *Error) {
	cur := s.Policy()
	if len(c.By) > MaxPolicyByLen {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "the identity of a policy change is %d bytes long, more than %d", len(c.By), MaxPolicyByLen)
	}
	if errs := ValidatePolicy(c.Policy); len(errs) > 0 {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "invalid policy: %s", strings.Join(errs, "; "))
	}
	var next *fsmpb.Policy
	if c.PauseOnly {
		next = NormalizePolicy(cur)
		next.Paused, next.PauseReason = c.Policy.Paused, c.Policy.PauseReason
	} else {
		if c.ExpectedRevision != cur.Revision {
			return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_CONFLICT, "the policy changed meanwhile: it is at revision %d, not %d (last changed by %s); read it again and redo the change", cur.Revision, c.ExpectedRevision, orNobody(cur.UpdatedBy))
		}
		next = NormalizePolicy(c.Policy)
	}
	summary := PolicySummary(cur, next)
	if summary == "" {
		return cur, true, nil
	}
	next.Revision, next.UpdatedAt, next.UpdatedBy = cur.Revision+1, now, c.By
	s.policy = next
	s.policyHistory = append(s.policyHistory, &fsmpb.PolicyChange{Revision: next.Revision, At: now, By: c.By, Summary: summary})
	if n := len(s.policyHistory) - MaxPolicyHistory; n > 0 {
		s.policyHistory = slices.Clone(s.policyHistory[n:])
	}
	return next, false, nil
}

func orNobody(by string) string {
	if by == "" {
		return "nobody"
	}
	return by
}
