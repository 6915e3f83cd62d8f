package placement

import (
	"cmp"
	"net"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Replica placement, as SeaweedFS defines it (weed/topology/balancer,
// replica_placement.go and replica_selection.go; weed/super_block): a
// placement "xyz" asks for x copies in other data centres, y in other racks
// of the same data centre and z on other servers of the same rack, 1+x+y+z
// in all. The functions below follow SeaweedFS's code rule for rule, so a
// move we make is one volume.balance would make, and a volume we call
// misplaced is one volume.fix.replication would.

// Location is where one replica of a volume lives, at the granularity
// replica placement reasons about. Host is the machine (the server
// address's host): servers sharing one are one fault domain. An empty Host
// is unknown and never conflicts.
type Location struct {
	DC, Rack, Server, Host string
}

// ServerLocation is the location of a replica on s.
func ServerLocation(s *seaweed.Server) Location {
	return Location{DC: s.DataCenter, Rack: s.Rack, Server: s.ID, Host: serverHost(s)}
}

// VolumeLocations are the locations of v's replicas.
func VolumeLocations(v *seaweed.Volume) []Location {
	out := make([]Location, 0, len(v.Replicas))
	for _, r := range v.Replicas {
		out = append(out, ServerLocation(r.Server))
	}
	return out
}

// serverHost is the machine of a server, as SeaweedFS's
// ServerAddress.ToHost gives it: the host of its HTTP address (its id if
// it has none), or the whole address when it has no port.
func serverHost(s *seaweed.Server) string {
	return hostOf(cmp.Or(s.Addr.HTTP, s.ID))
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") {
		return addr[1 : len(addr)-1]
	}
	return addr
}

// Spread is a replica placement's three counts.
type Spread struct {
	// DiffDC: copies in other data centres (x).
	DiffDC int
	// DiffRack: copies in other racks of the same data centre (y).
	DiffRack int
	// SameRack: copies on other servers of the same rack (z).
	SameRack int
}

// ParseSpread splits a replica placement as the master reports it (the
// number xyz, e.g. 10 for "010") into its counts.
func ParseSpread(rp uint32) Spread {
	return Spread{DiffDC: int(rp / 100 % 10), DiffRack: int(rp / 10 % 10), SameRack: int(rp % 10)}
}

// replicated is SeaweedFS's HasReplication: the placement asks for more
// than one copy.
func (s Spread) replicated() bool { return s.DiffDC != 0 || s.DiffRack != 0 || s.SameRack != 0 }

type rackKey struct{ dc, rack string }

type nodeKey struct{ dc, rack, server string }

// CanAdd reports whether one more replica at target is consistent with the
// placement rp given the replicas at existing (SeaweedFS's
// SatisfyReplicaPlacement): never on a server that already holds one; a new
// data centre only while fewer than x+1 are used; on a used data centre only
// on one holding the most replicas, and there a new rack only while fewer
// than y+1 racks of it are used, or a used rack holding the most replicas
// while it has fewer than z+1.
func CanAdd(rp uint32, existing []Location, target Location) bool {
	sp := ParseSpread(rp)
	dcs := map[string]int{}
	nodes := map[nodeKey]bool{}
	for _, r := range existing {
		dcs[r.DC]++
		nodes[nodeKey{r.DC, r.Rack, r.Server}] = true
	}
	if nodes[nodeKey{target.DC, target.Rack, target.Server}] {
		return false
	}
	if _, ok := dcs[target.DC]; !ok {
		return len(dcs) < sp.DiffDC+1
	}
	if !isTop(dcs, target.DC) {
		return false
	}
	racks := map[rackKey]int{}
	for _, r := range existing {
		if r.DC == target.DC {
			racks[rackKey{r.DC, r.Rack}]++
		}
	}
	tk := rackKey{target.DC, target.Rack}
	n, ok := racks[tk]
	if !ok {
		return len(racks) < sp.DiffRack+1
	}
	if !isTop(racks, tk) {
		return false
	}
	return n < sp.SameRack+1
}

// isTop reports whether k has the highest count in m (ties included).
func isTop[K comparable](m map[K]int, k K) bool {
	top := 0
	for _, c := range m {
		top = max(top, c)
	}
	return m[k] == top
}

// SatisfiesPlacement reports whether the replicas at locs span the failure
// domains rp asks for (SeaweedFS's SatisfyReplicaCurrentLocation): at least
// x+1 data centres, at least y+1 racks, and, when z > 0, some rack holding
// z+1 replicas. It does not look for replicas in excess or in the wrong
// place; Misplaced does.
func SatisfiesPlacement(rp uint32, locs []Location) bool {
	sp := ParseSpread(rp)
	dcs := map[string]bool{}
	racks := map[rackKey]int{}
	for _, l := range locs {
		dcs[l.DC] = true
		racks[rackKey{l.DC, l.Rack}]++
	}
	if len(dcs) < sp.DiffDC+1 || len(racks) < sp.DiffRack+1 {
		return false
	}
	if sp.SameRack > 0 {
		for _, n := range racks {
			if n >= sp.SameRack+1 {
				return true
			}
		}
		return false
	}
	return true
}

// Misplaced reports whether some replica at locs sits where rp would not put
// it given the others (SeaweedFS's IsMisplaced: CanAdd refuses it).
func Misplaced(rp uint32, locs []Location) bool {
	for i := range locs {
		if !CanAdd(rp, without(locs, i), locs[i]) {
			return true
		}
	}
	return false
}

// IsGoodMove reports whether moving the replica on server from to target
// keeps the placement rp satisfied given the replicas at existing
// (SeaweedFS's IsGoodMove): a placement without copies (000) allows any
// move; otherwise never onto the source itself, never when from holds no
// replica, never onto a machine (Host) that holds another replica, and
// CanAdd must accept the target among the replicas that stay.
func IsGoodMove(rp uint32, existing []Location, from string, target Location) bool {
	if !ParseSpread(rp).replicated() {
		return true
	}
	if target.Server == from {
		return false
	}
	after, ok := afterMove(existing, from)
	if !ok {
		return false
	}
	if sharesHost(after, target) {
		return false
	}
	return CanAdd(rp, after, target)
}

// Violations measures how far the replicas at locs are from rp: the number
// of replicas CanAdd refuses given the others, plus the data centres and
// racks missing from the spread SatisfiesPlacement asks for (and one if no
// rack holds z+1 replicas), plus the replicas sharing a server or machine
// with another. It is 0 for a volume placed as SeaweedFS would place it; a
// move of a misplaced volume that does not raise it leaves the volume no
// worse off.
func Violations(rp uint32, locs []Location) int {
	sp := ParseSpread(rp)
	n := 0
	for i := range locs {
		if !CanAdd(rp, without(locs, i), locs[i]) {
			n++
		}
	}
	dcs := map[string]bool{}
	racks := map[rackKey]int{}
	for _, l := range locs {
		dcs[l.DC] = true
		racks[rackKey{l.DC, l.Rack}]++
	}
	n += max(0, sp.DiffDC+1-len(dcs)) + max(0, sp.DiffRack+1-len(racks))
	if sp.SameRack > 0 {
		full := false
		for _, c := range racks {
			full = full || c >= sp.SameRack+1
		}
		if !full {
			n++
		}
	}
	for i := range locs {
		if sharesHost(locs[:i], locs[i]) || sharesServer(locs[:i], locs[i]) {
			n++
		}
	}
	return n
}

// MoveKeepsPlacement reports whether a move of the replica on from to target
// is one a plan may make: it lands on no server or machine holding another
// replica, it does not raise Violations nor make the replicas span fewer
// data centres, racks or machines, and either IsGoodMove accepts it
// or the volume is misplaced already (Violations > 0). The Violations
// guard is stricter than SeaweedFS: its IsGoodMove judges the target as one
// more copy among those that stay, so for a volume short of copies (a 110
// volume with one copy in each of two data centres) it accepts moving the
// copy out of one data centre into the other.
func MoveKeepsPlacement(rp uint32, existing []Location, from string, target Location) bool {
	if target.Server == from {
		return false
	}
	after, ok := afterMove(existing, from)
	if !ok || sharesHost(after, target) || sharesServer(after, target) {
		return false
	}
	before := Violations(rp, existing)
	if before == 0 && !IsGoodMove(rp, existing, from, target) {
		return false
	}
	moved := append(after, target)
	return Violations(rp, moved) <= before && !spreadShrinks(existing, moved)
}

// spreadShrinks reports whether the replicas at after span fewer data
// centres, racks or machines than those at before: a move that lets one
// failure take more copies than it could before makes redundancy worse,
// whatever the placement asks for (SeaweedFS calls a 001 volume in two
// racks misplaced, and would fix it by moving a copy into its twin's rack).
func spreadShrinks(before, after []Location) bool {
	b, a := spreadOf(before), spreadOf(after)
	return a[0] < b[0] || a[1] < b[1] || a[2] < b[2]
}

// spreadOf is the number of distinct data centres, racks and machines
// (Host, or the server when its host is unknown) the replicas at locs use.
func spreadOf(locs []Location) [3]int {
	var n [3]int
	for i, l := range locs {
		newDC, newRack, newHost := true, true, true
		for _, p := range locs[:i] {
			newDC = newDC && p.DC != l.DC
			newRack = newRack && (p.DC != l.DC || p.Rack != l.Rack)
			newHost = newHost && (p.Host != l.Host || l.Host == "" && p.Server != l.Server)
		}
		for k, isNew := range [3]bool{newDC, newRack, newHost} {
			if isNew {
				n[k]++
			}
		}
	}
	return n
}

// afterMove is existing less one replica on from; false if from holds none.
func afterMove(existing []Location, from string) ([]Location, bool) {
	out := make([]Location, 0, len(existing))
	found := false
	for _, r := range existing {
		if r.Server == from && !found {
			found = true
			continue
		}
		out = append(out, r)
	}
	return out, found
}

// without is locs less the i-th.
func without(locs []Location, i int) []Location {
	out := make([]Location, 0, len(locs)-1)
	out = append(out, locs[:i]...)
	return append(out, locs[i+1:]...)
}

func sharesHost(locs []Location, t Location) bool {
	if t.Host == "" {
		return false
	}
	for _, l := range locs {
		if l.Host == t.Host {
			return true
		}
	}
	return false
}

func sharesServer(locs []Location, t Location) bool {
	for _, l := range locs {
		if l.Server == t.Server {
			return true
		}
	}
	return false
}
