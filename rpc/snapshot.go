package rpc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	// SnapshotFormatVersion is the snapshot stream format this build speaks.
	SnapshotFormatVersion = 1
	// MaxSnapshotSize bounds a snapshot accepted for restore (it is held in
	// memory to be checked before raft sees it).
	MaxSnapshotSize = 1 << 30
	snapshotChunk   = 64 << 10
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
	buf := make([]byte, snapshotChunk)
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
// sha256, and that it decodes to a coherent state) and only then has the
// leader restore it through raft; a refused snapshot changes nothing. A
// follower checks it too, then relays it to the leader.
func (s *Server) RestoreSnapshot(stream pb.Admin_RestoreSnapshotServer) error {
	hdr, data, err := receiveSnapshot(stream)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	restored, err := fsm.WithoutIndex(data)
	if err != nil {
		return invalid(fmt.Sprintf("snapshot: %v", err))
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

// SendSnapshot sends a restore stream: the header, then r in chunks;
// progress, if set, is told the bytes sent so far. The caller closes the
// stream.
func SendSnapshot(up pb.Admin_RestoreSnapshotClient, hdr *pb.SnapshotHeader, r io.Reader, progress func(sent int64)) error {
	if err := up.Send(&pb.SnapshotChunk{Body: &pb.SnapshotChunk_Header{Header: hdr}}); err != nil {
		return sendErr(up, err)
	}
	buf := make([]byte, snapshotChunk)
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

// receiveSnapshot reads and checks a whole restore stream.
func receiveSnapshot(stream pb.Admin_RestoreSnapshotServer) (*pb.SnapshotHeader, []byte, error) {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, nil, invalid("no snapshot was sent")
	}
	if err != nil {
		return nil, nil, err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return nil, nil, invalid("a restore must start with the snapshot header")
	}
	if err := CheckSnapshotHeader(hdr); err != nil {
		return nil, nil, invalid(err.Error())
	}
	data := make([]byte, 0, hdr.Size)
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		chunk, ok := m.Body.(*pb.SnapshotChunk_Data)
		if !ok {
			return nil, nil, invalid("after the snapshot header only data may follow")
		}
		if int64(len(data))+int64(len(chunk.Data)) > hdr.Size {
			return nil, nil, invalid(fmt.Sprintf("the snapshot holds more data than the %d bytes its header gives", hdr.Size))
		}
		data = append(data, chunk.Data...)
	}
	if err := CheckSnapshotData(hdr, data); err != nil {
		return nil, nil, invalid(err.Error())
	}
	return hdr, data, nil
}

// CheckSnapshotHeader checks what a header says before any data is read.
func CheckSnapshotHeader(hdr *pb.SnapshotHeader) error {
	if hdr.FormatVersion != SnapshotFormatVersion {
		return fmt.Errorf("snapshot format version %d is not supported (this build reads version %d)", hdr.FormatVersion, SnapshotFormatVersion)
	}
	if hdr.Size <= 0 || hdr.Size > MaxSnapshotSize {
		return fmt.Errorf("the snapshot header gives a size of %d bytes, outside 1..%d", hdr.Size, MaxSnapshotSize)
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
	if _, _, err := fsm.DecodeSnapshot(data); err != nil {
		return fmt.Errorf("the snapshot does not hold a valid groundskeeper state (%v)", err)
	}
	return nil
}
