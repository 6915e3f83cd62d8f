package scheduler

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func TestReflected(t *testing.T) {
	// Servers named by id "vsN" at 10.0.0.N:8080 (gRPC 18080) so each way of
	// naming a server in a capacity change is distinguishable.
	at := func(n int) string { return sid(n) }
	vs := func(n int, max int64, vols ...vol) *node {
		return srv("vs"+string(rune('0'+n)), max, vols...).At(at(n), 18080)
	}
	for _, tc := range []struct {
		name   string
		change *fsmpb.CapacityChange
		nodes  []*node
		want   bool
	}{
		// Vacuum.
		{name: "vacuum: size changed", want: true,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 600},
			nodes:  []*node{vs(1, 8, v(1, 600))}},
		{name: "vacuum: size grew again after compaction", want: true,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 600},
			nodes:  []*node{vs(1, 8, v(1, 1200))}},
		{name: "vacuum: master still reports the old size", want: false,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 600},
			nodes:  []*node{vs(1, 8, v(1, 1000))}},
		{name: "vacuum: one replica still at the old size", want: false,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 600},
			nodes:  []*node{vs(1, 8, v(1, 600)), vs(2, 8, v(1, 1000))}},
		{name: "vacuum: nothing to reclaim (old = new)", want: true,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 1000},
			nodes:  []*node{vs(1, 8, v(1, 1000))}},
		{name: "vacuum: volume gone", want: true,
			change: &fsmpb.CapacityChange{Type: vacuumT, VolumeId: 1, OldSize: 1000, NewSize: 600},
			nodes:  []*node{vs(1, 8, v(2, 1000))}},

		// Erasure coding.
		{name: "EC: volume gone, 14 shards on one server", want: true,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes:  []*node{vs(1, 8).Shards(1, allShards()...)}},
		{name: "EC: volume gone, 14 shards spread", want: true,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes: []*node{
				vs(1, 8).Shards(1, 0, 4, 8, 12), vs(2, 8).Shards(1, 1, 5, 9, 13),
				vs(3, 8).Shards(1, 2, 6, 10), vs(4, 8).Shards(1, 3, 7, 11)}},
		{name: "EC: 13 shards", want: false,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes: []*node{
				vs(1, 8).Shards(1, 0, 4, 8, 12), vs(2, 8).Shards(1, 1, 5, 9),
				vs(3, 8).Shards(1, 2, 6, 10), vs(4, 8).Shards(1, 3, 7, 11)}},
		{name: "EC: 13 distinct shards, one held twice", want: false,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes: []*node{
				vs(1, 8).Shards(1, 0, 1, 2, 3, 4, 5, 6), vs(2, 8).Shards(1, 6, 7, 8, 9, 10, 11, 12)}},
		{name: "EC: all shards but the volume still present", want: false,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes:  []*node{vs(1, 8, v(1, 100)).Shards(1, allShards()...)}},
		{name: "EC: neither volume nor shards", want: false,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes:  []*node{vs(1, 8, v(2, 100))}},
		{name: "EC: shards of another volume", want: false,
			change: &fsmpb.CapacityChange{Type: ecT, VolumeId: 1},
			nodes:  []*node{vs(1, 8).Shards(2, allShards()...)}},

		// Balance.
		{name: "balance: moved (ids)", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "vs1", Target: "vs2"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(1, 100))}},
		{name: "balance: moved (SeaweedFS addresses)", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "10.0.0.1:8080.18080", Target: "10.0.0.2:8080.18080"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(1, 100))}},
		{name: "balance: moved (HTTP addresses)", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "10.0.0.1:8080", Target: "10.0.0.2:8080"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(1, 100))}},
		{name: "balance: moved (gRPC addresses)", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "10.0.0.1:18080", Target: "10.0.0.2:18080"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(1, 100))}},
		{name: "balance: moved, other replicas elsewhere", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "vs1", Target: "vs2"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(1, 100)), vs(3, 8, v(1, 100))}},
		{name: "balance: still on source (copy not yet reported)", want: false,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "vs1", Target: "vs2"},
			nodes:  []*node{vs(1, 8, v(1, 100)), vs(2, 8)}},
		{name: "balance: on both (source delete not yet reported)", want: false,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "10.0.0.1:8080.18080", Target: "vs2"},
			nodes:  []*node{vs(1, 8, v(1, 100)), vs(2, 8, v(1, 100))}},
		{name: "balance: on neither", want: false,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "vs1", Target: "vs2"},
			nodes:  []*node{vs(1, 8), vs(2, 8), vs(3, 8, v(1, 100))}},
		{name: "balance: volume not in the topology", want: true,
			change: &fsmpb.CapacityChange{Type: balanceT, VolumeId: 1, Source: "vs1", Target: "vs2"},
			nodes:  []*node{vs(1, 8), vs(2, 8, v(2, 100))}},

		{name: "unknown type retires", want: true,
			change: &fsmpb.CapacityChange{Type: fsmpb.TaskType_TASK_TYPE_UNSPECIFIED, VolumeId: 1},
			nodes:  []*node{vs(1, 8, v(1, 100))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(100, tc.nodes...)
			if got := capacity.Reflected(tc.change, topo); got != tc.want {
				t.Fatalf("capacity.Reflected(%v) = %v, want %v", tc.change, got, tc.want)
			}
		})
	}
}
