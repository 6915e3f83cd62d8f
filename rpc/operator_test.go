package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

func wantMessage(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	msg := status.Convert(err).Message()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: message %q does not mention %q", what, msg, w)
		}
	}
}

// applyOn proposes a raw command on the leader (what the scheduler would),
// in the command version every build of the test cluster applies.
func applyOn(t *testing.T, n *adminNode, cmd *fsmpb.Command) *fsmpb.Task {
	t.Helper()
	b, err := fsm.EncodeAgreed(time.Now().UnixNano(), fsm.CurrentVersion, cmd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := n.raft.Apply(ctx, b)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	res := out.(*fsmpb.ApplyResult)
	if err := fsm.ResultError(res); err != nil {
		t.Fatalf("apply refused: %v", err)
	}
	return res.Task
}

func TestCancelAndRetryTask(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	leader, f := c.nodes[l], c.nodes[c.followers(l)[0]]

	// Bad input is refused before anything is proposed, on every node.
	for _, n := range c.nodes {
		_, err := n.client.CancelTask(context.Background(), &pb.CancelTaskRequest{})
		wantCode(t, "cancel of task 0 via "+n.id, err, codes.InvalidArgument)
		_, err = n.client.CancelTask(context.Background(), &pb.CancelTaskRequest{Id: 1, Reason: strings.Repeat("x", 600)})
		wantCode(t, "cancel with a 600-byte reason via "+n.id, err, codes.InvalidArgument)
		_, err = n.client.RetryTask(context.Background(), &pb.RetryTaskRequest{})
		wantCode(t, "retry of task 0 via "+n.id, err, codes.InvalidArgument)
	}
	_, err := call(t, func(ctx context.Context) (*pb.CancelTaskResponse, error) {
		return f.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: 77})
	})
	wantCode(t, "cancel of an unknown task", err, codes.NotFound)
	_, err = call(t, func(ctx context.Context) (*pb.RetryTaskResponse, error) {
		return f.client.RetryTask(ctx, &pb.RetryTaskRequest{Id: 77})
	})
	wantCode(t, "retry of an unknown task", err, codes.NotFound)

	// A pending task is cancelled at once, through a follower, and its
	// volume is free again.
	sub, err := call(t, func(ctx context.Context) (*pb.SubmitTaskResponse, error) {
		return f.client.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 20,
			Params: []*fsmpb.Param{{Key: "k", Value: "v"}}, Priority: 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	pending := sub.Task
	cr, err := call(t, func(ctx context.Context) (*pb.CancelTaskResponse, error) {
		return f.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: pending.Id})
	})
	if err != nil || cr.Task.State != fsmpb.TaskState_TASK_STATE_CANCELLED || cr.Task.LastError != "cancelled by operator" {
		t.Fatalf("cancel of a pending task: %v, %v", cr, err)
	}

	// An assigned task is only marked: it stays assigned (its volume
	// reserved) until the leader has stopped its attempt.
	sub2, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, 21)
	if err != nil {
		t.Fatal(err)
	}
	applyOn(t, leader, &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: sub2.Task.Id, WorkerId: "w1"}}})
	cr, err = call(t, func(ctx context.Context) (*pb.CancelTaskResponse, error) {
		return f.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: sub2.Task.Id, Reason: "not now"})
	})
	if err != nil || cr.Task.State != fsmpb.TaskState_TASK_STATE_ASSIGNED || !cr.Task.CancelRequested || cr.Task.CancelReason != "not now" {
		t.Fatalf("cancel of an assigned task: %v, %v; want it still assigned, marked", cr, err)
	}
	_, err = submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 21)
	wantCode(t, "another task on a volume whose task is being cancelled", err, codes.FailedPrecondition)
	_, err = call(t, func(ctx context.Context) (*pb.RetryTaskResponse, error) {
		return f.client.RetryTask(ctx, &pb.RetryTaskRequest{Id: sub2.Task.Id})
	})
	wantCode(t, "retry of an assigned task", err, codes.FailedPrecondition)
	wantMessage(t, "retry of an assigned task", err, "still assigned", "only a failed or cancelled task can be retried")

	// Cancelling a cancelled task is refused in one sentence.
	_, err = call(t, func(ctx context.Context) (*pb.CancelTaskResponse, error) {
		return f.client.CancelTask(ctx, &pb.CancelTaskRequest{Id: pending.Id})
	})
	wantCode(t, "cancel of a cancelled task", err, codes.FailedPrecondition)
	wantMessage(t, "cancel of a cancelled task", err, "already cancelled", "only a pending, assigned or running task can be cancelled")

	// Retry of the cancelled task: a new task like it, through a follower.
	rr, err := call(t, func(ctx context.Context) (*pb.RetryTaskResponse, error) {
		return f.client.RetryTask(ctx, &pb.RetryTaskRequest{Id: pending.Id})
	})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	nt := rr.Task
	if rr.Existing || rr.RetryOf != pending.Id || nt.Id == pending.Id || nt.State != fsmpb.TaskState_TASK_STATE_PENDING ||
		nt.Type != pending.Type || nt.VolumeId != 20 || nt.Priority != 3 || len(nt.Params) != 1 || nt.Params[0].Key != "k" ||
		nt.Origin != "retry of task 1" {
		t.Fatalf("retry gave %v, want a copy of %v", rr, pending)
	}
	// Again: the volume has that task active now, so it is returned.
	rr2, err := call(t, func(ctx context.Context) (*pb.RetryTaskResponse, error) {
		return leader.client.RetryTask(ctx, &pb.RetryTaskRequest{Id: pending.Id})
	})
	if err != nil || !rr2.Existing || rr2.Task.Id != nt.Id {
		t.Fatalf("second retry gave %v, %v; want the existing task %d", rr2, err, nt.Id)
	}
}

