package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// A snapshot file is one fixed-length text header line, then the snapshot
// data exactly as raft stores it (the state machine's encoded state):
//
//	groundskeeper-snapshot v2 index=<20 digits> term=<20 digits> size=<20 digits> sha256=<64 hex> check=<64 hex>\n
//
// sha256 is the data's; check is the sha256 of the line's text before
// " check=", so a changed index, term, size or data checksum is caught like
// changed data. Version 1 files (the same line without check=, whose index
// and term nothing covered) are still read; restore bounds their index
// and term and checks the state's counters against them. The header's
// length does not depend on its values, so it is written last, over a
// placeholder, once the data has been streamed and hashed.
const (
	snapshotMagic = "groundskeeper-snapshot "
	// snapshotFileVersion is the file format this build writes; it reads
	// it and version 1. It is not the stream's rpc.SnapshotFormatVersion.
	snapshotFileVersion = 2
	snapshotHeaderV1Fmt = snapshotMagic + "v1 index=%020d term=%020d size=%020d sha256=%64s\n"
	snapshotCoveredFmt  = snapshotMagic + "v2 index=%020d term=%020d size=%020d sha256=%64s"
	snapshotCheckFmt    = " check=%64s\n"
)

var (
	snapshotHeaderLen   = len(formatSnapshotHeader(&pb.SnapshotHeader{Sha256: strings.Repeat("0", 64)}))
	snapshotHeaderV1Len = len(fmt.Sprintf(snapshotHeaderV1Fmt, 0, 0, 0, strings.Repeat("0", 64)))
)

// formatSnapshotHeader gives the header line of a file of the current
// version for h (whose FormatVersion, the stream's, is not written).
func formatSnapshotHeader(h *pb.SnapshotHeader) []byte {
	covered := fmt.Sprintf(snapshotCoveredFmt, h.Index, h.Term, h.Size, h.Sha256)
	return []byte(covered + fmt.Sprintf(snapshotCheckFmt, headerCheck(covered)))
}

func headerCheck(covered string) string {
	sum := sha256.Sum256([]byte(covered))
	return hex.EncodeToString(sum[:])
}

// parseSnapshotHeader reads a header line of either version into the
// header of a restore stream.
func parseSnapshotHeader(file, line string) (*pb.SnapshotHeader, error) {
	var v uint32
	if _, err := fmt.Sscanf(line, snapshotMagic+"v%d ", &v); err != nil {
		return nil, fmt.Errorf("%s has a damaged snapshot header", file)
	}
	hdr := &pb.SnapshotHeader{FormatVersion: rpc.SnapshotFormatVersion}
	switch v {
	case 1:
		if len(line) != snapshotHeaderV1Len {
			return nil, fmt.Errorf("%s has a damaged snapshot header", file)
		}
		if _, err := fmt.Sscanf(line, snapshotHeaderV1Fmt, &hdr.Index, &hdr.Term, &hdr.Size, &hdr.Sha256); err != nil {
			return nil, fmt.Errorf("%s has a damaged snapshot header", file)
		}
	case 2:
		covered, check, ok := strings.Cut(line, " check=")
		if !ok || len(line) != snapshotHeaderLen {
			return nil, fmt.Errorf("%s has a damaged snapshot header", file)
		}
		if strings.TrimSuffix(check, "\n") != headerCheck(covered) {
			return nil, fmt.Errorf("%s is corrupt: its header does not match the header's checksum", file)
		}
		if _, err := fmt.Sscanf(covered, snapshotCoveredFmt, &hdr.Index, &hdr.Term, &hdr.Size, &hdr.Sha256); err != nil {
			return nil, fmt.Errorf("%s has a damaged snapshot header", file)
		}
	default:
		return nil, fmt.Errorf("%s is a snapshot of format version %d, which this build cannot read (it reads versions 1 and %d)", file, v, snapshotFileVersion)
	}
	return hdr, nil
}

// snapshotInfo is what save and restore print with --json.
type snapshotInfo struct {
	File          string `json:"file"`
	Index         uint64 `json:"snapshot_index"`
	Term          uint64 `json:"snapshot_term"`
	Size          int64  `json:"size"`
	Sha256        string `json:"sha256"`
	NodeID        string `json:"node_id,omitempty"`
	RestoredIndex uint64 `json:"restored_index,omitempty"`
	StateHash     string `json:"state_hash,omitempty"`
}

