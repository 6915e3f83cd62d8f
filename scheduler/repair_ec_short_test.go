package scheduler

import (
	"slices"
	"testing"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ecList is a VolumeListResponse of EC volume 7 on servers a and b: a
// mounts shards 0..9, b shards 3 and 10..13, at the sizes given (nil: the
// master sends none, as an older SeaweedFS).
func ecList(aSizes, bSizes []int64) *master_pb.VolumeListResponse {
	node := func(id string, bits uint32, sizes []int64) *master_pb.DataNodeInfo {
		return &master_pb.DataNodeInfo{Id: id, GrpcPort: 18080, DiskInfos: map[string]*master_pb.DiskInfo{"": {
			MaxVolumeCount: 10,
			EcShardInfos:   []*master_pb.VolumeEcShardInformationMessage{{Id: 7, EcIndexBits: bits, ShardSizes: sizes}},
		}}}
	}
	return &master_pb.VolumeListResponse{TopologyInfo: &master_pb.TopologyInfo{DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1",
		RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: []*master_pb.DataNodeInfo{
			node("a:8080", 1<<10-1, aSizes),
			node("b:8080", 1<<3|0b1111<<10, bSizes),
		}}}}}}}
}

// TestTruncatedShardCopies: a shard copy reported smaller than another
// shard on its server is a truncated file (a copy a crash cut short,
// mounted when its server restarted beside the .ecx of its other shards):
// the topology lists it apart (Short), not as the shard. A shard held
// only truncated is missing (a rebuild regenerates it); a truncated copy
// beside a whole one is a duplicate (remove_extra deletes it, and only
// it). Without sizes every copy counts as whole.
func TestTruncatedShardCopies(t *testing.T) {
	ten := func(n int64) []int64 {
		s := make([]int64, 10)
		for i := range s {
			s[i] = n
		}
		return s
	}
	// b: shard 3 at 40 bytes, 10 and 11 whole, 12 at 50, 13 whole.
	topo := seaweed.FromVolumeList(ecList(ten(100), []int64{40, 100, 100, 50, 100}))
	e := topo.EcVolumes[7]
	if !slices.Equal(e.Shards[3], []string{"a:8080"}) || !slices.Equal(e.Short[3], []string{"b:8080"}) ||
		len(e.Shards[12]) != 0 || !slices.Equal(e.Short[12], []string{"b:8080"}) || e.ShardCount() != 13 {
		t.Fatalf("shards %v, short %v: want shard 3 whole on a only, 12 held only truncated", e.Shards, e.Short)
	}
	if d := topo.Servers[1].Disks[""]; d.EcShards != 5 {
		t.Errorf("b counts %d shards on its disk, want 5 (a truncated copy takes room)", d.EcShards)
	}
	ls := ECLosses(topo)
	if len(ls) != 1 || !slices.Equal(ls[0].Missing, []uint32{12}) || !ls[0].Repairable || len(ls[0].Duplicates) != 1 ||
		!slices.Equal(ls[0].Duplicates[3], []string{"a:8080", "b:8080"}) {
		t.Fatalf("losses %+v: want shard 12 missing and repairable, shard 3 duplicated on a and b", ls)
	}
	// b's truncated shard 3 (whole on a) is its only extra copy; 12, held
	// only truncated, is missing, not a duplicate.
	if victim, shards, ok := ShardVictim(e, topo); !ok || victim != "b:8080" || !slices.Equal(shards, []uint32{3}) {
		t.Errorf("victim %s %v (%v), want b's truncated shard 3 only", victim, shards, ok)
	}

	// Another encode run on b (all its shards whole, of another size)
	// is no truncation: sizes are compared on one server only. Shard 3
	// is then listed twice (a duplicate remove_extra refuses to resolve
	// by size, as before).
	topo = seaweed.FromVolumeList(ecList(ten(100), []int64{80, 80, 80, 80, 80}))
	if e := topo.EcVolumes[7]; e.Short != nil || len(e.Shards[3]) != 2 || e.ShardCount() != 14 {
		t.Fatalf("another run on b: shards %v, short %v", e.Shards, e.Short)
	}

	// Without shard sizes nothing is told apart.
	topo = seaweed.FromVolumeList(ecList(nil, nil))
	if e := topo.EcVolumes[7]; e.Short != nil || len(e.Shards[3]) != 2 || e.ShardCount() != 14 {
		t.Fatalf("without sizes: shards %v, short %v", e.Shards, e.Short)
	}
}
