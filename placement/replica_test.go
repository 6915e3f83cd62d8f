package placement

import (
	"strconv"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// loc is a replica on server id in dc/rack, its machine taken from the id
// as SeaweedFS's tests take it (ServerAddress.ToHost).
func loc(dc, rack, id string) Location {
	return Location{DC: dc, Rack: rack, Server: id, Host: hostOf(id)}
}

// rp parses "xyz" as the master reports it (the number xyz).
func rp(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || len(s) != 3 {
		t.Fatalf("bad placement %q", s)
	}
	return uint32(n)
}

// TestIsGoodMove is SeaweedFS's TestIsGoodMove
// (weed/shell/command_volume_balance_test.go) and
// TestIsGoodMove_OverReplicatedSourceKeepsOtherReplica
// (weed/topology/balancer/replica_placement_test.go), plus 000 and 200.
func TestIsGoodMove(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rp       string
		replicas []Location
		from     string
		to       Location
		want     bool
	}{
		{"100 move to wrong data centers", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r2", "dn2")}, "dn1", loc("dc2", "r3", "dn3"), false},
		{"100 move to spread into proper data centers", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc2", "r2", "dn3"), true},
		{"move to the same node", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, "dn2", loc("dc1", "r1", "dn2"), false},
		{"move to the same rack, but existing node", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, "dn2", loc("dc1", "r1", "dn1"), false},
		{"move to the same rack, a new node", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, "dn2", loc("dc1", "r1", "dn3"), true},
		{"010 move all to the same rack", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r1", "dn3"), false},
		{"010 move to spread racks", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r3", "dn3"), true},
		{"010 move within its rack", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r2", "dn3"), true},
		{"011 switch which rack has more replicas", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r2", "dn3")}, "dn1", loc("dc1", "r2", "dn4"), true},
		{"011 move the lonely replica to another rack", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r2", "dn3")}, "dn3", loc("dc1", "r3", "dn4"), true},
		{"011 move to wrong racks", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r2", "dn3")}, "dn1", loc("dc1", "r3", "dn4"), false},
		{"011 move all to the same rack", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r2", "dn3")}, "dn3", loc("dc1", "r1", "dn4"), false},
		{"001 reject move onto a machine already holding a replica", "001", []Location{loc("dc1", "r1", "10.0.0.1:8080"), loc("dc1", "r1", "10.0.0.2:8080")}, "10.0.0.2:8080", loc("dc1", "r1", "10.0.0.1:8081"), false},
		{"001 allow move onto a different machine in the rack", "001", []Location{loc("dc1", "r1", "10.0.0.1:8080"), loc("dc1", "r1", "10.0.0.2:8080")}, "10.0.0.2:8080", loc("dc1", "r1", "10.0.0.3:8080"), true},
		{"001 over-replicated source keeps its other replica", "001", []Location{loc("dc1", "r1", "n1"), loc("dc1", "r1", "n1"), loc("dc1", "r1", "n2")}, "n1", loc("dc1", "r1", "n3"), false},
		{"001 normal move within the rack limit", "001", []Location{loc("dc1", "r1", "n1"), loc("dc1", "r1", "n2")}, "n1", loc("dc1", "r1", "n3"), true},
		{"source holds no replica", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, "dn9", loc("dc1", "r1", "dn3"), false},
		{"000 moves anywhere", "000", []Location{loc("dc1", "r1", "dn1")}, "dn1", loc("dc2", "r9", "dn2"), true},
		{"200 move to a third data center", "200", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2"), loc("dc3", "r1", "dn3")}, "dn3", loc("dc4", "r1", "dn4"), true},
		{"200 move next to a copy in its data center", "200", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2"), loc("dc3", "r1", "dn3")}, "dn3", loc("dc1", "r2", "dn4"), false},
		{"110 move within its data center to a new rack", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2"), loc("dc2", "r1", "dn3")}, "dn2", loc("dc1", "r3", "dn4"), true},
		{"110 short of a copy: leaving its data center (SeaweedFS accepts it)", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2")}, "dn1", loc("dc2", "r2", "dn3"), true},
		{"110 move onto the rack of its data center's other copy", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2"), loc("dc2", "r1", "dn3")}, "dn2", loc("dc1", "r1", "dn4"), false},
	} {
		if got := IsGoodMove(rp(t, tc.rp), tc.replicas, tc.from, tc.to); got != tc.want {
			t.Errorf("%s: IsGoodMove(%s, %v, %s, %v) = %v, want %v", tc.name, tc.rp, tc.replicas, tc.from, tc.to, got, tc.want)
		}
	}
}

// TestCanAdd is SeaweedFS's TestSatisfyReplicaPlacement* tables
// (weed/shell/command_volume_fix_replication_test.go).
func TestCanAdd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rp       string
		replicas []Location
		target   Location
		want     bool
	}{
		{"100 negative", "100", []Location{loc("dc1", "r1", "dn1")}, loc("dc1", "r2", "dn2"), false},
		{"100 positive", "100", []Location{loc("dc1", "r1", "dn1")}, loc("dc2", "r2", "dn2"), true},
		{"022 positive", "022", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2"), loc("dc1", "r3", "dn3")}, loc("dc1", "r1", "dn4"), true},
		{"022 negative", "022", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2"), loc("dc1", "r3", "dn3")}, loc("dc1", "r4", "dn4"), false},
		{"210 moved from 200 positive", "210", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r2", "dn2"), loc("dc3", "r3", "dn3")}, loc("dc1", "r4", "dn4"), true},
		{"210 moved from 200 negative extra dc", "210", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r2", "dn2"), loc("dc3", "r3", "dn3")}, loc("dc4", "r4", "dn4"), false},
		{"210 moved from 200 negative extra data node", "210", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r2", "dn2"), loc("dc3", "r3", "dn3")}, loc("dc1", "r1", "dn4"), false},
		{"011 same existing rack", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, loc("dc1", "r2", "dn3"), true},
		{"011 negative", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, loc("dc1", "r1", "dn3"), false},
		{"011 different existing racks", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, loc("dc1", "r2", "dn3"), true},
		{"011 different existing racks negative", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, loc("dc1", "r3", "dn3"), false},
		{"001", "001", []Location{loc("dc1", "r1", "dn1")}, loc("dc1", "r1", "dn2"), true},
		{"002 positive", "002", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, loc("dc1", "r1", "dn3"), true},
		{"002 negative, repeat the same node", "002", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, loc("dc1", "r1", "dn2"), false},
		{"002 negative, enough node already", "002", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r1", "dn3")}, loc("dc1", "r1", "dn4"), false},
		{"100", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, loc("dc2", "r3", "dn3"), true},
		{"010 other rack", "010", []Location{loc("dc1", "r1", "dn1")}, loc("dc1", "r2", "dn2"), true},
		{"010 same rack", "010", []Location{loc("dc1", "r1", "dn1")}, loc("dc1", "r1", "dn2"), false},
		{"000 a second copy", "000", []Location{loc("dc1", "r1", "dn1")}, loc("dc1", "r2", "dn2"), false},
		{"000 the first copy", "000", nil, loc("dc1", "r1", "dn1"), true},
	} {
		if got := CanAdd(rp(t, tc.rp), tc.replicas, tc.target); got != tc.want {
			t.Errorf("%s: CanAdd(%s, %v, %v) = %v, want %v", tc.name, tc.rp, tc.replicas, tc.target, got, tc.want)
		}
	}
}

// TestPlacementOfReplicas is SeaweedFS's TestMisplacedChecking and
// TestSatisfyReplicaCurrentLocation (same file), plus 000, 010 and 200
// cases, with the Violations each placement counts.
func TestPlacementOfReplicas(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		rp                   string
		replicas             []Location
		misplaced, satisfies bool
		violations           int
	}{
		{"001 across racks", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, true, false, 3},
		{"010 across racks", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, false, true, 0},
		{"011", "011", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc1", "r2", "dn3")}, false, true, 0},
		{"110 two in one rack", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc2", "r2", "dn3")}, true, true, 2},
		{"100 in one data center", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, true, false, 3},
		{"000 one copy", "000", []Location{loc("dc1", "r1", "dn1")}, false, true, 0},
		{"001 in one rack", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, false, true, 0},
		{"010 in one rack", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}, true, false, 3},
		{"100 across data centers", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2")}, false, true, 0},
		{"200 across three data centers", "200", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2"), loc("dc3", "r1", "dn3")}, false, true, 0},
		{"200 two in one data center", "200", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2"), loc("dc3", "r1", "dn3")}, true, false, 3},
		{"001 on one machine", "001", []Location{loc("dc1", "r1", "10.0.0.1:8080"), loc("dc1", "r1", "10.0.0.1:8081")}, false, true, 1},
	} {
		r := rp(t, tc.rp)
		if got := Misplaced(r, tc.replicas); got != tc.misplaced {
			t.Errorf("%s: Misplaced = %v, want %v", tc.name, got, tc.misplaced)
		}
		if got := SatisfiesPlacement(r, tc.replicas); got != tc.satisfies {
			t.Errorf("%s: SatisfiesPlacement = %v, want %v", tc.name, got, tc.satisfies)
		}
		if got := Violations(r, tc.replicas); got != tc.violations {
			t.Errorf("%s: Violations = %d, want %d", tc.name, got, tc.violations)
		}
	}
}

// TestMoveKeepsPlacement: a well-placed volume moves only as IsGoodMove
// allows; a misplaced one may also move where it ends no worse, never onto
// a server or machine with another copy.
func TestMoveKeepsPlacement(t *testing.T) {
	oneRack := []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2")}
	for _, tc := range []struct {
		name     string
		rp       string
		replicas []Location
		from     string
		to       Location
		want     bool
	}{
		{"010 placed: never next to its other copy", "010", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r1", "dn3"), false},
		{"010 misplaced: fixed by another rack", "010", oneRack, "dn2", loc("dc1", "r2", "dn3"), true},
		{"010 misplaced: stays as misplaced", "010", oneRack, "dn2", loc("dc1", "r1", "dn3"), true},
		{"010 misplaced: never onto its other copy's server", "010", oneRack, "dn2", loc("dc1", "r1", "dn1"), false},
		{"010 misplaced: never onto its other copy's machine", "010", []Location{loc("dc1", "r1", "10.0.0.1:1"), loc("dc1", "r1", "10.0.0.2:1")}, "10.0.0.2:1", loc("dc1", "r1", "10.0.0.1:2"), false},
		{"100 misplaced: another data center fixes it", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc2", "r1", "dn3"), true},
		{"110 short of a copy: IsGoodMove accepts leaving its data center, the plan does not", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2")}, "dn1", loc("dc2", "r2", "dn3"), false},
		// SeaweedFS calls a 001 volume in two racks misplaced (z asks for
		// the same rack), but moving its copy into its twin's rack would
		// let one rack's failure take both copies: redundancy never shrinks.
		{"001 across racks: never into its twin's rack", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r1", "dn3"), false},
		{"001 across racks: to a third rack", "001", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r3", "dn3"), true},
		{"100 in two data centres, over-replicated: never leaves a data centre empty", "100", []Location{loc("dc1", "r1", "dn1"), loc("dc2", "r1", "dn2"), loc("dc2", "r2", "dn3")}, "dn1", loc("dc2", "r3", "dn4"), false},
		{"000 over-replicated in two racks: never into one rack", "000", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r2", "dn2")}, "dn2", loc("dc1", "r1", "dn3"), false},
		{"000: anywhere but the same server", "000", []Location{loc("dc1", "r1", "dn1")}, "dn1", loc("dc2", "r1", "dn2"), true},
		{"110 misplaced: worse in a third data center", "110", []Location{loc("dc1", "r1", "dn1"), loc("dc1", "r1", "dn2"), loc("dc2", "r2", "dn3")}, "dn2", loc("dc3", "r1", "dn4"), false},
	} {
		if got := MoveKeepsPlacement(rp(t, tc.rp), tc.replicas, tc.from, tc.to); got != tc.want {
			t.Errorf("%s: MoveKeepsPlacement = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestServerLocationHost: a server's machine is its address's host, as
// SeaweedFS's ToHost gives it.
func TestServerLocationHost(t *testing.T) {
	for _, tc := range []struct {
		s    seaweed.Server
		host string
	}{
		{seaweed.Server{ID: "10.0.0.1:8080", Addr: seaweed.Address{HTTP: "10.0.0.1:8080"}}, "10.0.0.1"},
		{seaweed.Server{ID: "dn1"}, "dn1"},
		{seaweed.Server{ID: "x", Addr: seaweed.Address{HTTP: "[::1]:8080"}}, "::1"},
		// No address: the id, in SeaweedFS's host:port.grpcPort form too.
		{seaweed.Server{ID: "10.0.0.1:8080.18080"}, "10.0.0.1"},
		{seaweed.Server{ID: "[fd00::1]:8080.18080"}, "fd00::1"},
		{seaweed.Server{ID: "[fd00::1]"}, "fd00::1"},
	} {
		if got := ServerLocation(&tc.s).Host; got != tc.host {
			t.Errorf("%+v: host %q, want %q", tc.s, got, tc.host)
		}
	}
}