func (o *ctlOpts) snapshotFile(cmd string, args []string) (string, error) {
	fs, err := o.subFlags("snapshot "+cmd, args, nil)
	if err != nil {
		return "", err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return "", usagef("snapshot %s needs exactly one file name", cmd)
	}
	return fs.Arg(0), nil
}

// snapshotSave streams the leader's snapshot into a temporary file next to
// FILE, checks its sha256 against the server's and re-reads it, then
// renames it into place: FILE is either the old file or a whole, verified
// snapshot.
func (o *ctlOpts) snapshotSave(args []string) error {
	file, err := o.snapshotFile("save", args)
	if err != nil {
		return err
	}
	dir := filepath.Dir(file)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("cannot save to %s: directory %s does not exist", file, dir)
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return usagef("cannot save to %s: it is a directory", file)
	}
	p := newProgressLine(o.errOut)
	defer p.done()
	var tmp string
	hdr, err := ctlDo(o, func(ctx context.Context, c *rpc.Client, perTry time.Duration) (*pb.SnapshotHeader, error) {
		return rpc.DoConn(ctx, c, o.timeout, func(ctx context.Context, conn grpc.ClientConnInterface) (*pb.SnapshotHeader, error) {
			if tmp != "" {
				os.Remove(tmp)
			}
			var h *pb.SnapshotHeader
			var err error
			tmp, h, err = receiveSnapshotFile(ctx, conn, dir, filepath.Base(file), p)
			return h, err
		})
	})
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return fmt.Errorf("snapshot not saved: %w", err)
	}
	if _, err := readSnapshotFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot not saved: the written file does not read back (%w)", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot not saved: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	p.done()
	info := snapshotInfo{File: file, Index: hdr.Index, Term: hdr.Term, Size: hdr.Size, Sha256: hdr.Sha256, NodeID: hdr.NodeId}
	if o.json {
		return o.writeJSON(info)
	}
	fmt.Fprintf(o.out, "saved a snapshot of the replicated state at index %d (term %d, %s, taken by %s) to %s\n",
		hdr.Index, hdr.Term, humanBytes(uint64(hdr.Size)), hdr.NodeId, file)
	return nil
}

