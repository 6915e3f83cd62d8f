package sim

import (
	"encoding/binary"
	"strings"
	"testing"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// The windows in which a task's own copy holds acknowledged changes the
// original lacks: EC deletes journalled in an .ecj while the frozen
// originals still exist, and writes to a move's mounted target while the
// frozen source still exists. Losing either is a durability violation.

// ecjIDs reads the needle ids of vid's .ecj on s.
func ecjIDs(t *testing.T, s *VolumeServer, vid uint32) []uint64 {
	t.Helper()
	b, _, err := copyFile(ctxT(t), vsClient(t, s), &vpb.CopyFileRequest{VolumeId: vid, Ext: ".ecj", IsEcVolume: true, StopOffset: 1 << 20, IgnoreSourceFileNotFound: true})
	ok(t, err)
	var ids []uint64
	for ; len(b) >= 8; b = b[8:] {
		ids = append(ids, binary.BigEndian.Uint64(b))
	}
	return ids
}

// idxEntries reads vid's .idx on s as (id, size) pairs.
func idxEntries(t *testing.T, s *VolumeServer, vid uint32) [][2]uint64 {
	t.Helper()
	b, _, err := copyFile(ctxT(t), vsClient(t, s), &vpb.CopyFileRequest{VolumeId: vid, Ext: ".idx", CompactionRevision: ^uint32(0), StopOffset: 1 << 30})
	ok(t, err)
	var out [][2]uint64
	for ; len(b) >= idxEntrySize; b = b[idxEntrySize:] {
		out = append(out, [2]uint64{binary.BigEndian.Uint64(b), uint64(binary.BigEndian.Uint32(b[12:]))})
	}
	return out
}

// encodedOnServer0 is a three-server cluster whose server 0 holds volume 7
// (100 files, 2 deleted), frozen and encoded there, nothing mounted yet;
// with clients of servers 0 and 1.
func encodedOnServer0(t *testing.T) (c *Cluster, v0, v1 vpb.VolumeServerClient) {
	t.Helper()
	c = newCluster(t, Config{Servers: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 100, DeleteCount: 2, Servers: []int{0}}))
	ctx := ctxT(t)
	v0, v1 = vsClient(t, c.Server(0)), vsClient(t, c.Server(1))
	must[*vpb.VolumeMarkReadonlyResponse](t)(v0.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 7}))
	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 7}))
	return c, v0, v1
}

func TestDurabilityEcJournalledDeleteBeforeTheOriginalsAreGone(t *testing.T) {
	c, v0, v1 := encodedOnServer0(t)
	ctx := ctxT(t)
	if ids := ecjIDs(t, c.Server(0), 7); len(ids) != 0 {
		t.Fatalf("a fresh encode's .ecj holds %v", ids)
	}
	// Not mounted yet: the frozen replica refuses the delete.
	if err := c.DeleteData(7, mib, 1); err == nil || !strings.Contains(err.Error(), "read only") {
		t.Fatalf("a delete of a frozen volume without mounted shards: %v", err)
	}
	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 7, ShardIds: allShards()}))

	// Mounted: the server takes the delete as an EC delete and journals
	// the oldest live needle (the .idx's first two are tombstoned).
	ok(t, c.DeleteData(7, mib, 1))
	if ids := ecjIDs(t, c.Server(0), 7); len(ids) != 1 || ids[0] != 3 {
		t.Fatalf(".ecj after one EC delete: %v, want [3]", ids)
	}
	if st, _ := c.Server(0).Volume(7); st.DeleteCount != 2 {
		t.Fatalf("the EC delete reached the replica: %+v", st)
	}
	if v := c.Durability(); len(v) != 0 {
		t.Fatalf("a delete journalled beside the read-only original: %v", v)
	}
	// The replica alone no longer holds the volume: the shards do.
	oneViolation(t, c.DurabilityAtRest(), 7, []string{c.Server(0).ID() + ": missed 1 acknowledged writes, read-only"})

	// A shard copy carries the journal.
	must[*vpb.VolumeEcShardsCopyResponse](t)(v1.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: []uint32{13},
		CopyEcxFile: true, CopyEcjFile: true, CopyVifFile: true, SourceDataNode: c.Server(0).Address().String()}))
	if ids := ecjIDs(t, c.Server(1), 7); len(ids) != 1 || ids[0] != 3 {
		t.Fatalf(".ecj copied with shard 13: %v, want [3]", ids)
	}

	// A rollback that tears the shards down and unfreezes the original
	// loses the acknowledged delete.
	for _, vc := range []vpb.VolumeServerClient{v0, v1} {
		must[*vpb.VolumeEcShardsUnmountResponse](t)(vc.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 7, ShardIds: allShards()}))
		must[*vpb.VolumeEcShardsDeleteResponse](t)(vc.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 7, FullTeardown: true}))
	}
	must[*vpb.VolumeMarkWritableResponse](t)(v0.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: 7}))
	oneViolation(t, c.Durability(), 7, []string{"data lost", "missed 1 acknowledged writes", "no EC shards"}, "VolumeEcShardsMount", "VolumeEcShardsDelete")
}