// TestRetryCarriesHistory: `ctl task retry` submits a new task that
// inherits the history of the one it retries (the servers and moves of its
// earlier attempts and of its last one), so that the new task recognises
// what they left instead of refusing "target already holds volume".
func TestRetryCarriesHistory(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	c.waitPublished()
	leader, f := c.nodes[l], c.nodes[c.followers(l)[0]]
	waitFor(t, "every voter to advertise the current command version", func() bool {
		var ok bool
		leader.fsm.Read(func(st *fsm.State) {
			ok = true
			for _, m := range c.nodes {
				if v, _ := st.AdminVersion(m.id); v < fsm.CurrentVersion {
					ok = false
				}
			}
		})
		return ok
	})
	sub, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_BALANCE, 31)
	if err != nil {
		t.Fatal(err)
	}
	id := sub.Task.Id
	m1, m2 := &fsmpb.Move{Source: "a:1.2", Target: "b:1.2"}, &fsmpb.Move{Source: "a:1.2", Target: "c:1.2"}
	tk := applyOn(t, leader, &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: id, WorkerId: "w1", Servers: []string{"a:1.2", "b:1.2"}, Move: m1}}})
	applyOn(t, leader, &fsmpb.Command{Body: &fsmpb.Command_RequeueTask{RequeueTask: &fsmpb.RequeueTask{TaskId: id, Fence: tk.Fence, Reason: "lease expired"}}})
	tk = applyOn(t, leader, &fsmpb.Command{Body: &fsmpb.Command_AssignTask{AssignTask: &fsmpb.AssignTask{TaskId: id, WorkerId: "w1", Servers: []string{"a:1.2", "c:1.2"}, Move: m2}}})
	applyOn(t, leader, &fsmpb.Command{Body: &fsmpb.Command_FailTask{FailTask: &fsmpb.FailTask{TaskId: id, Fence: tk.Fence, Error: "needles the source lacks"}}})

	rr, err := call(t, func(ctx context.Context) (*pb.RetryTaskResponse, error) {
		return f.client.RetryTask(ctx, &pb.RetryTaskRequest{Id: id})
	})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	nt := rr.Task
	if !slices.Equal(nt.EarlierServers, []string{"a:1.2", "b:1.2", "c:1.2"}) || len(nt.AttemptServers) != 0 ||
		len(nt.EarlierMoves) != 2 || nt.EarlierMoves[0].Target != "b:1.2" || nt.EarlierMoves[1].Target != "c:1.2" {
		t.Fatalf("the retry's history: servers %v moves %v; want both attempts'", nt.EarlierServers, nt.EarlierMoves)
	}
}

