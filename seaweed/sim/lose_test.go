package sim

import (
	"context"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// TestLoseServer: a server lost for good takes its copies with it: the
// durability check reports the volume's redundancy lost (not its data:
// another copy holds every write) until a copy on another server restores
// it; started again, the lost server comes back empty.
func TestLoseServer(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	vid, err := c.AddVolume(VolumeSpec{Size: mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(vid, mib, 5); err != nil {
		t.Fatal(err)
	}
	c.Server(1).Lose()
	oneViolation(t, c.Durability(), vid, []string{"redundancy lost: 1 of the 2 promised regular copies"})
	if c.Server(1).Up() {
		t.Fatal("a lost server is still up")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := volumeCopy(ctx, vsClient(t, c.Server(2)), vid, c.Server(0).ID()); err != nil {
		t.Fatal(err)
	}
	noViolations(t, c, "after a copy restored the second copy")
	if err := c.Server(1).Start(); err != nil {
		t.Fatal(err)
	}
	if vols := c.Server(1).Volumes(); len(vols) != 0 {
		t.Fatalf("the lost server came back with volumes %v; want none", vols)
	}
	noViolations(t, c, "after the lost server came back empty")
}

// TestDurabilityWithout: asked before a loss, the check says which
// volumes a server's loss would leave repairable (another copy, or at
// least 10 shards elsewhere) and which beyond repair (its only copy).
func TestDurabilityWithout(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	two, err := c.AddVolume(VolumeSpec{Size: mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	one, err := c.AddVolume(VolumeSpec{Size: mib, FileCount: 10, Servers: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.DurabilityWithout(2); len(v) != 0 {
		t.Fatalf("losing a server with nothing: %v", v)
	}
	v := c.DurabilityWithout(1)
	if len(v) != 2 || v[0].VolumeID != two || !v[0].Repairable || v[1].VolumeID != one || v[1].Repairable {
		t.Fatalf("losing server 1: %v; want volume %d repairable and %d not", v, two, one)
	}
	noViolations(t, c, "after only asking")
	c.Server(1).Lose()
	if v := c.Durability(); len(v) != 2 || !v[0].Repairable || v[1].Repairable {
		t.Fatalf("after the loss: %v", v)
	}
}

// TestDurabilityWithoutEC: an EC volume stays repairable while 10 shards
// of its generation remain (server 1's 4 lost), and is beyond repair with
// fewer (server 0's 10 lost).
func TestDurabilityWithoutEC(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 100, Servers: []int{0}}))
	ok(t, c.Write(7, mib, 3))
	ecEncode(t, c, 7, true)
	must[*vpb.VolumeDeleteResponse](t)(vsClient(t, c.Server(0)).VolumeDelete(ctxT(t), &vpb.VolumeDeleteRequest{VolumeId: 7}))
	if v := c.DurabilityWithout(1); len(v) != 1 || !v[0].Repairable {
		t.Fatalf("without the server holding 4 shards: %v; want volume 7 repairable", v)
	}
	if v := c.DurabilityWithout(0); len(v) != 1 || v[0].Repairable {
		t.Fatalf("without the server holding 10 shards: %v; want volume 7 beyond repair", v)
	}
}
