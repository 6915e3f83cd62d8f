package sim

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// noViolations fails on any violation of either check.
func noViolations(t *testing.T, c *Cluster, when string) {
	t.Helper()
	for _, v := range c.Durability() {
		t.Errorf("%s: Durability: %s", when, v)
	}
	for _, v := range c.DurabilityAtRest() {
		t.Errorf("%s: DurabilityAtRest: %s", when, v)
	}
}

// oneViolation requires exactly one violation, of volume vid, whose
// problems mention every text, and whose history has every method.
func oneViolation(t *testing.T, got []Violation, vid uint32, texts []string, methods ...string) {
	t.Helper()
	if len(got) != 1 || got[0].VolumeID != vid {
		t.Fatalf("want one violation of volume %d, got %d: %v", vid, len(got), got)
	}
	msg := strings.Join(got[0].Problems, "; ")
	for _, text := range texts {
		if !strings.Contains(msg, text) {
			t.Errorf("violation %q does not say %q", msg, text)
		}
	}
	s := got[0].String()
	t.Logf("caught: %s", s)
	for _, m := range methods {
		if !strings.Contains(s, m+"(vol ") {
			t.Errorf("violation's history lacks %s:\n%s", m, s)
		}
	}
}

func replicaContent(t *testing.T, s *VolumeServer, vid uint32) content {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		t.Fatalf("no volume %d on %s", vid, s.id)
	}
	return contentOfSet(r.applied)
}

func TestContentChangesWithWritesNotCompaction(t *testing.T) {
	c := newCluster(t, Config{Servers: 2})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}}))
	s0, s1 := c.Server(0), c.Server(1)
	noViolations(t, c, "created")

	before := replicaContent(t, s0, 1)
	ok(t, c.Write(1, mib, 4))
	afterWrite := replicaContent(t, s0, 1)
	ok(t, c.DeleteData(1, mib, 2))
	afterDelete := replicaContent(t, s0, 1)
	if before == afterWrite || afterWrite == afterDelete {
		t.Fatalf("content must change with every write and delete: %v, %v, %v", before, afterWrite, afterDelete)
	}
	if got := replicaContent(t, s1, 1); got != afterDelete {
		t.Fatalf("replicas differ after replicated writes: %v vs %v", got, afterDelete)
	}

	// Vacuum one replica only: its content stays the same.
	v0 := vsClient(t, s0)
	ctx := ctxT(t)
	must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(ctx, v0, 1))
	must[*vpb.VacuumVolumeCommitResponse](t)(v0.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	if st, _ := s0.Volume(1); st.CompactRevision != 1 {
		t.Fatalf("not compacted: %+v", st)
	}
	if got := replicaContent(t, s0, 1); got != afterDelete {
		t.Fatalf("compaction changed the content: %v, was %v", got, afterDelete)
	}
	noViolations(t, c, "after a vacuum of one replica")

	// A server that is down keeps its replica on disk.
	s1.Stop()
	noViolations(t, c, "one server down")
	ok(t, s1.Start())
}

func TestDurabilityReplicaMissedWrite(t *testing.T) {
	c := newCluster(t, Config{Servers: 2})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 3, Size: 10 * mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}}))
	// A write whose fan-out failed half-way: never acknowledged.
	ok(t, c.WriteReplica(3, c.Server(0).ID(), mib, 1))
	oneViolation(t, c.Durability(), 3, []string{"redundancy lost: 1 of the 2 promised"})
	oneViolation(t, c.DurabilityAtRest(), 3, []string{c.Server(0).ID() + ": holds 1 writes never acknowledged"})

	// Acknowledged writes go to every writable replica or fail.
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 4, Size: 10 * mib, FileCount: 10, ReplicaPlacement: 1, Servers: []int{0, 1}}))
	ok(t, c.Write(4, mib, 1))
	v1 := vsClient(t, c.Server(1))
	must[*vpb.VolumeMarkReadonlyResponse](t)(v1.VolumeMarkReadonly(ctxT(t), &vpb.VolumeMarkReadonlyRequest{VolumeId: 4}))
	if err := c.Write(4, mib, 1); err == nil || !strings.Contains(err.Error(), "read only") {
		t.Fatalf("a write to a volume with a read-only replica: %v", err)
	}
	for _, v := range c.DurabilityAtRest() {
		if v.VolumeID == 4 {
			t.Errorf("a refused write is not a violation: %s", v)
		}
	}
}

