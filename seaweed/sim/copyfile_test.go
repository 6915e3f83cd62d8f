package sim

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"
)

func copyFile(ctx context.Context, vc vpb.VolumeServerClient, req *vpb.CopyFileRequest) ([]byte, int64, error) {
	st, err := vc.CopyFile(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	msgs, err := drain(st.Recv)
	var data []byte
	var mod int64
	for _, m := range msgs {
		data = append(data, m.FileContent...)
		if m.ModifiedTsNs != 0 {
			mod = m.ModifiedTsNs
		}
	}
	return data, mod, err
}

// TestCopyFile covers the probes the executors make through CopyFile: does
// the compacted .cpd exist, and what do the index files hold.
func TestCopyFile(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, CompactDuration: 200 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Collection: "c", Size: 10 * mib, FileCount: 5, DeleteCount: 2, DeletedBytes: mib}))
	vc := vsClient(t, c.Server(0))
	ctx := ctxT(t)
	probe := func(ext string) error {
		_, _, err := copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 1, Collection: "c", Ext: ext, CompactionRevision: math.MaxUint32, StopOffset: 1})
		return err
	}
	wantErr(t, probe(".cpd"), codes.Unknown, "no such file or directory")
	ok(t, probe(".dat"))
	wantErr(t, probe("/../x"), codes.Unknown, "invalid file extension")
	must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(ctx, vc, 1))
	ok(t, probe(".cpd"))
	ok(t, probe(".cpx"))
	must[*vpb.VacuumVolumeCommitResponse](t)(vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	wantErr(t, probe(".cpd"), codes.Unknown, "no such file or directory")
	// A missing file with stop_offset 0 is fine, as in SeaweedFS.
	must[[]byte](t)(func() ([]byte, error) {
		b, _, err := copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 1, Ext: ".cpd", CompactionRevision: math.MaxUint32})
		return b, err
	}())
	// The revision guard.
	_, _, err := copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 1, Ext: ".idx", CompactionRevision: 0, StopOffset: math.MaxUint64})
	wantErr(t, err, codes.Unknown, "volume 1 is compacted")
	_, _, err = copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 9, Ext: ".idx", StopOffset: 1})
	wantErr(t, err, codes.Unknown, "not found volume id 9")

	// The .idx after the commit holds the 3 live needles, under the ids they
	// had (needles 1 and 2 were the deleted ones), as SeaweedFS's compaction
	// keeps needle ids: replicas compacted at different times list the same.
	must[*vpb.VacuumVolumeCleanupResponse](t)(vc.VacuumVolumeCleanup(ctx, &vpb.VacuumVolumeCleanupRequest{VolumeId: 1}))
	idx, mod, err := copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 1, Ext: ".idx", CompactionRevision: 1, StopOffset: math.MaxUint64})
	ok(t, err)
	if len(idx) != 3*idxEntrySize || mod == 0 {
		t.Fatalf(".idx of %d bytes, mod %d", len(idx), mod)
	}
	for i := 0; i < 3; i++ {
		e := idx[i*idxEntrySize:]
		if id, size := binary.BigEndian.Uint64(e), binary.BigEndian.Uint32(e[12:]); id != uint64(i+3) || size != needleSize {
			t.Fatalf("entry %d: id %d size %d", i, id, size)
		}
	}
	// Deleting a needle appends a tombstone.
	ok(t, c.DeleteData(1, 1024, 1))
	idx, _, _ = copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 1, Ext: ".idx", CompactionRevision: math.MaxUint32, StopOffset: math.MaxUint64})
	if len(idx) != 4*idxEntrySize || binary.BigEndian.Uint32(idx[3*idxEntrySize+12:]) != tombstoneSize {
		t.Fatalf(".idx after a delete: %d bytes", len(idx))
	}

	// EC files.
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 2, Collection: "c", Size: 10 * mib, FileCount: 4, Shards: map[int][]uint32{0: {0, 3}}, Unmounted: true}))
	data, _, err := copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 2, Collection: "c", IsEcVolume: true, Ext: ".ec03", StopOffset: math.MaxUint64})
	ok(t, err)
	if len(data) != mib {
		t.Fatalf(".ec03 of %d bytes, want %d", len(data), mib)
	}
	_, _, err = copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 2, Collection: "c", IsEcVolume: true, Ext: ".ec04", StopOffset: 1})
	wantErr(t, err, codes.Unknown, "CopyFile not found ec volume id 2")
	data, _, err = copyFile(ctx, vc, &vpb.CopyFileRequest{VolumeId: 2, Collection: "c", IsEcVolume: true, Ext: ".ecx", StopOffset: math.MaxUint64})
	ok(t, err)
	if len(data) != 4*idxEntrySize {
		t.Fatalf(".ecx of %d bytes", len(data))
	}
}
