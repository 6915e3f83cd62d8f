package sim

import (
	"strings"
	"sync"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// stopMidCopy injects a Mid rule on method for vid that stops server s
// halfway through the copy and reports when it has.
func stopMidCopy(c *Cluster, method string, vid uint32, s *VolumeServer) (*FaultHandle, <-chan struct{}) {
	stopped := make(chan struct{})
	h := c.InjectFault(Fault{Method: method, VolumeID: vid, Mid: true, Pass: true, FailNext: 1, OnFire: func() {
		// Stop from another goroutine: the hook runs inside a handler
		// of the server being stopped.
		go func() { s.Stop(); close(stopped) }()
		for s.Up() {
			time.Sleep(time.Millisecond)
		}
	}})
	return h, stopped
}

// TestEcShardCopyCutShortByCrash: a shard copy whose target stops halfway
// leaves, as SeaweedFS does, the shard files copied so far, one truncated
// file and no index: the restarted target mounts nothing, the durability
// check counts no truncated file as a shard (and names it at rest), and a
// copy that completes later replaces it.
func TestEcShardCopyCutShortByCrash(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, EcCopyDuration: 400 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 40, Servers: []int{0}}))
	s0, s1 := c.Server(0), c.Server(1)
	v0 := vsClient(t, s0)
	ctx := ctxT(t)
	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 7}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 7, ShardIds: allShards()}))

	h, stopped := stopMidCopy(c, "VolumeEcShardsCopy", 7, s1)
	move := []uint32{10, 11, 12, 13}
	req := &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: move, CopyEcxFile: true, CopyVifFile: true, SourceDataNode: s0.Address().String()}
	if _, err := vsClient(t, s1).VolumeEcShardsCopy(ctx, req); err == nil {
		t.Fatal("a copy whose target stopped halfway succeeded")
	}
	<-stopped
	if h.Fired() != 1 {
		t.Fatalf("the mid-copy rule fired %d times", h.Fired())
	}
	ok(t, s1.Start())
	e, held := s1.EcShards(7)
	// Half of four shards copied (10, 11), the third (12) truncated.
	if !held || len(e.Files) != 3 || e.Files[0] != 10 || e.Files[2] != 12 || len(e.Mounted) != 0 || e.HasIndex {
		t.Fatalf("after a crash halfway through copying %v the target holds %+v (held %v)", move, e, held)
	}
	// The source still holds a complete generation: no loss; at rest the
	// truncated file is named.
	if v := c.Durability(); len(v) != 0 {
		t.Fatalf("durability while in flight: %v", v)
	}
	v := c.DurabilityAtRest()
	if len(v) != 1 || !strings.Contains(strings.Join(v[0].Problems, " "), "truncated shard files") || !strings.Contains(strings.Join(v[0].Problems, " "), "shard 12 on "+s1.ID()) {
		t.Fatalf("durability at rest after the crash: %v", v)
	}

	// Source gone but for shards 0..9 and the truncated 12 elsewhere: the
	// truncated file is no shard, so the volume is one shard short.
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v0.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 7, ShardIds: []uint32{12}}))
	must[*vpb.VolumeDeleteResponse](t)(v0.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 7}))
	if v := c.Durability(); len(v) != 1 || !strings.Contains(v[0].Problems[0], "data lost") {
		t.Fatalf("a truncated shard counted as a shard: %v", v)
	}
	// A copy that completes later replaces a truncated file (shown on a
	// second cluster whose source still has every shard).
	h.Remove()
	c2 := newCluster(t, Config{Servers: 2, EcCopyDuration: 400 * time.Millisecond})
	must[uint32](t)(c2.AddVolume(VolumeSpec{ID: 8, Size: 100 * mib, FileCount: 40, Servers: []int{0}}))
	a0, a1 := c2.Server(0), c2.Server(1)
	w0, w1 := vsClient(t, a0), vsClient(t, a1)
	must[*vpb.VolumeEcShardsGenerateResponse](t)(w0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 8}))
	_, stopped = stopMidCopy(c2, "VolumeEcShardsCopy", 8, a1)
	req = &vpb.VolumeEcShardsCopyRequest{VolumeId: 8, ShardIds: []uint32{13}, CopyEcxFile: true, CopyVifFile: true, SourceDataNode: a0.Address().String()}
	if _, err := w1.VolumeEcShardsCopy(ctx, req); err == nil {
		t.Fatal("a copy whose target stopped halfway succeeded")
	}
	<-stopped
	ok(t, a1.Start())
	w1 = vsClient(t, a1)
	if v := c2.DurabilityAtRest(); len(v) != 1 {
		t.Fatalf("durability at rest with a truncated shard 13: %v", v)
	}
	testutil.EventuallyTrue(t, 5*time.Second, "the restarted target answers", func() bool {
		_, err := w1.VolumeEcShardsCopy(ctx, req)
		return err == nil
	})
	must[*vpb.VolumeEcShardsDeleteResponse](t)(w0.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 8, ShardIds: []uint32{13}}))
	if v := c2.Durability(); len(v) != 0 {
		t.Fatalf("after a complete copy replaced the truncated file: %v", v)
	}
}

