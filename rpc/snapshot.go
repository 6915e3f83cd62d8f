package rpc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	// SnapshotFormatVersion is the snapshot stream format this build speaks.
	SnapshotFormatVersion = 1
	// MaxSnapshotSize bounds a snapshot accepted for restore, in bytes
	// received (it is held in memory to be checked before raft sees it).
	MaxSnapshotSize = 1 << 30
)

// SaveSnapshot streams a snapshot of the replicated state. It is taken by the
// leader after it confirms its leadership, so it holds every write
// acknowledged before the call; a follower relays the leader's stream.
func (s *Server) SaveSnapshot(req *pb.SaveSnapshotRequest, stream pb.Admin_SaveSnapshotServer) error {
	ctx := stream.Context()
	forward, err := s.readLocal(ctx, pb.Consistency_CONSISTENCY_LINEARIZABLE)
	if err != nil {
		return err
	}
	if forward {
		conn, err := s.leaderConn()
		if err != nil {
			return err
		}
		up, err := pb.NewAdminClient(conn).SaveSnapshot(ctx, req)
		if err != nil {
			return s.forwardErr(err)
		}
		for {
			m, err := up.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return s.forwardErr(err)
			}
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
	meta, rc, err := s.raft.SaveSnapshot()
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	if err := stream.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Header{Header: &pb.SnapshotHeader{
		FormatVersion: SnapshotFormatVersion, Index: meta.Index, Term: meta.Term, Size: meta.Size, NodeId: s.raft.ID(),
	}}}); err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, SnapshotChunkSize)
	var total int64
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			total += int64(n)
			if err := stream.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Data{Data: buf[:n]}}); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return status.Errorf(codes.Internal, "read snapshot: %v", rerr)
		}
	}
	if total != meta.Size {
		return status.Errorf(codes.Internal, "snapshot store gave %d bytes for a %d-byte snapshot", total, meta.Size)
	}
	return stream.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Sha256{Sha256: hex.EncodeToString(h.Sum(nil))}})
}

