package rpc

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/certs"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// cutRestoreStream is a restore stream whose context is cancelled as its
// last message has been read: what cutOnPeer does to a stream whose
// client certificate expires (or whose CA is withdrawn) just after the
// client sent the whole snapshot, while the handler is still checking it.
type cutRestoreStream struct {
	grpc.ServerStream
	ctx    context.Context
	cut    context.CancelCauseFunc
	msgs   []*pb.SnapshotChunk
	closed bool
}

func (s *cutRestoreStream) Context() context.Context { return s.ctx }

func (s *cutRestoreStream) Recv() (*pb.SnapshotChunk, error) {
	if len(s.msgs) == 0 {
		if s.cut != nil {
			s.cut(errCutForTest)
		}
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *cutRestoreStream) SendAndClose(*pb.RestoreSnapshotResponse) error {
	s.closed = true
	return nil
}

var errCutForTest = io.ErrClosedPipe

// TestCutRestoreRestoresNothing: a restore whose stream is cut (its
// context cancelled) after the last chunk arrived, before the handler has
// the leader restore it, restores nothing: a cut stream's handler goes on
// running (cutOnPeer does not wait for it), and it must not change the
// cluster on behalf of a certificate that is no longer good.
func TestCutRestoreRestoresNothing(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	leader := c.nodes[l]
	hdr, data := save(t, leader)
	if _, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 30); err != nil {
		t.Fatal(err)
	}
	before := leader.fsm.Hash()
	// No idle deadline: receiveSnapshot reads in this goroutine, so the
	// cut lands after it has the last message, as it can in production
	// when the certificate expires while the snapshot is being checked.
	lim := DefaultStreamLimits()
	lim.RestoreIdle = 0
	leader.server.SetStreamLimits(lim)
	ctx, cut := context.WithCancelCause(context.Background())
	defer cut(nil)
	stream := &cutRestoreStream{ctx: ctx, cut: cut, msgs: []*pb.SnapshotChunk{hdrChunk(hdr), dataChunk(data)}}
	err := leader.server.RestoreSnapshot(stream)
	if err == nil || stream.closed {
		t.Errorf("a restore cut after its last chunk answered %v (closed %v); want an error", err, stream.closed)
	}
	if h := leader.fsm.Hash(); h != before {
		t.Fatalf("a restore cut before it was applied changed the state (hash %s, was %s)", h, before)
	}
}

// TestRestoreRechecksMembership: the membership of an admin certificate
// is checked when its restore stream opens, and a restore stream may stay
// open as long as a chunk comes every RestoreIdle; an admin removed from
// the configuration meanwhile (ctl peers remove, say because its key
// leaked) must not then replace the whole state. The handler checks again
// before restoring: here the caller is admin a9, no member, as if removed
// after the stream opened.
func TestRestoreRechecksMembership(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	leader := c.nodes[l]
	hdr, data := save(t, leader)
	if _, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 30); err != nil {
		t.Fatal(err)
	}
	before := leader.fsm.Hash()
	dir, _ := testPKI(t)
	if _, err := certs.Issue(dir, certs.RoleAdmin, "a9", nil, 0); err != nil {
		t.Fatal(err)
	}
	src, err := certs.Load(certs.IssuedFiles(dir, "a9"), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stream := &cutRestoreStream{ctx: verifiedCtx(t, src), msgs: []*pb.SnapshotChunk{hdrChunk(hdr), dataChunk(data)}}
	err = leader.server.RestoreSnapshot(stream)
	wantCode(t, "a restore by an admin no longer a member", err, codes.PermissionDenied)
	if h := leader.fsm.Hash(); h != before {
		t.Fatalf("a restore by an admin no longer a member changed the state (hash %s, was %s)", h, before)
	}
}
