package sim

import (
	"context"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestVacuumLifecycle(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, CompactDuration: time.Second})
	const size = 300*mib + superBlockSize
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: size, FileCount: 100, DeleteCount: 50, DeletedBytes: 150 * mib}))
	s := c.Server(0)
	vc, mc := vsClient(t, s), masterClient(t, c)
	ctx := ctxT(t)

	chk := must[*vpb.VacuumVolumeCheckResponse](t)(vc.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 1}))
	if chk.GarbageRatio != 0.5 {
		t.Fatalf("garbage ratio %v, want 0.5", chk.GarbageRatio)
	}

	// A compaction that runs: progress every 128 MiB (two for 300 MiB).
	type result struct {
		msgs []*vpb.VacuumVolumeCompactResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := compact(ctx, vc, 1)
		done <- result{msgs, err}
	}()
	testutil.EventuallyTrue(t, 2*time.Second, "compaction to start", func() bool { v, _ := s.Volume(1); return v.Compacting })

	// A second compaction while the first runs is an immediate no-op success.
	msgs, err := compact(ctx, vc, 1)
	ok(t, err)
	if v, _ := s.Volume(1); len(msgs) != 0 || !v.Compacting || v.Compacted {
		t.Fatalf("concurrent compact: %d messages, state %+v; want a no-op while the first still runs", len(msgs), v)
	}
	// So is a commit while it runs.
	cm := must[*vpb.VacuumVolumeCommitResponse](t)(vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	if cm.VolumeSize != size {
		t.Fatalf("commit during compaction changed the size to %d", cm.VolumeSize)
	}

	r := <-done
	ok(t, r.err)
	if len(r.msgs) != 2 || r.msgs[0].ProcessedBytes != progressInterval || r.msgs[1].ProcessedBytes != 2*progressInterval {
		t.Fatalf("progress messages %v", r.msgs)
	}
	if v, _ := s.Volume(1); v.CompactRevision != 0 || !v.Compacted {
		t.Fatalf("after compact %+v", v)
	}

	cm = must[*vpb.VacuumVolumeCommitResponse](t)(vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	if cm.VolumeSize != size-150*mib || cm.IsReadOnly {
		t.Fatalf("commit %v, want size %d", cm, size-150*mib)
	}
	fs := must[*vpb.ReadVolumeFileStatusResponse](t)(vc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 1}))
	if fs.CompactionRevision != 1 || fs.DatFileSize != size-150*mib || fs.FileCount != 50 {
		t.Fatalf("file status after commit %v", fs)
	}
	chk = must[*vpb.VacuumVolumeCheckResponse](t)(vc.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 1}))
	if chk.GarbageRatio != 0 {
		t.Fatalf("garbage after commit %v", chk.GarbageRatio)
	}
	if v := topology(t, mc).Volumes[1]; v.Size != size-150*mib || v.DeletedBytes != 0 || v.Replicas[0].CompactRevision != 1 {
		t.Fatalf("master sees %+v", v)
	}

	// Cleanup is idempotent.
	for range 2 {
		must[*vpb.VacuumVolumeCleanupResponse](t)(vc.VacuumVolumeCleanup(ctx, &vpb.VacuumVolumeCleanupRequest{VolumeId: 1}))
	}

	// A second commit (no .cpd/.cpx) fails and unloads the volume until the
	// server restarts.
	_, err = vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, "missing .cpd/.cpx")
	_, err = vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, "data backend not found")
	// ReadVolumeFileStatus still answers, with zero sizes (no data backend).
	fs = must[*vpb.ReadVolumeFileStatusResponse](t)(vc.ReadVolumeFileStatus(ctx, &vpb.ReadVolumeFileStatusRequest{VolumeId: 1}))
	if fs.DatFileSize != 0 || fs.FileCount != 0 || fs.CompactionRevision != 1 {
		t.Fatalf("file status of an unloaded volume %v", fs)
	}
	if _, found := topology(t, mc).Volumes[1]; found {
		t.Fatal("an unloaded volume must vanish from VolumeList")
	}
	ok(t, s.Restart())
	testutil.EventuallyTrue(t, 5*time.Second, "restarted server to answer", func() bool {
		st, err := vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1})
		return err == nil && st.VolumeSize == size-150*mib
	})
	if v := topology(t, mc).Volumes[1]; v == nil || v.Size != size-150*mib {
		t.Fatalf("after restart master sees %+v", v)
	}

	// Missing volumes: NotFound for every vacuum RPC.
	_, err = vc.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 7})
	wantErr(t, err, codes.NotFound, "not found")
	_, err = compact(ctx, vc, 7)
	wantErr(t, err, codes.NotFound, "not found")
	_, err = vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 7})
	wantErr(t, err, codes.NotFound, "not found")
	_, err = vc.VacuumVolumeCleanup(ctx, &vpb.VacuumVolumeCleanupRequest{VolumeId: 7})
	wantErr(t, err, codes.NotFound, "not found")
}

func TestVacuumInterruptedCompaction(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, CompactDuration: 5 * time.Second})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: 10 * mib, DeletedBytes: 5 * mib, FileCount: 2, DeleteCount: 1}))
	s := c.Server(0)
	vc := vsClient(t, s)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() { _, err := compact(ctx, vc, 1); errc <- err }()
	testutil.EventuallyTrue(t, 2*time.Second, "compaction to start", func() bool { v, _ := s.Volume(1); return v.Compacting })
	cancel()
	wantErr(t, <-errc, codes.Canceled, "")
	testutil.EventuallyTrue(t, 2*time.Second, "compaction to stop", func() bool { v, _ := s.Volume(1); return !v.Compacting })
	// Cleanup removes the leftovers; the volume is untouched.
	must[*vpb.VacuumVolumeCleanupResponse](t)(vc.VacuumVolumeCleanup(ctxT(t), &vpb.VacuumVolumeCleanupRequest{VolumeId: 1}))
	st := must[*vpb.VolumeStatusResponse](t)(vc.VolumeStatus(ctxT(t), &vpb.VolumeStatusRequest{VolumeId: 1}))
	if st.VolumeSize != 10*mib {
		t.Fatalf("size %d", st.VolumeSize)
	}
	// A commit now has nothing to swap in: error, volume unloaded.
	_, err := vc.VacuumVolumeCommit(ctxT(t), &vpb.VacuumVolumeCommitRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, "compact swap aborted")
	if v, _ := s.Volume(1); !v.Unloaded || v.CompactRevision != 0 {
		t.Fatalf("after failed commit %+v", v)
	}
}

func TestMaintenanceMode(t *testing.T) {
	c := newCluster(t, Config{Servers: 1})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib}))
	s := c.Server(0)
	s.SetMaintenance(true)
	vc := vsClient(t, s)
	_, err := compact(ctxT(t), vc, 1)
	wantErr(t, err, codes.Unknown, "is in maintenance mode")
	_, err = vc.VolumeMarkWritable(ctxT(t), &vpb.VolumeMarkWritableRequest{VolumeId: 1})
	wantErr(t, err, codes.Unknown, "is in maintenance mode")
	// Marking read-only and deleting are allowed in maintenance mode.
	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctxT(t), &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	st := must[*vpb.VolumeServerStatusResponse](t)(vc.VolumeServerStatus(ctxT(t), &vpb.VolumeServerStatusRequest{}))
	if !st.State.Maintenance {
		t.Fatal("VolumeServerStatus must report maintenance")
	}
	must[*vpb.VolumeDeleteResponse](t)(vc.VolumeDelete(ctxT(t), &vpb.VolumeDeleteRequest{VolumeId: 1}))
}
