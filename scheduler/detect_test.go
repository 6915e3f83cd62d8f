package scheduler

import (
	"math/rand"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// noBalance is the default thresholds with balancing effectively off, for
// cases that are about vacuum or erasure coding alone.
func noBalance() Thresholds {
	th := DefaultThresholds()
	th.BalanceImbalance = 1e9
	return th
}

// oneMove is the default thresholds with one balance move per round and
// disk type, for cases about which move balance picks.
func oneMove() Thresholds {
	th := DefaultThresholds()
	th.BalanceMovesPerRound = 1
	return th
}

// caseSetup is what a table case runs with: noBalance's thresholds as
// adjust (if set) changes them, and busy, or idle if unset.
func caseSetup(adjust func(*Thresholds), busy Busy) (Thresholds, Busy) {
	th := noBalance()
	if adjust != nil {
		adjust(&th)
	}
	if busy == nil {
		busy = idle
	}
	return th, busy
}

// fourServers is four servers with 20 slots each; the first holds vols.
// Used by EC cases, which need >= 4 servers.
func fourServers(vols ...vol) []*node {
	return []*node{srv(sid(1), 20, vols...), srv(sid(2), 20), srv(sid(3), 20), srv(sid(4), 20)}
}

func TestDetectVacuum(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vols  []vol
		busy  Busy
		th    func(*Thresholds)
		want  []string
		check func(*testing.T, []Proposal)
	}{
		{name: "no garbage", vols: []vol{v(1, 1000)}, want: []string{}},
		{name: "garbage below threshold", vols: []vol{v(1, 1000).Garbage(299)}, want: []string{}},
		{name: "garbage at threshold", vols: []vol{v(1, 1000).Garbage(300)}, want: []string{"vacuum 1"}},
		{name: "garbage above threshold", vols: []vol{v(1, 1000).Garbage(301)}, want: []string{"vacuum 1"}},
		{name: "all garbage", vols: []vol{v(1, 1000).Garbage(1000)}, want: []string{"vacuum 1"}},
		{name: "configured threshold", vols: []vol{v(1, 1000).Garbage(300), v(2, 1000).Garbage(500)},
			th: func(th *Thresholds) { th.VacuumGarbage = 0.5 }, want: []string{"vacuum 2"}},
		{name: "empty volume never vacuumed", vols: []vol{v(1, 0).Garbage(50)}, want: []string{}},
		{name: "empty volume never vacuumed even at the lowest threshold", vols: []vol{v(1, 0)},
			th: func(th *Thresholds) { th.VacuumGarbage = 1e-9 }, want: []string{}},
		{name: "busy volume skipped", vols: []vol{v(1, 1000).Garbage(900), v(2, 1000).Garbage(900)},
			busy: busyOn(1), want: []string{"vacuum 2"}},
		{name: "several, in volume id order", vols: []vol{v(9, 1000).Garbage(400), v(3, 1000).Garbage(400), v(5, 1000).Garbage(100), v(4, 1000).Garbage(999)},
			want: []string{"vacuum 3", "vacuum 4", "vacuum 9"}},
		{name: "proposal fields", vols: []vol{v(7, 1000).Garbage(500).In("pics")}, want: []string{"vacuum 7"},
			check: func(t *testing.T, ps []Proposal) {
				p := ps[0]
				if p.Collection != "pics" || p.Priority != 10 || p.Source != "" || p.Target != "" {
					t.Errorf("proposal = %+v, want collection pics, priority 10, no source/target", p)
				}
				if !contains(p.Reason, "50%", "30%") {
					t.Errorf("reason %q does not give the garbage ratio and the threshold", p.Reason)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, busy := caseSetup(tc.th, tc.busy)
			// One server: no balance, no EC (needs 4).
			topo := build(100, srv(sid(1), 20, tc.vols...))
			got := Detect(topo, busy, nil, th, now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestDetectVacuumUsesLargestReplica(t *testing.T) {
	// Replicas disagree: the volume's size and garbage are the largest any
	// replica reports (seaweed.FromVolumeList), so 400/1000 is vacuumed.
	topo := build(100, srv(sid(1), 20, v(1, 1000).Garbage(100)), srv(sid(2), 20, v(1, 900).Garbage(400)))
	if got := summary(Detect(topo, idle, nil, noBalance(), now)); !reflect.DeepEqual(got, []string{"vacuum 1"}) {
		t.Fatalf("Detect = %v, want [vacuum 1]", got)
	}
}

func TestDetectErasureCoding(t *testing.T) {
	const limit = 100 // MB
	full := uint64(96 * mib)
	for _, tc := range []struct {
		name    string
		limitMB uint64 // 0: 100 MB
		noLimit bool   // the master reports no size limit
		nodes   []*node
		busy    Busy
		th      func(*Thresholds)
		want    []string
	}{
		{name: "full, quiet, big, 4 servers", nodes: fourServers(v(1, full).Mod(ago(2 * time.Hour))), want: []string{"ec 1"}},
		{name: "fullness exactly at ratio", nodes: fourServers(v(1, 95*mib).Mod(ago(2 * time.Hour))), want: []string{"ec 1"}},
		{name: "fullness just below ratio", nodes: fourServers(v(1, 95*mib-1).Mod(ago(2 * time.Hour))), want: []string{}},
		{name: "quiet exactly the quiet period", nodes: fourServers(v(1, full).Mod(ago(time.Hour))), want: []string{"ec 1"}},
		{name: "quiet one second short", nodes: fourServers(v(1, full).Mod(ago(time.Hour - time.Second))), want: []string{}},
		{name: "modified in the future (clock skew) is not quiet", nodes: fourServers(v(1, full).Mod(now.Add(time.Minute).Unix())), want: []string{}},
		{name: "configured quiet period", nodes: fourServers(v(1, full).Mod(ago(10 * time.Minute))),
			th: func(th *Thresholds) { th.ECQuietFor = 5 * time.Minute }, want: []string{"ec 1"}},
		// Limit 20 MB: 19.5 MiB is 97.5% full but below the 30 MB minimum.
		{name: "full but below minimum size", limitMB: 20, nodes: fourServers(v(1, 19*mib+mib/2).Mod(ago(2 * time.Hour))), want: []string{}},
		{name: "exactly the minimum size", limitMB: 30, nodes: fourServers(v(1, 30*mib).Mod(ago(2 * time.Hour))), want: []string{"ec 1"}},
		{name: "one byte under the minimum size", limitMB: 30, nodes: fourServers(v(1, 30*mib-1).Mod(ago(2 * time.Hour))),
			th: func(th *Thresholds) { th.ECFullness = 0.5 }, want: []string{}},
		{name: "configured minimum size", limitMB: 20, nodes: fourServers(v(1, 19*mib+mib/2).Mod(ago(2 * time.Hour))),
			th: func(th *Thresholds) { th.ECMinSizeMB = 19 }, want: []string{"ec 1"}},
		{name: "only 3 servers", nodes: fourServers(v(1, full).Mod(ago(2 * time.Hour)))[:3], want: []string{}},
		{name: "many servers", nodes: append(fourServers(v(1, full).Mod(ago(2*time.Hour))), srv(sid(5), 20), srv(sid(6), 20)), want: []string{"ec 1"}},
		{name: "already erasure coded (shards present)", nodes: []*node{
			srv(sid(1), 20, v(1, full).Mod(ago(2*time.Hour))).Shards(1, 0, 1, 2, 3),
			srv(sid(2), 20), srv(sid(3), 20), srv(sid(4), 20)}, want: []string{}},
		{name: "shards of another volume do not matter", nodes: []*node{
			srv(sid(1), 20, v(1, full).Mod(ago(2*time.Hour))).Shards(2, allShards()...),
			srv(sid(2), 20), srv(sid(3), 20), srv(sid(4), 20)}, want: []string{"ec 1"}},
		{name: "busy volume skipped", nodes: fourServers(v(1, full).Mod(ago(2*time.Hour)), v(2, full).Mod(ago(2*time.Hour))),
			busy: busyOn(1), want: []string{"ec 2"}},
		{name: "unknown size limit", noLimit: true, nodes: fourServers(v(1, full).Mod(ago(2 * time.Hour))), want: []string{}},
		{name: "vacuum wins over EC", nodes: fourServers(v(1, full).Mod(ago(2*time.Hour)).Garbage(full/2), v(2, full).Mod(ago(2*time.Hour))),
			want: []string{"vacuum 1", "ec 2"}},
		{name: "replicated volume: one proposal", nodes: []*node{
			srv(sid(1), 20, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 20, v(1, full).Mod(ago(2*time.Hour))),
			srv(sid(3), 20), srv(sid(4), 20)}, want: []string{"ec 1"}},
		// Placement 001 asks for two copies: one listed is a repair's
		// business (or its server's return), not an encode's, which would
		// wait for the missing copy for as long as it is missing.
		{name: "under-replicated volume: no EC", nodes: fourServers(
			vrp(1, full, 1).Mod(ago(2*time.Hour)), v(2, full).Mod(ago(2*time.Hour))), want: []string{"ec 2"}},
		{name: "every copy of its placement listed: EC", nodes: []*node{
			srv(sid(1), 20, vrp(1, full, 1).Mod(ago(2*time.Hour))), srv(sid(2), 20, vrp(1, full, 1).Mod(ago(2*time.Hour))),
			srv(sid(3), 20), srv(sid(4), 20)}, want: []string{"ec 1"}},
		{name: "EC in volume id order after all vacuums", nodes: fourServers(
			v(8, full).Mod(ago(2*time.Hour)), v(2, full).Mod(ago(2*time.Hour)), v(5, 1000).Garbage(999), v(9, 1000).Garbage(999)),
			want: []string{"vacuum 5", "vacuum 9", "ec 2", "ec 8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, busy := caseSetup(tc.th, tc.busy)
			limitMB := uint64(limit)
			switch {
			case tc.noLimit:
				limitMB = 0
			case tc.limitMB != 0:
				limitMB = tc.limitMB
			}
			topo := build(limitMB, tc.nodes...)
			got := Detect(topo, busy, nil, th, now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			for _, p := range got {
				if p.Type == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING && (p.Priority != 5 || p.Reason == "") {
					t.Errorf("EC proposal %+v: want priority 5 and a reason", p)
				}
			}
		})
	}
}

func TestDetectBalance(t *testing.T) {
	s1, s2, s3, s4 := sid(1), sid(2), sid(3), sid(4)
	for _, tc := range []struct {
		name  string
		nodes []*node
		busy  Busy
		moves []ActiveMove
		th    float64 // imbalance threshold; 0 = default 0.2
		want  []string
	}{
		{name: "single server", nodes: []*node{srv(s1, 8, fillers(1, 8)...)}, want: []string{}},
		{name: "second server has no slots at all", nodes: []*node{srv(s1, 8, fillers(1, 6)...), srv(s2, 0)}, want: []string{}},
		{name: "evenly loaded", nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, fillers(10, 3)...)}, want: []string{}},
		{name: "empty cluster", nodes: []*node{srv(s1, 8), srv(s2, 8)}, want: []string{}},
		// 3/8 vs 1/8: (max-min)/avg = (2/8)/(2/8) = 1.0 exactly.
		{name: "imbalance exactly at threshold", th: 1.0,
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{"balance 1 " + s1 + "->" + s2}},
		{name: "imbalance just below threshold", th: 1.0001,
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		// 11/100 vs 10/100: 0.01/0.105 < 0.2.
		{name: "slight imbalance under the default", nodes: []*node{srv(s1, 100, fillers(1, 11)...), srv(s2, 100, fillers(50, 10)...)}, want: []string{}},
		{name: "fullest to emptiest of three", nodes: []*node{
			srv(s1, 8, fillers(10, 2)...), srv(s2, 8, fillers(1, 5)...), srv(s3, 8)}, want: []string{"balance 1 " + s2 + "->" + s3}},
		{name: "ratio, not count: a big server with more volumes is emptier", nodes: []*node{
			srv(s1, 4, fillers(1, 3)...), srv(s2, 40, fillers(10, 5)...)}, want: []string{"balance 1 " + s1 + "->" + s2}},
		{name: "smallest volume the target lacks", nodes: []*node{
			srv(s1, 8, v(1, 300), v(2, 100), v(3, 50), v(4, 100)), srv(s2, 8, v(3, 50))},
			want: []string{"balance 2 " + s1 + "->" + s2}},
		{name: "size tie goes to the lowest id", nodes: []*node{
			srv(s1, 8, v(9, 100), v(4, 100), v(6, 100), v(5, 200)), srv(s2, 8)},
			want: []string{"balance 4 " + s1 + "->" + s2}},
		{name: "never a volume the target already holds", nodes: []*node{
			srv(s1, 4, v(1, 10), v(2, 10), v(3, 10)), srv(s2, 16, v(1, 10), v(2, 10), v(3, 10))}, want: []string{}},
		{name: "busy volume not moved", busy: busyOn(1), nodes: []*node{
			srv(s1, 8, v(1, 10), v(2, 20), v(3, 30)), srv(s2, 8)}, want: []string{"balance 2 " + s1 + "->" + s2}},
		{name: "all movable volumes busy", busy: busyOn(1, 2, 3), nodes: []*node{
			srv(s1, 8, v(1, 10), v(2, 20), v(3, 30)), srv(s2, 8)}, want: []string{}},
		{name: "volume taken by vacuum not also moved", nodes: []*node{
			srv(s1, 8, v(1, 10).Garbage(9), v(2, 20), v(3, 30)), srv(s2, 8)}, want: []string{"vacuum 1", "balance 2 " + s1 + "->" + s2}},
		{name: "move that would only swap which server is fuller", nodes: []*node{
			srv(s1, 8, fillers(1, 2)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		// 2/4 = 0.5 vs 4/16 = 0.25; after a move 1/4 = 0.25 < 5/16.
		{name: "swap check uses ratios", nodes: []*node{
			srv(s1, 4, fillers(1, 2)...), srv(s2, 16, fillers(10, 4)...)}, want: []string{}},
		{name: "move that evens the servers out is allowed", nodes: []*node{
			srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{"balance 1 " + s1 + "->" + s2}},
		{name: "move in flight counted: no duplicate move", busy: busyOn(1),
			moves: []ActiveMove{{Source: s1, Target: s2}},
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		{name: "move in flight counted: a further move still proposed if needed", busy: busyOn(1),
			moves: []ActiveMove{{Source: s1, Target: s3}},
			nodes: []*node{srv(s1, 8, fillers(1, 6)...), srv(s2, 8, v(20, mib)), srv(s3, 8)},
			want:  []string{"balance 2 " + s1 + "->" + s3}},
		// 4/8 vs 1/8 with a move s1->s2 in flight is 3/8 vs 2/8: another
		// move would only swap them. Counting only the target (4/8 vs 2/8)
		// would propose one.
		{name: "move in flight counted on its source too", busy: busyOn(1),
			moves: []ActiveMove{{Source: s1, Target: s2}},
			nodes: []*node{srv(s1, 8, fillers(1, 4)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		{name: "move in flight named by SeaweedFS address", busy: busyOn(1),
			moves: []ActiveMove{{Source: swa(1), Target: swa(2)}},
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		{name: "move in flight named by gRPC address", busy: busyOn(1),
			moves: []ActiveMove{{Source: grpcAddr(1), Target: grpcAddr(2)}},
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{}},
		{name: "move in flight between servers no longer listed is ignored",
			moves: []ActiveMove{{Source: "10.9.9.9:8080", Target: "10.9.9.8:8080"}},
			nodes: []*node{srv(s1, 8, fillers(1, 3)...), srv(s2, 8, v(20, mib))}, want: []string{"balance 1 " + s1 + "->" + s2}},
		// The emptiest server by volume count has no free slot: EC shards use
		// them. PlanSpec would refuse the move ("no free volume slot"), and the
		// refused task would be detected again on the next poll.
		{name: "emptiest server without a free slot gets nothing", nodes: []*node{
			srv(s1, 8, fillers(1, 4)...), srv(s2, 8).WithFree(0).Shards(100, allShards()...)}, want: []string{}},
		{name: "target slot already promised to a move in flight", busy: busyOn(1),
			moves: []ActiveMove{{Source: s3, Target: s2}},
			nodes: []*node{srv(s1, 8, fillers(1, 6)...), srv(s2, 8).WithFree(1), srv(s3, 8, fillers(10, 6)...)}, want: []string{}},
		// Replica placement: s3 (rack r2) is the emptiest, but volumes 1
		// and 2 (010) have their other copy on s2 in r2.
		{name: "010 never moved next to its other copy", nodes: []*node{
			srv(s1, 8, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r1"),
			srv(s2, 8, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r2"),
			srv(s3, 8).Placed("dc1", "r2"),
			srv(s4, 8, v(9, 1)).Placed("dc1", "r1")},
			want: []string{"balance 1 " + s1 + "->" + s4}},
		{name: "010: the copy already in the target's rack moves instead", nodes: []*node{
			srv(s1, 8, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r1"),
			srv(s2, 8, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r2"),
			srv(s3, 8).Placed("dc1", "r2")},
			want: []string{"balance 1 " + s2 + "->" + s3}},
		{name: "010 with nowhere to go keeps its place", nodes: []*node{
			srv(s1, 8, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r1"),
			srv(s2, 80, v(1, 10).RP(10), v(2, 20).RP(10), v(3, 30).RP(10), v(4, 40).RP(10)).Placed("dc1", "r2"),
			srv(s3, 8).Placed("dc1", "r2")},
			want: []string{}},
		// Volume 3 (010) has both copies in r1: moving it to r2 fixes it,
		// and it goes first though volume 1 is smaller.
		{name: "misplaced volume is fixed first", nodes: []*node{
			srv(s1, 8, v(1, 10), v(2, 20), v(3, 30).RP(10), v(4, 40)).Placed("dc1", "r1"),
			srv(s2, 8, v(3, 30).RP(10)).Placed("dc1", "r1"),
			srv(s3, 8).Placed("dc1", "r2")},
			want: []string{"balance 3 " + s1 + "->" + s3}},
		// Volume 1 (010) lists one copy: its twin's server (in r2) is
		// missing from this topology (restarting, cut off). Moving the
		// listed copy into r2 looks no worse here, but would put both copies
		// in one rack when the twin's server is back: not moved.
		{name: "010 with a copy missing from the topology is not moved", nodes: []*node{
			srv(s1, 8, v(1, 10).RP(10), v(2, 20), v(3, 30), v(4, 40)).Placed("dc1", "r1"),
			srv(s3, 8).Placed("dc1", "r2")},
			want: []string{"balance 2 " + s1 + "->" + s3}},
		// Volume 1 has a replica on s1's hdd and one on s2's ssd: balancing
		// hdd must not move the ssd replica (copying it onto an hdd disk).
		{name: "replicas on two disk types: neither is moved", nodes: []*node{
			srv(s1, 8, v(1, 5)),
			srv(s2, 8, v(2, 20), v(3, 30), v(4, 40), v(5, 50)).WithDisk("ssd", 4, v(1, 5)),
			srv(s3, 8)},
			want: []string{"balance 2 " + s2 + "->" + s3}},
		// Volume 1 (001) has copies in r1 and r2: SeaweedFS calls it
		// misplaced, but moving s2's copy into r1 would put both in one
		// rack, so the smaller volume 2 moves instead.
		{name: "001 in two racks is not collapsed into one", nodes: []*node{
			srv(s1, 8, v(1, 30).RP(1)).Placed("dc1", "r1"),
			srv(s2, 8, v(1, 30).RP(1), v(2, 10), v(3, 20), v(4, 40)).Placed("dc1", "r2"),
			srv(s3, 8).Placed("dc1", "r1")},
			want: []string{"balance 2 " + s2 + "->" + s3}},
		// Volume 1 has a replica and EC shards (an encode that did not
		// finish, or a stale copy back): left for the operator, not moved.
		{name: "volume with EC shards listed is not moved", nodes: []*node{
			srv(s1, 8, v(1, 5), v(2, 20), v(3, 30), v(4, 40)).Shards(1, 0, 1, 2),
			srv(s2, 8)},
			want: []string{"balance 2 " + s1 + "->" + s2}},
		{name: "001 never onto the machine of its other copy", nodes: []*node{
			srv(s1, 8, v(1, 10).RP(1), v(2, 20), v(3, 30)),
			srv(s2, 8, v(1, 10).RP(1), v(5, 1)),
			srv("10.0.0.2:8081", 8)},
			want: []string{"balance 2 " + s1 + "->10.0.0.2:8081"}},
		// Disk types balance apart: s1's ssd is full, s2 has hdd slots only,
		// s3 an emptier ssd; s1's hdd is as full as s2's and s3's.
		{name: "ssd volume goes to an ssd disk, never an hdd one", nodes: []*node{
			srv(s1, 8, v(10, 1)).WithDisk("ssd", 4, v(1, 10), v(2, 20), v(3, 30), v(4, 40)),
			srv(s2, 8, v(11, 1)),
			srv(s3, 8, v(12, 1)).WithDisk("ssd", 4, v(5, 1))},
			want: []string{"balance 1 " + s1 + "->" + s3}},
		{name: "ssd imbalance with no other ssd disk proposes nothing", nodes: []*node{
			srv(s1, 8, v(10, 1)).WithDisk("ssd", 4, v(1, 10), v(2, 20), v(3, 30), v(4, 40)),
			srv(s2, 8, v(11, 1))},
			want: []string{}},
		{name: "each disk type balanced on its own", nodes: []*node{
			srv(s1, 8, fillers(20, 6)...).WithDisk("ssd", 4, v(1, 10), v(2, 20), v(3, 30)),
			srv(s2, 8).WithDisk("ssd", 4)},
			want: []string{"balance 20 " + s1 + "->" + s2, "balance 1 " + s1 + "->" + s2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := oneMove()
			if tc.th != 0 {
				th.BalanceImbalance = tc.th
			}
			busy := tc.busy
			if busy == nil {
				busy = idle
			}
			topo := build(100, tc.nodes...)
			got := Detect(topo, busy, tc.moves, th, now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			for _, p := range got {
				if p.Type == fsmpb.TaskType_TASK_TYPE_BALANCE && (p.Priority != 1 || p.Reason == "") {
					t.Errorf("balance proposal %+v: want priority 1 and a reason", p)
				}
			}
			assertPlannable(t, topo, got)
		})
	}
}

// assertPlannable checks that every proposal Detect makes can be planned: a
// proposal PlanSpec refuses would become a failed task, and the volume would
// be detected again on the next poll.
func assertPlannable(t *testing.T, topo *seaweed.Topology, ps []Proposal) {
	t.Helper()
	for _, p := range ps {
		task := &fsmpb.Task{Id: 1, Type: p.Type, VolumeId: p.VolumeID, Collection: p.Collection, Source: p.Source, Target: p.Target}
		if _, err := PlanSpec(task, topo, DefaultThresholds()); err != nil {
			t.Errorf("Detect proposed %v, which PlanSpec refuses: %v", summary([]Proposal{p}), err)
		}
	}
}

func TestDetectBusySkippedForEveryType(t *testing.T) {
	full := uint64(96 * mib)
	// 1: vacuum, 2: EC, 3 (smallest on the fullest server): balance.
	nodes := []*node{
		srv(sid(1), 10, v(1, 1000).Garbage(900), v(2, full).Mod(ago(2*time.Hour)), v(3, 10), v(4, 20), v(5, 30), v(6, 40)),
		srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10, v(7, 10)),
	}
	// s2 and s3 are equally empty; the emptiest is the one sorted last (s3).
	bal := func(id int) string { return "balance " + strconv.Itoa(id) + " " + sid(1) + "->" + sid(3) }
	for _, tc := range []struct {
		name string
		busy Busy
		want []string
	}{
		{name: "nothing busy", busy: idle, want: []string{"vacuum 1", "ec 2", bal(3)}},
		{name: "vacuum candidate busy", busy: busyOn(1), want: []string{"ec 2", bal(3)}},
		{name: "EC candidate busy", busy: busyOn(2), want: []string{"vacuum 1", bal(3)}},
		{name: "balance candidate busy", busy: busyOn(3), want: []string{"vacuum 1", "ec 2", bal(4)}},
		{name: "all busy", busy: busyOn(1, 2, 3, 4, 5, 6), want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(100, nodes...)
			got := Detect(topo, tc.busy, nil, oneMove(), now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			assertPlannable(t, topo, got)
		})
	}
}

func TestDetectECNeedsUsableServers(t *testing.T) {
	// Four servers, but two have no free slot: the shards cannot be spread
	// over 4 servers, so PlanSpec refuses EC. Detect must not propose it
	// (else a failed task is created on every poll).
	full := uint64(96 * mib)
	for _, tc := range []struct {
		name  string
		nodes []*node
		want  []string
	}{
		{name: "4 servers, 2 full", nodes: []*node{
			srv(sid(1), 4, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4), srv(sid(3), 1, v(10, mib)), srv(sid(4), 1, v(11, mib))},
			want: []string{}},
		{name: "4 servers, only the source full: still 4 usable", nodes: []*node{
			srv(sid(1), 1, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4), srv(sid(3), 4), srv(sid(4), 4)},
			want: []string{"ec 1"}},
		{name: "5 servers, 1 full", nodes: []*node{
			srv(sid(1), 4, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4), srv(sid(3), 4), srv(sid(4), 4), srv(sid(5), 1, v(10, mib))},
			want: []string{"ec 1"}},
		{name: "ssd volume, 3 servers with ssd: the hdd slots do not count", nodes: []*node{
			srv(sid(1), 4).WithDisk("ssd", 4, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4).WithDisk("ssd", 4), srv(sid(3), 4).WithDisk("ssd", 4), srv(sid(4), 4), srv(sid(5), 4)},
			want: []string{}},
		{name: "ssd volume, 4 servers with ssd", nodes: []*node{
			srv(sid(1), 4).WithDisk("ssd", 4, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4).WithDisk("ssd", 4), srv(sid(3), 4).WithDisk("ssd", 4), srv(sid(4), 4).WithDisk("ssd", 4)},
			want: []string{"ec 1"}},
		{name: "3 servers with a free hard drive slot, one listing hdd under two spellings: still 3", nodes: []*node{
			srv(sid(1), 4, v(1, full).Mod(ago(2*time.Hour))), srv(sid(2), 4), srv(sid(3), 4).WithDisk("hdd", 4), srv(sid(4), 1, v(10, mib))},
			want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(100, tc.nodes...)
			got := Detect(topo, idle, nil, noBalance(), now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			assertPlannable(t, topo, got)
		})
	}
}

// mixed is a topology calling for every kind of work, spread over data
// centers and racks so that shuffling changes the master's answer a lot.
func mixed() []*node {
	full := uint64(97 * mib)
	return []*node{
		srv(sid(1), 12, v(1, 1000).Garbage(500), v(2, full).Mod(ago(3*time.Hour)), v(3, 30), v(4, 20), v(5, 20), v(6, 1000).Garbage(310),
			v(7, full).Mod(ago(5*time.Hour)), v(8, 40)).Placed("dc1", "r1"),
		srv(sid(2), 12, v(1, 1000).Garbage(480), v(9, full).Mod(ago(2*time.Hour)), v(10, 10)).Placed("dc1", "r2"),
		srv(sid(3), 12, v(11, 50)).Placed("dc2", "r1").Shards(40, 0, 1, 2, 3, 4),
		srv(sid(4), 12, v(12, 1000).Garbage(700)).Placed("dc2", "r1").Shards(40, 5, 6, 7, 8, 9),
		srv(sid(5), 12).Placed("dc3", "r9").Shards(40, 10, 11, 12, 13),
		srv(sid(6), 12, v(13, 60), v(2, full).Mod(ago(4*time.Hour))).Placed("dc1", "r1"),
	}
}

func TestDetectDeterministic(t *testing.T) {
	th := DefaultThresholds()
	want := Detect(build(100, mixed()...), idle, nil, th, now)
	wantSummary := []string{"vacuum 1", "vacuum 6", "vacuum 12", "ec 2", "ec 7", "ec 9",
		"balance 4 " + sid(1) + "->" + sid(5), "balance 5 " + sid(1) + "->" + sid(5), "balance 3 " + sid(1) + "->" + sid(4), "balance 8 " + sid(1) + "->" + sid(3)}
	if !reflect.DeepEqual(summary(want), wantSummary) {
		t.Fatalf("Detect = %v, want %v", summary(want), wantSummary)
	}
	for _, p := range want {
		if p.Reason == "" {
			t.Errorf("proposal %+v has no reason", p)
		}
	}
	t.Run("same topology, repeated", func(t *testing.T) {
		topo := build(100, mixed()...)
		for i := 0; i < 100; i++ {
			if got := Detect(topo, idle, nil, th, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("run %d: Detect = %+v, want %+v", i, got, want)
			}
		}
	})
	t.Run("servers and volumes listed in other orders", func(t *testing.T) {
		for seed := int64(1); seed <= 50; seed++ {
			topo := seaweed.FromVolumeList(volumeList(100, rand.New(rand.NewSource(seed)), mixed()...))
			if got := Detect(topo, idle, nil, th, now); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: Detect = %+v, want %+v", seed, got, want)
			}
		}
	})
	t.Run("a volume gets at most one proposal", func(t *testing.T) {
		seen := map[uint32]bool{}
		for _, p := range want {
			if seen[p.VolumeID] {
				t.Fatalf("volume %d proposed twice: %v", p.VolumeID, summary(want))
			}
			seen[p.VolumeID] = true
		}
	})
}

func TestDetectDoesNotMutateTopology(t *testing.T) {
	topo := build(100, mixed()...)
	before := summary(Detect(topo, idle, []ActiveMove{{Source: sid(1), Target: sid(5)}}, DefaultThresholds(), now))
	again := summary(Detect(topo, idle, []ActiveMove{{Source: sid(1), Target: sid(5)}}, DefaultThresholds(), now))
	if !reflect.DeepEqual(before, again) {
		t.Fatalf("second Detect = %v, first %v: Detect changed the topology", again, before)
	}
	ref := build(100, mixed()...)
	for i, s := range topo.Servers {
		for typ, d := range s.Disks {
			if !reflect.DeepEqual(*d, *ref.Servers[i].Disks[typ]) {
				t.Errorf("server %s disk %q = %+v after Detect, want %+v", s.ID, typ, *d, *ref.Servers[i].Disks[typ])
			}
		}
	}
}
