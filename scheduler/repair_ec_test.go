package scheduler

import (
	"slices"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// ecServers spreads shards over servers 1..n: servers[i] holds the ids given.
func ecServers(vid uint32, layout ...[]uint32) []*node {
	out := make([]*node, len(layout))
	for i, ids := range layout {
		out[i] = srv(sid(i+1), 10).Shards(vid, ids...)
	}
	return out
}

func TestECLosses(t *testing.T) {
	cases := []struct {
		name       string
		layout     [][]uint32
		want       bool // a loss is reported
		present    int
		missing    []uint32
		dups       []uint32
		repairable bool
	}{
		{name: "whole", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {11, 12, 13}}},
		{name: "two lost", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {11}},
			want: true, present: 12, missing: []uint32{12, 13}, repairable: true},
		{name: "ten left", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}},
			want: true, present: 10, missing: []uint32{10, 11, 12, 13}, repairable: true},
		{name: "nine left", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8}},
			want: true, present: 9, missing: []uint32{9, 10, 11, 12, 13}},
		{name: "duplicate only", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {11, 12, 13, 3}},
			want: true, present: 14, dups: []uint32{3}},
		{name: "duplicate and lost", layout: [][]uint32{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10}, {3, 12}},
			want: true, present: 12, missing: []uint32{11, 13}, dups: []uint32{3}, repairable: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(1024, ecServers(7, tc.layout...)...)
			got := ECLosses(topo)
			if !tc.want {
				if len(got) != 0 {
					t.Fatalf("ECLosses = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("ECLosses = %+v, want one loss", got)
			}
			l := got[0]
			if l.VolumeID != 7 || l.Present != tc.present || !slices.Equal(l.Missing, tc.missing) || l.Repairable != tc.repairable {
				t.Errorf("loss = %+v, want present %d missing %v repairable %v", l, tc.present, tc.missing, tc.repairable)
			}
			var dups []uint32
			for id, holders := range l.Duplicates {
				dups = append(dups, id)
				if len(holders) < 2 {
					t.Errorf("duplicate shard %d lists holders %v", id, holders)
				}
			}
			slices.Sort(dups)
			if !slices.Equal(dups, tc.dups) {
				t.Errorf("duplicates %v, want %v", dups, tc.dups)
			}
			props := ECRebuildProposals(topo, idle)
			if tc.repairable != (len(props) == 1) {
				t.Fatalf("proposals %+v for a loss repairable=%v", props, tc.repairable)
			}
			if len(props) == 1 && (props[0].Type != fsmpb.TaskType_TASK_TYPE_EC_REBUILD || props[0].VolumeID != 7 || props[0].Priority <= 10) {
				t.Errorf("proposal %+v: want an ec_rebuild of volume 7 above routine priorities", props[0])
			}
			if l.String() == "" {
				t.Error("empty description")
			}
		})
	}
}

// TestECRebuildProposalsOrder: fewer shards left come first, whatever the
// volume ids; busy volumes and unrepairable ones are never proposed.
func TestECRebuildProposalsOrder(t *testing.T) {
	nodes := []*node{
		srv(sid(1), 10).Shards(1, 0, 1, 2, 3).Shards(2, 0, 1, 2, 3).Shards(3, 0, 1, 2, 3).Shards(4, 0, 1, 2, 3),
		srv(sid(2), 10).Shards(1, 4, 5, 6, 7).Shards(2, 4, 5, 6, 7).Shards(3, 4, 5, 6, 7).Shards(4, 4, 5, 6, 7),
		srv(sid(3), 10).Shards(1, 8, 9, 10, 11, 12).Shards(2, 8, 9).Shards(3, 8, 9, 10).Shards(4, 8),
	}
	topo := build(1024, nodes...)
	losses := ECLosses(topo)
	if len(losses) != 4 {
		t.Fatalf("losses %+v, want 4", losses)
	}
	// What the metric and status count (the tracker's summary).
	sum := TrackLosses(nil, ECShardLosses(topo), now).Summary()
	if sum.ECMissingShards != 4 || sum.Unrepairable != 1 {
		t.Errorf("EC volumes missing shards %d, unrepairable %d; want 4, 1", sum.ECMissingShards, sum.Unrepairable)
	}
	props := ECRebuildProposals(topo, func(id uint32) bool { return id == 3 })
	var order []uint32
	for _, p := range props {
		order = append(order, p.VolumeID)
	}
	// 2 has 10 shards, 1 has 13; 3 is busy, 4 has 9 (lost).
	if !slices.Equal(order, []uint32{2, 1}) {
		t.Fatalf("proposal order %v, want [2 1]", order)
	}
	if props[0].Priority <= props[1].Priority {
		t.Errorf("priorities %d, %d: fewer shards left must come first", props[0].Priority, props[1].Priority)
	}
}
