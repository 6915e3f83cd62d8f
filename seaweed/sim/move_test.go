package sim

import (
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestVolumeMove(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, CopyDuration: time.Second, TailSecond: 5 * time.Millisecond})
	const size = 300 * mib
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Collection: "c", Size: size, FileCount: 10, ReplicaPlacement: 0, Servers: []int{0}}))
	src, dst := c.Server(0), c.Server(1)
	sc, dc, mc := vsClient(t, src), vsClient(t, dst), masterClient(t, c)
	ctx := ctxT(t)

	// The copy runs in the background; meanwhile a write lands on the source
	// only, a second copy is refused and a delete of the target is refused.
	type result struct {
		msgs []*vpb.VolumeCopyResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := volumeCopy(ctx, dc, 1, src.Address().String())
		done <- result{msgs, err}
	}()
	testutil.EventuallyTrue(t, 2*time.Second, "copy to start", func() bool {
		_, err := dc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1})
		return status.Code(err) == codes.Unavailable // "volume 1 is being copied"; NotFound before
	})
	_, err := volumeCopy(ctx, dc, 1, src.Address().String())
	wantErr(t, err, codes.Unavailable, "already being copied")
	ok(t, c.Write(1, mib, 1))

	r := <-done
	ok(t, r.err)
	last := r.msgs[len(r.msgs)-1]
	if len(r.msgs) != 3 || r.msgs[0].ProcessedBytes != progressInterval || last.LastAppendAtNs == 0 {
		t.Fatalf("copy messages %v", r.msgs)
	}
	tv, found := dst.Volume(1)
	if !found || tv.ReadOnly || tv.Size != size || tv.Collection != "c" {
		t.Fatalf("target after copy %+v", tv)
	}
	if v := topology(t, mc).Volumes[1]; len(v.Replicas) != 2 {
		t.Fatalf("master sees %d replicas, want 2 (the copy is mounted writable)", len(v.Replicas))
	}

	// The tail brings over the write made during the copy; re-running it is harmless.
	for range 2 {
		start := time.Now()
		must[*vpb.VolumeTailReceiverResponse](t)(dc.VolumeTailReceiver(ctx, &vpb.VolumeTailReceiverRequest{
			VolumeId: 1, SinceNs: last.LastAppendAtNs, IdleTimeoutSeconds: 5, SourceVolumeServer: src.Address().String()}))
		if time.Since(start) < 50*time.Millisecond {
			t.Fatalf("tail returned after %v, want about 2 × 5 × TailSecond", time.Since(start))
		}
	}
	sf := must[*vpb.ReadVolumeFileStatusResponse](t)(sc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 1}))
	tf := must[*vpb.ReadVolumeFileStatusResponse](t)(dc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 1}))
	if tf.DatFileSize != sf.DatFileSize || tf.IdxFileSize != sf.IdxFileSize || tf.FileCount != sf.FileCount || sf.FileCount != 11 {
		t.Fatalf("after tail source %v target %v", sf, tf)
	}

	// The plain host:port form resolves too; copying again replaces the replica.
	must[[]*vpb.VolumeCopyResponse](t)(volumeCopy(ctx, vsClient(t, c.Server(2)), 1, src.ID()))
	must[[]*vpb.VolumeCopyResponse](t)(volumeCopy(ctx, dc, 1, src.ID()))

	// Errors.
	_, err = volumeCopy(ctx, dc, 9, src.Address().String())
	wantErr(t, err, codes.Unknown, "read volume file status failed")
	_, err = dc.VolumeTailReceiver(ctx, &vpb.VolumeTailReceiverRequest{VolumeId: 9, IdleTimeoutSeconds: 1, SourceVolumeServer: src.ID()})
	wantErr(t, err, codes.Unknown, "receiver not found volume id 9")
	src.Stop()
	_, err = volumeCopy(ctx, dc, 1, src.Address().String())
	wantErr(t, err, codes.Unavailable, "connection refused")
	ok(t, src.Start())

	// A persisted read-only mark travels with the copy.
	testutil.EventuallyTrue(t, 5*time.Second, "source back", func() bool {
		_, err := sc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1, Persist: true})
		return err == nil
	})
	must[[]*vpb.VolumeCopyResponse](t)(volumeCopy(ctx, dc, 1, src.Address().String()))
	if v, _ := dst.Volume(1); !v.ReadOnly {
		t.Fatal("persist=true must make the copy read-only")
	}

	// Move finished: delete the source.
	must[*vpb.VolumeDeleteResponse](t)(sc.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 1, KeepRemoteData: true}))
	_, err = sc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, "not found volume id 1")
}

func TestCopyNoSpace(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, MaxVolumesPerServer: 1})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Servers: []int{0}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Servers: []int{1}}))
	_, err := volumeCopy(ctxT(t), vsClient(t, c.Server(1)), 1, c.Server(0).ID())
	wantErr(t, err, codes.Unknown, "no space left for disk type hdd")
}

func TestSSRFGuard(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, SSRFGuard: true})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Servers: []int{0}}))
	dc := vsClient(t, c.Server(1))
	_, err := volumeCopy(ctxT(t), dc, 1, c.Server(0).Address().String())
	wantErr(t, err, codes.Unknown, "resolves to loopback address")
	_, err = dc.VolumeEcShardsCopy(ctxT(t), &vpb.VolumeEcShardsCopyRequest{VolumeId: 1, ShardIds: []uint32{0}, SourceDataNode: c.Server(0).ID()})
	wantErr(t, err, codes.Unknown, "resolves to loopback address")
	_, err = dc.VolumeTailReceiver(ctxT(t), &vpb.VolumeTailReceiverRequest{VolumeId: 1, SourceVolumeServer: "localhost:8080"})
	wantErr(t, err, codes.Unknown, "resolves to loopback address")
}