// RestoreSnapshot receives a snapshot, checks it completely (header, size,
// sha256, and that it decodes to a coherent state with sane counters) and
// only then has the leader restore it through raft; a refused snapshot
// changes nothing. A follower checks it too, then relays it to the leader.
// The stream is spooled to a temporary file as it arrives, so what is held
// is what was received, never what the header claims; one restore runs at
// a time on a node.
func (s *Server) RestoreSnapshot(stream pb.Admin_RestoreSnapshotServer) error {
	if !s.restores.busy.CompareAndSwap(false, true) {
		return status.Error(codes.ResourceExhausted, "another snapshot restore is under way on this node and only one runs at a time: retry once it has ended")
	}
	defer s.restores.busy.Store(false)
	spool, err := os.CreateTemp(s.restores.spoolDir(), restoreSpoolPattern)
	if err != nil {
		return status.Errorf(codes.Internal, "cannot spool the snapshot: %v", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	hdr, err := receiveSnapshot(stream, spool, s.streams.RestoreIdle)
	if err != nil {
		return err
	}
	// Exactly the bytes received (receiveSnapshot checked there are
	// hdr.Size of them).
	data := make([]byte, hdr.Size)
	if _, err := spool.ReadAt(data, 0); err != nil {
		return status.Errorf(codes.Internal, "read the spooled snapshot: %v", err)
	}
	if err := CheckSnapshotData(hdr, data); err != nil {
		return invalid(err.Error())
	}
	ctx := stream.Context()
	restored, err := fsm.WithoutIndex(data)
	if err != nil {
		return invalid(fmt.Sprintf("snapshot: %v", err))
	}
	// A stream cut meanwhile (cutOnPeer: the client's certificate expired
	// or lost its CA while the snapshot was checked) restores nothing; the
	// raft layer checks again as it proposes.
	if err := ctx.Err(); err != nil {
		return toStatus(err)
	}
	// The caller was authorized when the stream opened, which may be long
	// ago (a chunk every RestoreIdle keeps it open): an admin removed from
	// the configuration since must not replace the state now.
	if err := s.reauthorize(ctx, pb.Admin_RestoreSnapshot_FullMethodName); err != nil {
		return err
	}
	idx, err := s.raft.RestoreSnapshot(ctx, hdr.Index, hdr.Term, restored)
	if isNotLeader(err) {
		resp, err := s.relayRestore(stream, hdr, data)
		if err != nil {
			return err
		}
		return stream.SendAndClose(resp)
	}
	if err != nil {
		return toStatus(err)
	}
	s.logger.Warn("replicated state restored from a snapshot", "snapshot_index", hdr.Index, "index", idx)
	// The restored state's index is not known until an entry follows it:
	// republish this node's address (the restored state may hold an old
	// one anyway), which every node applies.
	if _, err := s.apply(ctx, fsm.SetAdminAddrCmd(s.raft.ID(), s.grpcAddr, s.fsm.MaxCommandVersion())); err != nil {
		s.logger.Warn("republish after the restore", "error", err)
	}
	return stream.SendAndClose(&pb.RestoreSnapshotResponse{Index: idx, StateHash: s.fsm.Hash()})
}

func (s *Server) relayRestore(stream pb.Admin_RestoreSnapshotServer, hdr *pb.SnapshotHeader, data []byte) (*pb.RestoreSnapshotResponse, error) {
	conn, err := s.leaderConn()
	if err != nil {
		return nil, err
	}
	up, err := pb.NewAdminClient(conn).RestoreSnapshot(stream.Context())
	if err != nil {
		return nil, s.forwardErr(err)
	}
	if err := SendSnapshot(up, hdr, bytes.NewReader(data), nil); err != nil {
		return nil, s.forwardErr(err)
	}
	resp, err := up.CloseAndRecv()
	return resp, s.forwardErr(err)
}

// restoreSpoolPattern names the temporary files restores spool to.
const restoreSpoolPattern = "restore-*.snapshot.tmp"

// restoreSpool is where restore streams are buffered, and whether one is
// under way.
type restoreSpool struct {
	dir  string
	busy atomic.Bool
}

func (r *restoreSpool) spoolDir() string {
	if r.dir == "" {
		return os.TempDir()
	}
	return r.dir
}

// SetSpoolDir makes restores spool their stream in dir (os.TempDir() if
// never set) and removes what restores interrupted by a crash left there.
// Call it before serving.
func (s *Server) SetSpoolDir(dir string) {
	s.restores.dir = dir
	left, _ := filepath.Glob(filepath.Join(dir, restoreSpoolPattern))
	for _, f := range left {
		os.Remove(f)
	}
}

// restoring reports whether a restore is under way (for tests).
func (s *Server) restoring() bool { return s.restores.busy.Load() }

// SendSnapshot sends a restore stream: the header, then r in chunks;
// progress, if set, is told the bytes sent so far. The caller closes the
// stream.
func SendSnapshot(up pb.Admin_RestoreSnapshotClient, hdr *pb.SnapshotHeader, r io.Reader, progress func(sent int64)) error {
	if err := up.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Header{Header: hdr}}); err != nil {
		return sendErr(up, err)
	}
	buf := make([]byte, SnapshotChunkSize)
	var sent int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := up.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Data{Data: buf[:n]}}); err != nil {
				return sendErr(up, err)
			}
			sent += int64(n)
			if progress != nil {
				progress(sent)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot: %w", rerr)
		}
	}
}

// sendErr turns the io.EOF a client stream's Send returns when the server
// has already answered into the server's actual status.
func sendErr(up pb.Admin_RestoreSnapshotClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := up.CloseAndRecv(); rerr != nil {
			return rerr
		}
	}
	return err
}

