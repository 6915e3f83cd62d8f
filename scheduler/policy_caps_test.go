package scheduler

import (
	"math/rand"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

const (
	capVacuum  = fsmpb.TaskType_TASK_TYPE_VACUUM
	capBalance = fsmpb.TaskType_TASK_TYPE_BALANCE
	capEC      = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
)

// TestAdmitByCaps: each cap holds on its own, a task touching several
// servers counts on each, and a cap already exceeded (lowered below what
// runs) admits nothing more on it.
func TestAdmitByCaps(t *testing.T) {
	w := func(typ fsmpb.TaskType, coll string, servers ...string) CapWork {
		return CapWork{Type: typ, Collection: coll, Servers: servers}
	}
	for _, tc := range []struct {
		name       string
		p          *fsmpb.Policy
		active     []CapWork
		candidates []CapWork
		want       int
	}{
		{"no caps", &fsmpb.Policy{}, nil, []CapWork{w(capVacuum, "", "a"), w(capVacuum, "", "a")}, 2},
		{"global", &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{Global: 2}}, []CapWork{w(capVacuum, "", "a")},
			[]CapWork{w(capVacuum, "", "b"), w(capVacuum, "", "c")}, 1},
		{"type", &fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: capBalance, MaxConcurrent: 1}}}, nil,
			[]CapWork{w(capBalance, "", "a", "b"), w(capBalance, "", "c", "d"), w(capVacuum, "", "e")}, 2},
		{"collection", &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{PerCollection: 1}}, nil,
			[]CapWork{w(capVacuum, "x", "a"), w(capVacuum, "x", "b"), w(capVacuum, "y", "c")}, 2},
		{"server, each touched", &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{PerServer: 1}}, nil,
			[]CapWork{w(capBalance, "", "a", "b"), w(capVacuum, "", "b"), w(capVacuum, "", "c"), w(capEC, "", "c", "d")}, 2},
		{"lowered below running", &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{PerServer: 1}},
			[]CapWork{w(capVacuum, "", "a"), w(capVacuum, "", "a")}, []CapWork{w(capVacuum, "", "a"), w(capVacuum, "", "b")}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AdmitByCaps(tc.p, tc.active, tc.candidates); len(got) != tc.want {
				t.Fatalf("admitted %v; want %d", got, tc.want)
			}
		})
	}
}

// TestAdmitByCapsProperty: over random policies and task mixes, no count
// that was within its cap before admission exceeds it after, and one that
// was over it does not grow; and a candidate is refused only for a cap.
func TestAdmitByCapsProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	types := []fsmpb.TaskType{capVacuum, capBalance, capEC}
	colls := []string{"", "a", "b"}
	servers := []string{"s1", "s2", "s3", "s4", "s5"}
	randWork := func() CapWork {
		w := CapWork{Type: types[rng.Intn(len(types))], Collection: colls[rng.Intn(len(colls))]}
		for _, s := range servers {
			if rng.Intn(3) == 0 {
				w.Servers = append(w.Servers, s)
			}
		}
		return w
	}
	capOf := func() uint32 { return uint32(rng.Intn(5)) } // 0: none
	for i := 0; i < 3000; i++ {
		p := &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{Global: capOf(), PerServer: capOf(), PerCollection: capOf()}}
		for _, typ := range types {
			p.Types = append(p.Types, &fsmpb.TaskTypePolicy{Type: typ, MaxConcurrent: capOf()})
		}
		var active, cands []CapWork
		for n := rng.Intn(6); n > 0; n-- {
			active = append(active, randWork())
		}
		for n := rng.Intn(12); n > 0; n-- {
			cands = append(cands, randWork())
		}
		before := NewCapUsage(active)
		after := NewCapUsage(append(append([]CapWork(nil), active...), AdmitByCaps(p, active, cands)...))
		check := func(what string, b, a int, cap uint32) {
			if cap == 0 {
				return
			}
			if a > max(b, int(cap)) || (b >= int(cap) && a != b) {
				t.Fatalf("case %d: %s went from %d to %d under cap %d (policy %v, active %v, candidates %v)", i, what, b, a, cap, p, active, cands)
			}
		}
		check("total", before.Total, after.Total, p.Caps.Global)
		for _, typ := range types {
			check("type", before.ByType[typ], after.ByType[typ], fsm.TypeCap(p, typ))
		}
		for _, c := range colls {
			check("collection "+c, before.ByCollection[c], after.ByCollection[c], p.Caps.PerCollection)
		}
		for _, s := range servers {
			check("server "+s, before.ByServer[s], after.ByServer[s], p.Caps.PerServer)
		}
		// With no caps, everything is admitted.
		if got := AdmitByCaps(&fsmpb.Policy{}, active, cands); len(got) != len(cands) {
			t.Fatalf("case %d: no caps admitted %d of %d", i, len(got), len(cands))
		}
	}
}