// restore sends a hand-made restore stream to n.
func restore(t *testing.T, n *adminNode, msgs ...*pb.SnapshotChunk) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up, err := n.client.RestoreSnapshot(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := up.Send(m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	_, err = up.CloseAndRecv()
	return err
}

func hdrChunk(h *pb.SnapshotHeader) *pb.SnapshotChunk {
	return &pb.SnapshotChunk{Body: &pb.SnapshotChunk_Header{Header: h}}
}

func dataChunk(b []byte) *pb.SnapshotChunk {
	return &pb.SnapshotChunk{Body: &pb.SnapshotChunk_Data{Data: b}}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// save reads a whole SaveSnapshot stream from n.
func save(t *testing.T, n *adminNode) (*pb.SnapshotHeader, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := n.client.SaveSnapshot(ctx, &pb.SaveSnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var hdr *pb.SnapshotHeader
	var data bytes.Buffer
	var trailer string
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("save via %s: %v", n.id, err)
		}
		switch b := m.Body.(type) {
		case *pb.SnapshotChunk_Header:
			hdr = b.Header
		case *pb.SnapshotChunk_Data:
			data.Write(b.Data)
		case *pb.SnapshotChunk_Sha256:
			trailer = b.Sha256
		}
	}
	if hdr == nil || hdr.Size != int64(data.Len()) || trailer != sum(data.Bytes()) || hdr.Index == 0 {
		t.Fatalf("save via %s: header %v, %d bytes, sha256 %q (computed %s)", n.id, hdr, data.Len(), trailer, sum(data.Bytes()))
	}
	hdr.Sha256 = trailer
	return hdr, data.Bytes()
}

// TestSnapshotSaveRestoreRPC: a snapshot saved through a follower is the
// leader's; a restore stream that is empty, out of order, of another
// format, truncated, too long, corrupt or not a state is refused with
// InvalidArgument and changes nothing; a good one, through a follower,
// brings every node back to the saved state.
func TestSnapshotSaveRestoreRPC(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	f := c.nodes[c.followers(l)[0]]
	for vol := uint32(30); vol < 33; vol++ {
		if _, err := submit(t, c.nodes[l], fsmpb.TaskType_TASK_TYPE_VACUUM, vol); err != nil {
			t.Fatal(err)
		}
	}
	hdr, data := save(t, f)
	if hdr.NodeId != c.nodes[l].id || hdr.FormatVersion != SnapshotFormatVersion {
		t.Errorf("snapshot header %v; want format %d taken by the leader %s", hdr, SnapshotFormatVersion, c.nodes[l].id)
	}
	st, _, err := fsm.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	savedHash := st.Hash()
	if _, err := submit(t, c.nodes[l], fsmpb.TaskType_TASK_TYPE_VACUUM, 40); err != nil {
		t.Fatal(err)
	}
	hashes := func() string {
		var h string
		waitFor(t, "equal hashes", func() bool {
			h = c.nodes[0].fsm.Hash()
			return c.nodes[1].fsm.Hash() == h && c.nodes[2].fsm.Hash() == h
		})
		return h
	}
	before := hashes()

	good := proto2(hdr)
	notState := []byte("twelve bytes")
	for _, tc := range []struct {
		name string
		msgs []*pb.SnapshotChunk
		want string
	}{
		{"nothing", nil, "no snapshot"},
		{"data first", []*pb.SnapshotChunk{dataChunk(data)}, "header"},
		{"other format", []*pb.SnapshotChunk{hdrChunk(with(good, func(h *pb.SnapshotHeader) { h.FormatVersion = 9 })), dataChunk(data)}, "format version 9"},
		{"no sha256", []*pb.SnapshotChunk{hdrChunk(with(good, func(h *pb.SnapshotHeader) { h.Sha256 = "abc" })), dataChunk(data)}, "sha256"},
		{"size 0", []*pb.SnapshotChunk{hdrChunk(with(good, func(h *pb.SnapshotHeader) { h.Size = 0 })), dataChunk(data)}, "size"},
		{"truncated", []*pb.SnapshotChunk{hdrChunk(good), dataChunk(data[:len(data)-1])}, "truncated"},
		{"too long", []*pb.SnapshotChunk{hdrChunk(good), dataChunk(data), dataChunk([]byte{1})}, "more data"},
		{"corrupt", []*pb.SnapshotChunk{hdrChunk(good), dataChunk(append([]byte{data[0] ^ 1}, data[1:]...))}, "corrupt"},
		{"header twice", []*pb.SnapshotChunk{hdrChunk(good), hdrChunk(good)}, "only data"},
		{"not a state", []*pb.SnapshotChunk{hdrChunk(with(good, func(h *pb.SnapshotHeader) { h.Size, h.Sha256 = int64(len(notState)), sum(notState) })), dataChunk(notState)}, "valid groundskeeper state"},
	} {
		for _, n := range []*adminNode{c.nodes[l], f} {
			err := restore(t, n, tc.msgs...)
			wantCode(t, "restore of "+tc.name+" via "+n.id, err, codes.InvalidArgument)
			wantMessage(t, "restore of "+tc.name+" via "+n.id, err, tc.want)
		}
	}
	if h := hashes(); h != before {
		t.Fatalf("refused restores changed the state")
	}

	if err := restore(t, f, hdrChunk(good), dataChunk(data[:100]), dataChunk(data[100:])); err != nil {
		t.Fatalf("restore via a follower: %v", err)
	}
	if h := hashes(); h != savedHash {
		t.Fatalf("after the restore the nodes agree on %s, want the saved %s", h, savedHash)
	}
}

func proto2(h *pb.SnapshotHeader) *pb.SnapshotHeader {
	return &pb.SnapshotHeader{FormatVersion: h.FormatVersion, Index: h.Index, Term: h.Term, Size: h.Size, Sha256: h.Sha256, NodeId: h.NodeId}
}

func with(h *pb.SnapshotHeader, edit func(*pb.SnapshotHeader)) *pb.SnapshotHeader {
	c := proto2(h)
	edit(c)
	return c
}