func TestDurabilityCopyAndTail(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, CopyDuration: 300 * time.Millisecond, TailSecond: 5 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, Servers: []int{0}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Size: 10 * mib, FileCount: 10, Servers: []int{0}}))
	src := c.Server(0)
	d1, d2, sc := vsClient(t, c.Server(1)), vsClient(t, c.Server(2)), vsClient(t, src)
	ctx := ctxT(t)

	// The source stays writable during the copy, and a write lands there
	// mid-copy (as a move that forgot to freeze it).
	copyWithWrite := func(vid uint32, dst *VolumeServer, dc vpb.VolumeServerClient) uint64 {
		t.Helper()
		done := make(chan []*vpb.VolumeCopyResponse, 1)
		go func() {
			msgs, err := volumeCopy(ctx, dc, vid, src.Address().String())
			if err != nil {
				t.Error(err)
			}
			done <- msgs
		}()
		testutil.EventuallyTrue(t, 5*time.Second, "copy to start", func() bool {
			dst.mu.Lock()
			defer dst.mu.Unlock()
			return dst.copying[vid]
		})
		ok(t, c.Write(vid, mib, 1))
		msgs := <-done
		return msgs[len(msgs)-1].LastAppendAtNs
	}

	// Volume 1: copy, tail, delete the source: nothing lost.
	since := copyWithWrite(1, c.Server(1), d1)
	must[*vpb.VolumeMarkReadonlyResponse](t)(sc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	must[*vpb.VolumeTailReceiverResponse](t)(d1.VolumeTailReceiver(ctx, &vpb.VolumeTailReceiverRequest{VolumeId: 1, SinceNs: since, IdleTimeoutSeconds: 1, SourceVolumeServer: src.Address().String()}))
	must[*vpb.VolumeDeleteResponse](t)(sc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1}))
	noViolations(t, c, "a copy tailed before the source was deleted")

	// Volume 2: the same without the tail: the only copy left missed a write.
	copyWithWrite(2, c.Server(2), d2)
	if v := c.Durability(); len(v) != 0 {
		t.Fatalf("the source still holds everything: %v", v)
	}
	oneViolation(t, c.DurabilityAtRest(), 2, []string{c.Server(2).ID() + ": missed 1 acknowledged writes"})
	must[*vpb.VolumeDeleteResponse](t)(sc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 2}))
	oneViolation(t, c.Durability(), 2, []string{"data lost", "missed 1 acknowledged writes"}, "VolumeCopy", "VolumeDelete")
}

// ecEncode freezes vid on server 0, generates and mounts its shards there,
// and moves shards 10..13 to server 1.
func ecEncode(t *testing.T, c *Cluster, vid uint32, freeze bool) {
	t.Helper()
	ctx := ctxT(t)
	v0, v1 := vsClient(t, c.Server(0)), vsClient(t, c.Server(1))
	if freeze {
		must[*vpb.VolumeMarkReadonlyResponse](t)(v0.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: vid}))
	}
	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: vid}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: vid, ShardIds: allShards()}))
	if vs := c.Durability(); len(vs) != 0 {
		t.Fatalf("mid-encode: %v", vs)
	}
	move := []uint32{10, 11, 12, 13}
	must[*vpb.VolumeEcShardsCopyResponse](t)(v1.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: vid, ShardIds: move,
		CopyEcxFile: true, CopyEcjFile: true, CopyVifFile: true, SourceDataNode: c.Server(0).Address().String()}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v1.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: vid, ShardIds: move}))
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v0.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: vid, ShardIds: move}))
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v0.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: vid, ShardIds: move}))
}