// receiveSnapshotFile reads one SaveSnapshot stream into a new temporary
// file in dir, returning its name (also on error, for removal).
func receiveSnapshotFile(ctx context.Context, conn grpc.ClientConnInterface, dir, base string, p *progressLine) (string, *pb.SnapshotHeader, error) {
	stream, err := pb.NewAdminClient(conn).SaveSnapshot(ctx, &pb.SaveSnapshotRequest{})
	if err != nil {
		return "", nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return "", nil, err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return "", nil, errors.New("the server's snapshot stream did not start with a header")
	}
	if hdr.FormatVersion != rpc.SnapshotFormatVersion {
		return "", nil, fmt.Errorf("the server sends snapshot format %d; this ctl writes format %d", hdr.FormatVersion, rpc.SnapshotFormatVersion)
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", nil, fmt.Errorf("create a temporary file: %w", err)
	}
	tmp := f.Name()
	defer f.Close()
	w := bufio.NewWriterSize(f, 256<<10)
	if _, err := w.Write(make([]byte, snapshotHeaderLen)); err != nil {
		return tmp, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	h := sha256.New()
	var got int64
	var sum string
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return tmp, nil, err
		}
		switch b := m.Body.(type) {
		case *pb.SnapshotChunk_Data:
			if sum != "" {
				return tmp, nil, errors.New("the server sent data after the snapshot's checksum")
			}
			got += int64(len(b.Data))
			if got > hdr.Size {
				return tmp, nil, fmt.Errorf("the server sent more than the %d bytes it announced", hdr.Size)
			}
			h.Write(b.Data)
			if _, err := w.Write(b.Data); err != nil {
				return tmp, nil, fmt.Errorf("write %s: %w", tmp, err)
			}
			p.throttled(fmt.Sprintf("saving snapshot: %s of %s", humanBytes(uint64(got)), humanBytes(uint64(hdr.Size))), got == hdr.Size)
		case *pb.SnapshotChunk_Sha256:
			sum = b.Sha256
		default:
			return tmp, nil, errors.New("the server's snapshot stream holds an unexpected message")
		}
	}
	if got != hdr.Size {
		return tmp, nil, fmt.Errorf("the stream ended after %d of %d bytes", got, hdr.Size)
	}
	mine := hex.EncodeToString(h.Sum(nil))
	if sum != mine {
		return tmp, nil, errors.New("the data received does not match the server's sha256")
	}
	hdr.Sha256 = mine
	if err := w.Flush(); err != nil {
		return tmp, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(formatSnapshotHeader(hdr), 0); err != nil {
		return tmp, nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return tmp, nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	return tmp, hdr, f.Close()
}

// snapshotFileData is a snapshot file read and checked.
type snapshotFileData struct {
	hdr  *pb.SnapshotHeader
	data []byte
}

// readSnapshotFile reads a snapshot file and checks it completely: header,
// size, sha256 and that the data decodes to a coherent state. Its errors
// are one sentence naming the file.
func readSnapshotFile(file string) (*snapshotFileData, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", file)
		}
		return nil, fmt.Errorf("cannot read %s: %w", file, err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	line, err := r.ReadString('\n')
	if !strings.HasPrefix(line, snapshotMagic) {
		return nil, fmt.Errorf("%s is not a groundskeeper snapshot file", file)
	}
	if err != nil {
		return nil, fmt.Errorf("%s has a damaged snapshot header", file)
	}
	hdr, err := parseSnapshotHeader(file, line)
	if err != nil {
		return nil, err
	}
	if err := rpc.CheckSnapshotHeader(hdr); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	data, err := io.ReadAll(io.LimitReader(r, hdr.Size+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", file, err)
	}
	if int64(len(data)) > hdr.Size {
		return nil, fmt.Errorf("%s holds more data than its header gives (%d bytes): it is corrupt", file, hdr.Size)
	}
	if err := rpc.CheckSnapshotData(hdr, data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &snapshotFileData{hdr: hdr, data: data}, nil
}

// snapshotRestore checks FILE, then uploads it; the leader restores it
// through raft, replacing the state on every member.
func (o *ctlOpts) snapshotRestore(args []string) error {
	file, err := o.snapshotFile("restore", args)
	if err != nil {
		return err
	}
	if len(splitList(o.admin)) == 0 {
		return usagef("--admin is required (or set GROUNDSKEEPER_ADMIN)")
	}
	snap, err := readSnapshotFile(file)
	if err != nil {
		return fmt.Errorf("nothing restored: %w", err)
	}
	p := newProgressLine(o.errOut)
	defer p.done()
	size := snap.hdr.Size
	resp, err := ctlDo(o, func(ctx context.Context, c *rpc.Client, perTry time.Duration) (*pb.RestoreSnapshotResponse, error) {
		return rpc.DoConn(ctx, c, o.timeout, func(ctx context.Context, conn grpc.ClientConnInterface) (*pb.RestoreSnapshotResponse, error) {
			up, err := pb.NewAdminClient(conn).RestoreSnapshot(ctx)
			if err != nil {
				return nil, err
			}
			if err := rpc.SendSnapshot(up, snap.hdr, bytes.NewReader(snap.data), func(sent int64) {
				p.throttled(fmt.Sprintf("restoring snapshot: sent %s of %s", humanBytes(uint64(sent)), humanBytes(uint64(size))), sent == size)
			}); err != nil {
				return nil, err
			}
			p.show(fmt.Sprintf("restoring snapshot: sent %s; waiting for the cluster to install it", humanBytes(uint64(size))))
			return up.CloseAndRecv()
		})
	})
	if err != nil {
		return fmt.Errorf("restore failed: %w", err)
	}
	p.done()
	info := snapshotInfo{File: file, Index: snap.hdr.Index, Term: snap.hdr.Term, Size: size, Sha256: snap.hdr.Sha256, RestoredIndex: resp.Index, StateHash: resp.StateHash}
	if o.json {
		return o.writeJSON(info)
	}
	fmt.Fprintf(o.out, "restored the snapshot of index %d from %s; the cluster's state now stands at raft index %d (state hash %s)\n",
		snap.hdr.Index, file, resp.Index, shortHash(resp.StateHash))
	return nil
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