// receiveSnapshot reads a whole restore stream, writing its data to w:
// it checks the header, refuses data beyond the size the header gives
// and, at the end, data short of it or not matching its sha256. A stream
// that sends nothing for idle is abandoned (DeadlineExceeded).
func receiveSnapshot(stream pb.Admin_RestoreSnapshotServer, w io.Writer, idle time.Duration) (*pb.SnapshotHeader, error) {
	stalled := status.Errorf(codes.DeadlineExceeded, "the restore stream sent nothing for %s, so it was abandoned: send the snapshot again", idle)
	recv := func() (*pb.SnapshotChunk, error) { return recvWithin(stream.Context(), idle, stream.Recv, stalled) }
	first, err := recv()
	if errors.Is(err, io.EOF) {
		return nil, invalid("no snapshot was sent")
	}
	if err != nil {
		return nil, err
	}
	hdr, err := validateRestoreHeader(first)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var got int64
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		chunk, ok := m.Body.(*pb.SnapshotChunk_Data)
		if !ok {
			return nil, invalid("after the snapshot header only data may follow")
		}
		if got+int64(len(chunk.Data)) > hdr.Size {
			return nil, invalid(fmt.Sprintf("the snapshot holds more data than the %d bytes its header gives", hdr.Size))
		}
		got += int64(len(chunk.Data))
		h.Write(chunk.Data)
		if _, err := w.Write(chunk.Data); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot spool the snapshot: %v", err)
		}
	}
	if got != hdr.Size {
		return nil, invalid(fmt.Sprintf("the snapshot is truncated: %d of %d bytes", got, hdr.Size))
	}
	if hex.EncodeToString(h.Sum(nil)) != hdr.Sha256 {
		return nil, invalid("the snapshot is corrupt: its data does not match the sha256 in its header")
	}
	return hdr, nil
}

// CheckSnapshotHeader checks what a header says before any data is read.
func CheckSnapshotHeader(hdr *pb.SnapshotHeader) error {
	if hdr.FormatVersion != SnapshotFormatVersion {
		return fmt.Errorf("snapshot format version %d is not supported (this build reads version %d)", hdr.FormatVersion, SnapshotFormatVersion)
	}
	if hdr.Size <= 0 || hdr.Size > MaxSnapshotSize {
		return fmt.Errorf("the snapshot header gives a size of %d bytes, outside 1..%d", hdr.Size, MaxSnapshotSize)
	}
	if hdr.Index > fsm.MaxCounter || hdr.Term > fsm.MaxCounter {
		return fmt.Errorf("the snapshot header gives index %d and term %d; neither may exceed %d", hdr.Index, hdr.Term, uint64(fsm.MaxCounter))
	}
	if len(hdr.NodeId) > MaxIDLen {
		return fmt.Errorf("the snapshot header's node id is %d bytes long; at most %d are allowed", len(hdr.NodeId), MaxIDLen)
	}
	if b, err := hex.DecodeString(hdr.Sha256); err != nil || len(b) != sha256.Size {
		return errors.New("the snapshot header has no valid sha256")
	}
	return nil
}

// CheckSnapshotData checks that data is complete, matches the header's
// sha256 and decodes to a coherent groundskeeper state.
func CheckSnapshotData(hdr *pb.SnapshotHeader, data []byte) error {
	if int64(len(data)) != hdr.Size {
		return fmt.Errorf("the snapshot is truncated: %d of %d bytes", len(data), hdr.Size)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != hdr.Sha256 {
		return errors.New("the snapshot is corrupt: its data does not match the sha256 in its header")
	}
	_, snap, err := fsm.DecodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("the snapshot does not hold a valid groundskeeper state (%v)", err)
	}
	if err := fsm.CheckCounters(snap, hdr.Index); err != nil {
		return fmt.Errorf("the snapshot does not hold a sane groundskeeper state: %v", err)
	}
	return nil
}
