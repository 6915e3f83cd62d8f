package rpc

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// noSpoolLeft fails the test if a restore left a temporary file.
func noSpoolLeft(t *testing.T, c *testCluster) {
	t.Helper()
	for _, n := range c.nodes {
		if left, _ := filepath.Glob(filepath.Join(n.dataDir, restoreSpoolPattern)); len(left) > 0 {
			t.Errorf("%s: restores left %v", n.id, left)
		}
	}
}

// TestRestoreDoesNotTrustTheHeader: a header claiming 1 GiB followed by a
// few bytes allocates nothing near the claim and is refused with
// InvalidArgument; so are a header whose index or term is near 2^64, a
// state whose next task id is, a state applied beyond the header's index,
// and a chunk above the method's message limit. Nothing changes and no
// temporary file is left.
func TestRestoreDoesNotTrustTheHeader(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	leader, f := c.nodes[l], c.nodes[c.followers(l)[0]]
	if _, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 30); err != nil {
		t.Fatal(err)
	}
	hdr, data := save(t, f)
	waitFor(t, "equal hashes", func() bool {
		h := c.nodes[0].fsm.Hash()
		return c.nodes[1].fsm.Hash() == h && c.nodes[2].fsm.Hash() == h
	})
	before := leader.fsm.Hash()

	tiny := []byte("only a few bytes")
	claim := with(hdr, func(h *pb.SnapshotHeader) { h.Size, h.Sha256 = 1<<30, sum(tiny) })
	for _, n := range []*adminNode{leader, f} {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		err := restore(t, n, hdrChunk(claim), dataChunk(tiny))
		runtime.ReadMemStats(&m1)
		wantCode(t, "a 1 GiB claim via "+n.id, err, codes.InvalidArgument)
		wantMessage(t, "a 1 GiB claim via "+n.id, err, "truncated")
		if d := m1.TotalAlloc - m0.TotalAlloc; d > 64<<20 {
			t.Errorf("a restore whose header claims 1 GiB but sends %d bytes allocated %d MiB via %s", len(tiny), d>>20, n.id)
		}
	}

	st, _, err := fsm.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.AppliedIndex() < 2 {
		t.Fatalf("the saved state is at index %d; the test needs one above 1", st.AppliedIndex())
	}
	edited := func(edit func(*fsmpb.StateSnapshot)) *pb.SnapshotChunk {
		_, s, err := fsm.DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		edit(s)
		b, err := fsm.MarshalSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		return dataChunk(b)
	}
	headerFor := func(c *pb.SnapshotChunk, edit func(*pb.SnapshotHeader)) *pb.SnapshotChunk {
		d := c.GetData()
		return hdrChunk(with(hdr, func(h *pb.SnapshotHeader) {
			h.Size, h.Sha256 = int64(len(d)), sum(d)
			edit(h)
		}))
	}
	same := func(*pb.SnapshotHeader) {}
	nextNear64 := edited(func(s *fsmpb.StateSnapshot) { s.NextTaskId = 1<<64 - 2 })
	good := dataChunk(data)
	for _, tc := range []struct {
		name string
		msgs []*pb.SnapshotChunk
		code codes.Code
		want string
	}{
		{"index near 2^64", []*pb.SnapshotChunk{headerFor(good, func(h *pb.SnapshotHeader) { h.Index = 1<<64 - 1 }), good}, codes.InvalidArgument, "index"},
		{"term near 2^64", []*pb.SnapshotChunk{headerFor(good, func(h *pb.SnapshotHeader) { h.Term = 1<<64 - 1 }), good}, codes.InvalidArgument, "term"},
		{"next task id near 2^64", []*pb.SnapshotChunk{headerFor(nextNear64, same), nextNear64}, codes.InvalidArgument, "next task id"},
		{"applied beyond the header's index", []*pb.SnapshotChunk{headerFor(good, func(h *pb.SnapshotHeader) { h.Index = 1 }), good}, codes.InvalidArgument, "beyond the snapshot's own index"},
		{"chunk above the limit", []*pb.SnapshotChunk{hdrChunk(hdr), dataChunk(make([]byte, 1<<20))}, codes.ResourceExhausted, "bytes"},
	} {
		for _, n := range []*adminNode{leader, f} {
			err := restore(t, n, tc.msgs...)
			wantCode(t, tc.name+" via "+n.id, err, tc.code)
			wantMessage(t, tc.name+" via "+n.id, err, tc.want)
		}
	}
	waitFor(t, "equal hashes", func() bool {
		return c.nodes[0].fsm.Hash() == before && c.nodes[1].fsm.Hash() == before && c.nodes[2].fsm.Hash() == before
	})
	noSpoolLeft(t, c)
}

// TestOneRestoreAtATime: while one restore stream is open on a node, a
// second one is refused with ResourceExhausted; once the first has ended,
// restores are taken again, and no temporary file is left.
func TestOneRestoreAtATime(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	leader := c.nodes[l]
	if _, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 30); err != nil {
		t.Fatal(err)
	}
	hdr, data := save(t, leader)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	first, err := leader.client.RestoreSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Send(hdrChunk(hdr)); err != nil {
		t.Fatal(err)
	}
	if err := first.Send(dataChunk(data[:10])); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first restore under way", leader.server.restoring)
	err = restore(t, leader, hdrChunk(hdr), dataChunk(data))
	wantCode(t, "a second restore meanwhile", err, codes.ResourceExhausted)
	wantMessage(t, "a second restore meanwhile", err, "one")
	if err := first.Send(dataChunk(data[10:])); err != nil {
		t.Fatal(err)
	}
	if _, err := first.CloseAndRecv(); err != nil {
		t.Fatalf("the first restore: %v", err)
	}
	if _, err := call(t, func(context.Context) (struct{}, error) {
		return struct{}{}, restore(t, leader, hdrChunk(hdr), dataChunk(data))
	}); err != nil {
		t.Fatalf("a restore after the first ended: %v", err)
	}
	noSpoolLeft(t, c)
}