// TestVolumeCopyCutShortByCrash: SeaweedFS stages a volume copy where its
// loader never looks, so a target stopped halfway through serves nothing of
// it after a restart, and nothing of it counts as a replica.
func TestVolumeCopyCutShortByCrash(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, CopyDuration: 400 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 9, Size: 50 * mib, FileCount: 40, Servers: []int{0}}))
	s0, s1 := c.Server(0), c.Server(1)
	h, stopped := stopMidCopy(c, "VolumeCopy", 9, s1)
	if _, err := volumeCopy(ctxT(t), vsClient(t, s1), 9, s0.Address().String()); err == nil {
		t.Fatal("a copy whose target stopped halfway succeeded")
	}
	<-stopped
	if h.Fired() != 1 {
		t.Fatalf("the mid-copy rule fired %d times", h.Fired())
	}
	ok(t, s1.Start())
	if _, held := s1.Volume(9); held {
		t.Fatal("the restarted target serves a copy cut short by its crash")
	}
	must[*vpb.VolumeDeleteResponse](t)(vsClient(t, s0).VolumeDelete(ctxT(t), &vpb.VolumeDeleteRequest{VolumeId: 9}))
	if v := c.Durability(); len(v) != 1 || !strings.Contains(v[0].Problems[0], "data lost") {
		t.Fatalf("a partial copy counted as a replica: %v", v)
	}
}

// TestEcShardCopyStoppedBeforeAnswer: a target stopped after the last byte
// of a shard copy but before it answered keeps the shard files it wrote
// (unmounted: no index came), as for a stop during the copy; they take no
// free slot.
func TestEcShardCopyStoppedBeforeAnswer(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, EcCopyDuration: 100 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 40, Servers: []int{0}}))
	s0, s1 := c.Server(0), c.Server(1)
	ctx := ctxT(t)
	must[*vpb.VolumeEcShardsGenerateResponse](t)(vsClient(t, s0).VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 7}))
	free := s1.FreeSlots()
	c.afterEcCopy = func(s *VolumeServer) {
		if s != s1 {
			return
		}
		go s.Stop()
		for s.Up() {
			time.Sleep(time.Millisecond)
		}
	}
	move := []uint32{10, 11, 12, 13}
	req := &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: move, CopyEcxFile: true, SourceDataNode: s0.Address().String()}
	if _, err := vsClient(t, s1).VolumeEcShardsCopy(ctx, req); err == nil {
		t.Fatal("a copy whose target stopped before answering succeeded")
	}
	ok(t, s1.Start())
	e, held := s1.EcShards(7)
	if !held || len(e.Files) != len(move) || len(e.Mounted) != 0 || e.HasIndex {
		t.Fatalf("after a stop between the last byte and the answer the target holds %+v (held %v), want files %v unmounted", e, held, move)
	}
	if got := s1.FreeSlots(); got != free {
		t.Fatalf("unmounted shard files take slots: %d free, %d before", got, free)
	}
}

// TestOrphanedShardsBesideDatDeletedAtStart: shard files without an .ecx
// beside the volume's .dat (an encode or a copy cut short) are deleted when
// the server starts, as SeaweedFS's checkOrphanedShards does.
func TestOrphanedShardsBesideDatDeletedAtStart(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, EcCopyDuration: 400 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 100 * mib, FileCount: 40, Servers: []int{0, 1}}))
	s0, s1 := c.Server(0), c.Server(1)
	ctx := ctxT(t)
	must[*vpb.VolumeEcShardsGenerateResponse](t)(vsClient(t, s0).VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 7}))
	_, stopped := stopMidCopy(c, "VolumeEcShardsCopy", 7, s1)
	req := &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: []uint32{10, 11, 12, 13}, CopyEcxFile: true, SourceDataNode: s0.Address().String()}
	if _, err := vsClient(t, s1).VolumeEcShardsCopy(ctx, req); err == nil {
		t.Fatal("a copy whose target stopped halfway succeeded")
	}
	<-stopped
	testutil.EventuallyTrue(t, 5*time.Second, "the copy cut short leaves shard files", func() bool {
		e, _ := s1.EcShards(7)
		return len(e.Files) > 0
	})
	ok(t, s1.Start())
	if e, held := s1.EcShards(7); held {
		t.Fatalf("shard files without an .ecx beside the .dat survived a restart: %+v", e)
	}
	if _, held := s1.Volume(7); !held {
		t.Fatal("the restart lost the volume's .dat")
	}
}

// TestEcShardCopiesRaceRestarts: shard copies arriving while the target
// stops and starts again (gRPC's Stop does not wait for its handlers) never
// trip the in-flight count; run with -race.
func TestEcShardCopiesRaceRestarts(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, EcCopyDuration: 20 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 7, Size: 10 * mib, FileCount: 40, Servers: []int{0}}))
	s0, s1 := c.Server(0), c.Server(1)
	ctx := ctxT(t)
	must[*vpb.VolumeEcShardsGenerateResponse](t)(vsClient(t, s0).VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 7}))
	req := &vpb.VolumeEcShardsCopyRequest{VolumeId: 7, ShardIds: []uint32{10, 11}, CopyEcxFile: true, SourceDataNode: s0.Address().String()}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := vsClient(t, s1)
			for {
				select {
				case <-done:
					return
				default:
				}
				_, _ = cl.VolumeEcShardsCopy(ctx, req)
			}
		}()
	}
	for range 20 {
		s1.Stop()
		time.Sleep(5 * time.Millisecond)
		ok(t, s1.Start())
		time.Sleep(15 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	testutil.EventuallyTrue(t, 5*time.Second, "a copy succeeds after the restarts", func() bool {
		_, err := vsClient(t, s1).VolumeEcShardsCopy(ctx, req)
		return err == nil
	})
}
