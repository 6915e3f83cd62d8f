package sim

import (
	"testing"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

func allShards() []uint32 {
	ids := make([]uint32, TotalShards)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return ids
}

func TestErasureCoding(t *testing.T) {
	c := newCluster(t, Config{Servers: 4})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 5, Collection: "c", Size: 1000 * mib, FileCount: 40, DeleteCount: 4, Servers: []int{0}}))
	s0, s1, s2 := c.Server(0), c.Server(1), c.Server(2)
	v0, v1, v2 := vsClient(t, s0), vsClient(t, s1), vsClient(t, s2)
	mc := masterClient(t, c)
	ctx := ctxT(t)

	_, err := v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 6, Collection: "c"})
	wantErr(t, err, codes.Unknown, "volume 6 not found")
	_, err = v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 5, Collection: "other"})
	wantErr(t, err, codes.Unknown, "existing collection:c unexpected input: other")

	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 5, Collection: "c"}))
	e, _ := s0.EcShards(5)
	if len(e.Files) != 14 || len(e.Mounted) != 0 || !e.HasIndex || e.EncodeTsNs == 0 {
		t.Fatalf("after generate %+v", e)
	}
	if len(topology(t, mc).EcVolumes) != 0 {
		t.Fatal("unmounted shards must not be reported")
	}
	_, err = v0.VolumeEcShardsInfo(ctx, &vpb.VolumeEcShardsInfoRequest{VolumeId: 5})
	wantErr(t, err, codes.Unknown, "EC volume 5 not found")

	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 5, Collection: "c", ShardIds: allShards()}))
	must[*vpb.VolumeEcShardsMountResponse](t)(v0.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 5, Collection: "c", ShardIds: allShards()}))
	ec := topology(t, mc).EcVolumes[5]
	if ec == nil || ec.ShardCount() != 14 || ec.Shards[13][0] != s0.ID() {
		t.Fatalf("after mount master sees %+v", ec)
	}
	// The regular volume stays listed beside its shards.
	if topology(t, mc).Volumes[5] == nil {
		t.Fatal("the volume must stay listed until deleted")
	}

	// Spread shards 10..13 to s1 (source in the ip:port.grpcPort form).
	move := []uint32{10, 11, 12, 13}
	must[*vpb.VolumeEcShardsCopyResponse](t)(v1.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 5, Collection: "c",
		ShardIds: move, CopyEcxFile: true, CopyEcjFile: true, CopyVifFile: true, CopyEcsumFile: true, SourceDataNode: s0.Address().String()}))
	if e1, _ := s1.EcShards(5); len(e1.Files) != 4 || len(e1.Mounted) != 0 || e1.EncodeTsNs != e.EncodeTsNs {
		t.Fatalf("after copy target %+v", e1)
	}
	must[*vpb.VolumeEcShardsMountResponse](t)(v1.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 5, Collection: "c", ShardIds: move}))
	info := must[*vpb.VolumeEcShardsInfoResponse](t)(v1.VolumeEcShardsInfo(ctx, &vpb.VolumeEcShardsInfoRequest{VolumeId: 5}))
	if len(info.EcShardInfos) != 4 || info.EcShardInfos[0].ShardId != 10 || info.EcShardInfos[0].Size <= 0 ||
		info.EcShardConfig.DataShards != 10 || info.FileCount != 36 || info.FileDeletedCount != 4 {
		t.Fatalf("shards info %v", info)
	}
	// As SeaweedFS's VolumeEcShardsInfo (volume_grpc_erasure_coding.go):
	// the config is the layout only; the encode run is in the .vif.
	if info.EcShardConfig.EncodeTsNs != 0 {
		t.Fatalf("VolumeEcShardsInfo reports EncodeTsNs %d; SeaweedFS does not", info.EcShardConfig.EncodeTsNs)
	}
	vif, err := v1.CopyFile(ctx, &vpb.CopyFileRequest{VolumeId: 5, Collection: "c", Ext: ".vif", IsEcVolume: true, StopOffset: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for {
		m, err := vif.Recv()
		if err != nil {
			break
		}
		raw = append(raw, m.FileContent...)
	}
	var vi vpb.VolumeInfo
	if err := protojson.Unmarshal(raw, &vi); err != nil || vi.GetEcShardConfig().GetEncodeTsNs() != e.EncodeTsNs || e.EncodeTsNs == 0 {
		t.Fatalf("EC .vif %q (%v): want ecShardConfig.encodeTsNs %d", raw, err, e.EncodeTsNs)
	}
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v0.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 5, ShardIds: move}))
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v0.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 5, Collection: "c", ShardIds: move}))
	ec = topology(t, mc).EcVolumes[5]
	if ec.ShardCount() != 14 || len(ec.Shards[10]) != 1 || ec.Shards[10][0] != s1.ID() || ec.Shards[0][0] != s0.ID() {
		t.Fatalf("after spreading master sees %v", ec.Shards)
	}

	// Copies fail when the source lacks the shards; the source may be
	// given in the plain host:port form too.
	_, err = v2.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 5, Collection: "c", ShardIds: []uint32{10}, CopyEcxFile: true, SourceDataNode: s0.ID()})
	wantErr(t, err, codes.Unknown, "CopyFile not found ec volume id 5")
	_, err = v2.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 5, ShardIds: []uint32{1}, SourceDataNode: s0.ID(), DiskId: 1})
	wantErr(t, err, codes.Unknown, "invalid disk_id 1")
	must[*vpb.VolumeEcShardsCopyResponse](t)(v2.VolumeEcShardsCopy(ctx, &vpb.VolumeEcShardsCopyRequest{VolumeId: 5, Collection: "c", ShardIds: []uint32{0}, CopyEcxFile: true, SourceDataNode: s0.ID()}))
	// Idempotent teardown pieces.
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v2.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 5, ShardIds: []uint32{0}}))
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v2.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 77, ShardIds: []uint32{0}}))
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v2.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 5, ShardIds: []uint32{0}}))
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v2.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 5, ShardIds: []uint32{0}}))
	if _, found := s2.EcShards(5); found {
		t.Fatal("deleting the last shard must remove the EC volume")
	}
	_, err = v2.VolumeEcShardsMount(ctx, &vpb.VolumeEcShardsMountRequest{VolumeId: 5, ShardIds: []uint32{0}})
	wantErr(t, err, codes.Unknown, "not found on disk")

	// Delete does not unmount: the shard stays served until unmounted.
	must[*vpb.VolumeEcShardsDeleteResponse](t)(v1.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 5, ShardIds: []uint32{13}}))
	if ec = topology(t, mc).EcVolumes[5]; len(ec.Shards[13]) != 1 {
		t.Fatal("VolumeEcShardsDelete must not unmount")
	}
	// An unmount fenced at the current generation skips it.
	must[*vpb.VolumeEcShardsUnmountResponse](t)(v1.VolumeEcShardsUnmount(ctx, &vpb.VolumeEcShardsUnmountRequest{VolumeId: 5, ShardIds: []uint32{13}, EncodeTsNs: e.EncodeTsNs}))
	if ec = topology(t, mc).EcVolumes[5]; len(ec.Shards[13]) != 1 {
		t.Fatal("a fenced unmount must skip the same generation")
	}

	// A new Generate wipes this server's EC state and starts a new generation.
	must[*vpb.VolumeEcShardsGenerateResponse](t)(v0.VolumeEcShardsGenerate(ctx, &vpb.VolumeEcShardsGenerateRequest{VolumeId: 5, Collection: "c"}))
	if e2, _ := s0.EcShards(5); e2.EncodeTsNs <= e.EncodeTsNs || len(e2.Mounted) != 0 || len(e2.Files) != 14 {
		t.Fatalf("regenerated %+v", e2)
	}
	if ec = topology(t, mc).EcVolumes[5]; len(ec.Shards[0]) != 0 || len(ec.Shards[10]) != 1 {
		t.Fatalf("after regenerate master sees %v", ec.Shards)
	}

	// Full teardown everywhere, then the commit deletes the original volume.
	for _, vc := range []vpb.VolumeServerClient{v0, v1, v2} {
		resp := must[*vpb.VolumeEcShardsDeleteResponse](t)(vc.VolumeEcShardsDelete(ctx, &vpb.VolumeEcShardsDeleteRequest{VolumeId: 5, FullTeardown: true}))
		if !resp.FullTeardownDone {
			t.Fatal("full teardown must report done")
		}
	}
	if _, found := topology(t, mc).EcVolumes[5]; found {
		t.Fatal("a full teardown must unmount everything")
	}
	must[*vpb.VolumeDeleteResponse](t)(v0.VolumeDelete(ctx, &vpb.VolumeDeleteRequest{VolumeId: 5}))
}

func TestEcCopyNoSpace(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, MaxVolumesPerServer: 1})
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 3, Size: mib, Shards: map[int][]uint32{0: allShards(), 1: allShards()[:10]}}))
	_, err := vsClient(t, c.Server(1)).VolumeEcShardsCopy(ctxT(t), &vpb.VolumeEcShardsCopyRequest{VolumeId: 3, ShardIds: []uint32{12}, SourceDataNode: c.Server(0).ID()})
	wantErr(t, err, codes.ResourceExhausted, "no space left")
}

func TestRestartMountsShardFiles(t *testing.T) {
	c := newCluster(t, Config{Servers: 1})
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 3, Size: mib, Shards: map[int][]uint32{0: {1, 2}}, Unmounted: true}))
	ok(t, c.Server(0).Restart())
	if e, _ := c.Server(0).EcShards(3); len(e.Mounted) != 2 {
		t.Fatalf("a restarted server mounts the shard files it finds: %+v", e)
	}
}
