package sim

import (
	"strings"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestReplicaNeedleSets: replicas that hold the same needles list the same
// live set from their .idx whatever their compaction history; a write that
// reached one replica only makes them differ.
func TestReplicaNeedleSets(t *testing.T) {
	c := newCluster(t, Config{Servers: 2})
	vid := must[uint32](t)(c.AddVolume(VolumeSpec{Size: 10 * mib, FileCount: 6, DeleteCount: 2, DeletedBytes: mib, ReplicaPlacement: 1}))
	ctx := ctxT(t)
	vc := seaweed.NewVolumeClient()
	t.Cleanup(func() { vc.Close() })
	a, b := c.Server(0).Address().String(), c.Server(1).Address().String()
	sets := func() (seaweed.NeedleSet, seaweed.NeedleSet) {
		t.Helper()
		x := must[seaweed.NeedleSet](t)(vc.LiveNeedles(ctx, a, vid, ""))
		y := must[seaweed.NeedleSet](t)(vc.LiveNeedles(ctx, b, vid, ""))
		return x, y
	}
	// Compact one replica only: revisions differ, the live sets do not.
	v0 := vsClient(t, c.Server(0))
	must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(ctx, v0, vid))
	must[*vpb.VacuumVolumeCommitResponse](t)(v0.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: vid}))
	x, y := sets()
	if x.Len() != 4 {
		t.Fatalf("%d live needles, want 4", x.Len())
	}
	if xo, yo := x.Diff(y); xo != 0 || yo != 0 {
		t.Fatalf("compacted and uncompacted replicas differ: %d/%d", xo, yo)
	}
	st0, _ := c.Server(0).Volume(vid)
	st1, _ := c.Server(1).Volume(vid)
	if st0.CompactRevision == st1.CompactRevision {
		t.Fatalf("revisions %d and %d, want different", st0.CompactRevision, st1.CompactRevision)
	}
	// Writes to both, then a delete, keep them equal.
	ok(t, c.Write(vid, mib, 3))
	ok(t, c.DeleteData(vid, 1024, 1))
	x, y = sets()
	if xo, yo := x.Diff(y); xo != 0 || yo != 0 || x.Len() != 6 {
		t.Fatalf("after a write and a delete: %d live, differ %d/%d", x.Len(), xo, yo)
	}
	// A write that reached the second replica only.
	ok(t, c.WriteReplica(vid, b, mib, 2))
	x, y = sets()
	if xo, yo := x.Diff(y); xo != 0 || yo != 2 {
		t.Fatalf("after a one-sided write: differ %d/%d, want 0/2", xo, yo)
	}
}

// TestFaultSkipAndHook: a rule can let calls through before it fires, and
// runs its hook when it fires.
func TestFaultSkipAndHook(t *testing.T) {
	c := newCluster(t, Config{Servers: 1})
	vid := must[uint32](t)(c.AddVolume(VolumeSpec{Size: mib}))
	vc := vsClient(t, c.Server(0))
	ctx := ctxT(t)
	hooked := 0
	h := c.InjectFault(Fault{Method: "VolumeStatus", VolumeID: vid, Skip: 2, FailNext: 1, OnFire: func() { hooked++ }})
	for i := 0; i < 4; i++ {
		_, err := vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: vid})
		if (err != nil) != (i == 2) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if hooked != 1 || h.Fired() != 1 {
		t.Fatalf("hook ran %d times, rule fired %d, want 1 and 1", hooked, h.Fired())
	}
}

// TestSetMaxVolumes: the master reports the new free slots.
func TestSetMaxVolumes(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, MaxVolumesPerServer: 10})
	mc := masterClient(t, c)
	c.Server(0).SetMaxVolumes(3)
	deadline := time.Now().Add(10 * time.Second)
	for {
		topo := topology(t, mc)
		if len(topo.Servers) == 1 && topo.Servers[0].Disks[""] != nil && topo.Servers[0].Disks[""].FreeSlots == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("free slots never became 3: %+v", topo.Servers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNeedleSetsRefuseUnknownBuild: a volume server whose version does not
// tell its index entry size (neither a 30GB nor an 8000GB build) is not
// read: its entries would be cut at the wrong size.
func TestNeedleSetsRefuseUnknownBuild(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, Version: "9TB 9.99"})
	vid := must[uint32](t)(c.AddVolume(VolumeSpec{Size: 10 * mib, FileCount: 6}))
	vc := seaweed.NewVolumeClient()
	t.Cleanup(func() { vc.Close() })
	if _, err := vc.LiveNeedles(ctxT(t), c.Server(0).Address().String(), vid, ""); err == nil || !strings.Contains(err.Error(), "index entry size") {
		t.Fatalf("LiveNeedles on an unknown build: %v; want a refusal", err)
	}
}