func TestDurabilityWritesToAMovesTarget(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 5, Size: 10 * mib, FileCount: 10, Servers: []int{0}}))
	ctx := ctxT(t)
	src, dst := c.Server(0), c.Server(1)
	sc, dc := vsClient(t, src), vsClient(t, dst)
	must[[]*vpb.VolumeCopyResponse](t)(volumeCopy(ctx, dc, 5, src.Address().String()))
	must[*vpb.VolumeMarkReadonlyResponse](t)(sc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 5}))

	// The frozen source refuses; the writable target of a single-copy
	// volume takes a delete and a same-size overwrite on its own.
	if err := c.DeleteDataOn(5, src.ID(), mib, 1); err == nil || !strings.Contains(err.Error(), "read only") {
		t.Fatalf("a delete sent to the frozen source: %v", err)
	}
	ok(t, c.DeleteDataOn(5, dst.ID(), mib, 1))
	ok(t, c.OverwriteOn(5, dst.ID(), 1))
	if v := c.Durability(); len(v) != 0 {
		t.Fatalf("the target took a delete and an overwrite: %v", v)
	}
	se, de := idxEntries(t, src, 5), idxEntries(t, dst, 5)
	if len(de) != len(se)+2 {
		t.Fatalf("target .idx has %d entries, source %d: want 2 more", len(de), len(se))
	}
	for i := range se {
		if se[i] != de[i] {
			t.Fatalf("entry %d differs: source %v, target %v", i, se[i], de[i])
		}
	}
	if last := de[len(de)-1]; last != [2]uint64{10, needleSize} {
		t.Fatalf("the overwrite's entry is %v, want a put of needle 10 with the same size", last)
	}

	// Deleting the target (a rollback that trusts the live needles) loses both.
	must[*vpb.VolumeDeleteResponse](t)(dc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 5}))
	oneViolation(t, c.Durability(), 5, []string{"data lost", "missed 2 acknowledged writes"}, "VolumeCopy", "VolumeDelete")

	// A volume with a replica elsewhere replicates: one read-only replica
	// refuses the write everywhere.
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 6, Size: 10 * mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 2}}))
	must[[]*vpb.VolumeCopyResponse](t)(volumeCopy(ctx, dc, 6, src.Address().String()))
	must[*vpb.VolumeMarkReadonlyResponse](t)(sc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 6}))
	if err := c.DeleteDataOn(6, dst.ID(), mib, 1); err == nil || !strings.Contains(err.Error(), "read only") {
		t.Fatalf("a replicated delete with a frozen replica: %v", err)
	}
}

// TestEcDeleteToAnUnloadedPrimaryHolderIsLost: a server mounting shards
// sends a delete to the server its cached locations name for the needle's
// primary shard. That server no longer mounts any shard of the volume (a
// rollback unmounted it first) but still has the file: SeaweedFS answers
// OK there without journalling, so the delete is acknowledged and lost.
func TestEcDeleteToAnUnloadedPrimaryHolderIsLost(t *testing.T) {
	c, v0, v1 := encodedOnServer0(t)
	ctx := ctxT(t)
	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 7, ShardIds: allShards()}))
	// Shard 3 (the primary shard of needle 3, the oldest live one) moves
	// to server 1, which then unmounts it and keeps the file.
	must[*vpb.VolumeEcShardsCopyResponse](t)(v1.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: []uint32{3},
		CopyEcxFile: true, CopyEcjFile: true, CopyVifFile: true, SourceDataNode: c.Server(0).Address().String()}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v1.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 7, ShardIds: []uint32{3}}))
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v0.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 7, ShardIds: []uint32{3}}))
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v0.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 7, ShardIds: []uint32{3}}))
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v1.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 7, ShardIds: allShards()}))

	// Server 0 still mounts the other shards: it takes the delete.
	ok(t, c.DeleteDataOn(7, c.Server(0).ID(), mib, 1))
	for i := range 2 {
		if ids := ecjIDs(t, c.Server(i), 7); len(ids) != 0 {
			t.Fatalf(".ecj on server %d holds %v; the unloaded holder journals nothing", i, ids)
		}
	}
	oneViolation(t, c.Durability(), 7, []string{"missed 1 acknowledged writes"})
}