func TestDurabilityErasureCoding(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 100, Servers: []int{0}}))
	ok(t, c.Write(7, mib, 3))
	v0 := vsClient(t, c.Server(0))
	ctx := ctxT(t)

	ecEncode(t, c, 7, true)
	// The read-only original beside a complete generation that encodes it
	// is fine even at rest (an encode whose original delete failed).
	noViolations(t, c, "encoded, original kept read-only")
	must[*vpb.VolumeDeleteResponse](t)(v0.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 7}))
	noViolations(t, c, "encoded, original deleted")

	// Restarts keep the shards' generation.
	ok(t, c.Server(1).Restart())
	noViolations(t, c, "after a restart")

	// Losing one shard file loses the volume (13 of 14 left, no original).
	must[*vpb.VolumeEcShardsDeleteResponse](t)(vsClient(t, c.Server(1)).VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 7, ShardIds: []uint32{12}}))
	oneViolation(t, c.Durability(), 7, []string{"data lost", "13 of 14 shards"}, "VolumeEcShardsGenerate", "VolumeDelete", "VolumeEcShardsDelete")
}

func TestDurabilityEncodeOfAWritableVolume(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, EcGenerateDuration: 300 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 8, Size: 100 * mib, FileCount: 100, Servers: []int{0}}))
	// Not frozen: a write acknowledged while the shards are generated is
	// not in them.
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for c.CallCount("VolumeEcShardsGenerate") == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := c.Write(8, mib, 1); err != nil {
			t.Error(err)
		}
	}()
	ecEncode(t, c, 8, false)
	oneViolation(t, c.DurabilityAtRest(), 8, []string{"both a regular volume (1 replicas, writable on " + c.Server(0).ID(), "misses 1 acknowledged writes"})
	must[*vpb.VolumeDeleteResponse](t)(vsClient(t, c.Server(0)).VolumeDelete(ctxT(t), &vpb.VolumeDeleteRequest{VolumeId: 8}))
	oneViolation(t, c.Durability(), 8, []string{"data lost", "14 of 14 shards", "misses 1 acknowledged writes"})
}

func TestDurabilityMountedShardOfAnOlderGeneration(t *testing.T) {
	c := newCluster(t, Config{Servers: 3})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 9, Size: 100 * mib, FileCount: 100, Servers: []int{0}}))
	ctx := ctxT(t)
	v0, v2 := vsClient(t, c.Server(0)), vsClient(t, c.Server(2))
	// An abandoned first encode left shard 13 mounted on server 2.
	must[*vpb.VolumeMarkReadonlyResponse](t)(v0.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 9}))
	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 9}))
	must[*vpb.VolumeEcShardsCopyResponse](t)(v2.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 9, ShardIds: []uint32{13},
		CopyEcxFile: true, CopyVifFile: true, SourceDataNode: c.Server(0).Address().String()}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v2.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 9, ShardIds: []uint32{13}}))
	old, _ := c.Server(2).EcShards(9)
	if vs := c.Durability(); len(vs) != 0 {
		t.Fatalf("leftovers beside the regular volume are not lost data: %v", vs)
	}
	// A second encode that does not sweep server 2.
	ecEncode(t, c, 9, false)
	must[*vpb.VolumeDeleteResponse](t)(v0.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 9}))
	got := c.Durability()
	oneViolation(t, got, 9, []string{"shard 13 on " + c.Server(2).ID() + " (mounted, generation " + strconv.FormatInt(old.EncodeTsNs, 10)})
}

func TestDurabilityLostAndEmptyVolumes(t *testing.T) {
	c := newCluster(t, Config{Servers: 2})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, FileCount: 10, Servers: []int{0}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Servers: []int{1}})) // never held data
	ctx := context.Background()
	v0, v1 := vsClient(t, c.Server(0)), vsClient(t, c.Server(1))
	must[*vpb.VolumeDeleteResponse](t)(v1.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 2}))
	noViolations(t, c, "an empty volume deleted")
	must[*vpb.VolumeDeleteResponse](t)(v0.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1}))
	oneViolation(t, c.Durability(), 1, []string{"data lost", "no EC shards"}, "VolumeDelete")
}
