package sim

import (
	"strings"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// Deleting every replica of a volume loses its data, unless an operator
// retired it on purpose with DropVolume: then it is gone from every server
// (even one that is down) and from the master, and the durability checks no
// longer look at it.
func TestDropVolumeIsAnIntentionalDeletion(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	mc := masterClient(t, c)
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Size: 10 * mib, FileCount: 10, Servers: []int{2}}))
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 3, Size: 10 * mib, FileCount: 10, Shards: map[int][]uint32{0: allShards()[:7], 2: allShards()[7:]}}))
	ok(t, c.Write(1, mib, 3))
	noViolations(t, c, "before")

	// The same deletion through a volume server is data loss.
	_, err := vsClient(t, c.Server(2)).VolumeDelete(ctxT(t), &vpb.VolumeDeleteRequest{VolumeId: 2})
	ok(t, err)
	oneViolation(t, c.Durability(), 2, []string{"data lost"}, "VolumeDelete")
	if err := c.DropVolume(2); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("DropVolume of a volume no server holds: %v, want not found", err)
	}

	c.Server(1).Stop()
	ok(t, c.DropVolume(1))
	ok(t, c.DropVolume(3))
	ok(t, c.Server(1).Start())
	for _, s := range c.Servers() {
		if _, held := s.Volume(1); held {
			t.Errorf("%s still holds volume 1", s.ID())
		}
		if _, held := s.EcShards(3); held {
			t.Errorf("%s still holds shards of volume 3", s.ID())
		}
	}
	testutil.EventuallyTrue(t, 5*time.Second, "the master to forget volumes 1 and 3", func() bool {
		topo := topology(t, mc)
		return topo.Volumes[1] == nil && topo.EcVolumes[3] == nil && len(topo.Servers) == 3
	})
	oneViolation(t, c.Durability(), 2, []string{"data lost"}, "VolumeDelete")
	if got := c.DroppedVolumes(); got != 2 {
		t.Errorf("DroppedVolumes = %d, want 2", got)
	}
	// A new volume gets a fresh id: a dropped one is not reused.
	if id := must[uint32](t)(c.AddVolume(VolumeSpec{Size: mib, Servers: []int{0}})); id <= 3 {
		t.Errorf("new volume got id %d, want above 3", id)
	}
}

// DropVolume refuses, changing nothing, while a replica is being compacted.
func TestDropVolumeRefusesWhileCompacting(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, CompactDuration: 2 * time.Second})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, DeleteCount: 5, DeletedBytes: 5 * mib, Servers: []int{0}}))
	go func() { _, _ = compact(ctxT(t), vsClient(t, c.Server(0)), 1) }()
	testutil.EventuallyTrue(t, 5*time.Second, "the compaction to start", func() bool {
		v, _ := c.Server(0).Volume(1)
		return v.Compacting
	})
	if err := c.DropVolume(1); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("DropVolume during a compaction: %v, want a refusal", err)
	}
	if _, held := c.Server(0).Volume(1); !held {
		t.Fatal("a refused DropVolume deleted the replica")
	}
}
