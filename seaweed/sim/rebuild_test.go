package sim

import (
	"slices"
	"strings"
	"testing"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// VolumeEcShardsRebuild regenerates exactly the shard files a server
// lacks, from at least 10 of one generation, and the durability check
// accepts the result; with fewer it refuses.
func TestVolumeEcShardsRebuild(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 4, Size: 10 * mib, FileCount: 10, Shards: map[int][]uint32{0: allShards()[:9], 1: allShards()[9:]}}))
	vc := vsClient(t, c.Server(0))

	// Nine shards: refused, nothing made.
	if _, err := vc.VolumeEcShardsRebuild(ctxT(t), &vpb.VolumeEcShardsRebuildRequest{VolumeId: 4}); err == nil || !strings.Contains(err.Error(), "need 10") {
		t.Fatalf("rebuild from 9 shards: %v", err)
	}
	c.Server(1).LoseEcShards(4, 12, 13)
	if len(c.Durability()) == 0 {
		t.Fatal("no violation with shards 12 and 13 lost")
	}
	// Server 0 gets shard 9 (and not 10, 11): 10 shards, rebuilds 10-13.
	_, err := vc.VolumeEcShardsCopy(ctxT(t), &vpb.VolumeEcShardsCopyRequest{VolumeId: 4, ShardIds: []uint32{9}, SourceDataNode: c.Server(1).Address().String(), CopyEcjFile: true})
	ok(t, err)
	resp, err := vc.VolumeEcShardsRebuild(ctxT(t), &vpb.VolumeEcShardsRebuildRequest{VolumeId: 4})
	ok(t, err)
	if want := []uint32{10, 11, 12, 13}; !slices.Equal(resp.RebuiltShardIds, want) {
		t.Fatalf("rebuilt %v, want %v", resp.RebuiltShardIds, want)
	}
	if v := c.Durability(); len(v) != 0 {
		t.Fatalf("durability after the rebuild: %v", v)
	}

}
