package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// vsHandler serves volume_server_pb.VolumeServer for one VolumeServer.
type vsHandler struct {
	volume_server_pb.UnimplementedVolumeServerServer
	s *VolumeServer
}

func (s *VolumeServer) checkMaintLocked() error {
	if s.maintenance {
		return fmt.Errorf("volume server %s is in maintenance mode", s.id)
	}
	return nil
}

func (s *VolumeServer) checkMaint() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkMaintLocked()
}

// diskTypeKey is SeaweedFS's types.ToDiskType: "" and "hdd" are one
// type, names compared ignoring case.
func diskTypeKey(t string) string {
	if t = strings.ToLower(t); t == "hdd" {
		return ""
	}
	return t
}

func readableDiskType(t string) string {
	if t == "" {
		return "hdd"
	}
	return t
}

// guard is SeaweedFS's SSRF check on the peers a server dials
// (Config.SSRFGuard).
func (c *Cluster) guard(addr string) error {
	if !c.cfg.SSRFGuard {
		return nil
	}
	if strings.ContainsAny(addr, "/?#@\\") {
		return fmt.Errorf("remote endpoint %q is not a bare host:port", addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("remote endpoint %q is not a bare host:port", addr)
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	switch {
	case ip == nil:
		return nil
	case ip.IsLoopback():
		return fmt.Errorf("remote endpoint %q resolves to loopback address %s", addr, ip)
	case ip.IsUnspecified():
		return fmt.Errorf("remote endpoint %q resolves to unspecified address %s", addr, ip)
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return fmt.Errorf("remote endpoint %q resolves to link-local address %s", addr, ip)
	case ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("remote endpoint %q resolves to interface-local address %s", addr, ip)
	}
	return nil
}

// peer resolves a source address the way a volume server dials it; a
// missing or stopped server looks like a refused connection.
func (c *Cluster) peer(addr string) (*VolumeServer, error) {
	s, ok := c.ServerByAddress(addr)
	if ok && s.Up() {
		return s, nil
	}
	target := addr
	if s != nil {
		target = s.grpcAddr
	}
	return nil, status.Errorf(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp %s: connect: connection refused\"", target)
}

// runTimed waits total, reporting progress every 128 MiB of size like
// SeaweedFS (no report at all for small sizes).
func runTimed(ctx context.Context, clk Clock, total time.Duration, size uint64, report func(processed int64) error) error {
	start := clk.Now()
	n := 0
	if size > progressInterval {
		n = int((size - 1) / progressInterval)
	}
	for i := 1; i <= n; i++ {
		at := start.Add(total * time.Duration(i) / time.Duration(n+1))
		if err := sleepCtx(ctx, clk, at.Sub(clk.Now())); err != nil {
			return err
		}
		if err := report(int64(i) * progressInterval); err != nil {
			return err
		}
	}
	return sleepCtx(ctx, clk, start.Add(total).Sub(clk.Now()))
}

// ---- vacuum ----

func (h *vsHandler) VacuumVolumeCheck(ctx context.Context, req *volume_server_pb.VacuumVolumeCheckRequest) (*volume_server_pb.VacuumVolumeCheckResponse, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[req.VolumeId]
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "volume id %d is not found during check compact: volume not found", req.VolumeId)
	}
	return &volume_server_pb.VacuumVolumeCheckResponse{GarbageRatio: r.garbageRatio()}, nil
}

func (h *vsHandler) VacuumVolumeCompact(req *volume_server_pb.VacuumVolumeCompactRequest, stream volume_server_pb.VolumeServer_VacuumVolumeCompactServer) error {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	if err := s.checkMaintLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	r := s.vols[vid]
	if r == nil {
		s.mu.Unlock()
		return status.Errorf(codes.NotFound, "compact volume %d: volume id %d is not found during compact: volume not found", vid, vid)
	}
	if r.unloaded {
		s.mu.Unlock()
		return fmt.Errorf("compact volume %d: volume %d data backend not found", vid, vid)
	}
	if r.compacting {
		// SeaweedFS: a compaction already running makes this call an OK no-op.
		s.mu.Unlock()
		return nil
	}
	r.compacting = true
	r.cpd = cpdPartial
	size, delBytes, dels, life := r.size, r.deletedBytes, r.deleteCount, s.life
	s.mu.Unlock()

	err := runTimed(stream.Context(), s.c.cfg.Clock, s.c.opDuration(s.c.cfg.CompactDuration, size), size, func(p int64) error {
		return stream.Send(&volume_server_pb.VacuumVolumeCompactResponse{ProcessedBytes: p})
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life != life || s.vols[vid] != r {
		return fmt.Errorf("compact volume %d: volume closed during compaction", vid)
	}
	r.compacting = false
	if err != nil {
		return fmt.Errorf("compact volume %d: interrupted: %w", vid, err)
	}
	r.cpd, r.cpdDelBytes, r.cpdDels = cpdComplete, delBytes, dels
	return nil
}

func (h *vsHandler) VacuumVolumeCommit(ctx context.Context, req *volume_server_pb.VacuumVolumeCommitRequest) (*volume_server_pb.VacuumVolumeCommitResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkMaintLocked(); err != nil {
		return nil, err
	}
	r := s.vols[vid]
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "commit compact volume %d: volume id %d is not found during commit compact: volume not found", vid, vid)
	}
	ro := r.noWrite()
	if r.compacting {
		// SeaweedFS: a commit while a compaction runs is an OK no-op.
		return &volume_server_pb.VacuumVolumeCommitResponse{IsReadOnly: ro, VolumeSize: r.size}, nil
	}
	if r.unloaded || r.cpd != cpdComplete {
		// CommitCompact closes the volume before it finds the .cpd/.cpx
		// missing, and never reloads it: the volume is gone until restart.
		r.unloaded, r.cpd = true, cpdNone
		s.changedLocked(volKey(vid))
		return nil, fmt.Errorf("commit compact volume %d: volume %d compact swap aborted: missing .cpd/.cpx", vid, vid)
	}
	gone := min(r.cpdDelBytes, r.size-superBlockSize)
	r.size -= gone
	r.deletedBytes -= min(r.deletedBytes, gone)
	dropped := min(r.fileCount, r.deleteCount, r.cpdDels)
	r.fileCount -= dropped
	r.deleteCount -= dropped
	r.idBase += dropped
	r.overwrites = 0
	r.revision++
	r.cpd, r.cpdDelBytes, r.cpdDels = cpdNone, 0, 0
	s.changedLocked(volKey(vid))
	return &volume_server_pb.VacuumVolumeCommitResponse{IsReadOnly: ro, VolumeSize: r.size}, nil
}

func (h *vsHandler) VacuumVolumeCleanup(ctx context.Context, req *volume_server_pb.VacuumVolumeCleanupRequest) (*volume_server_pb.VacuumVolumeCleanupResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkMaintLocked(); err != nil {
		return nil, err
	}
	r := s.vols[vid]
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "volume id %d is not found during cleaning up: volume not found", vid)
	}
	if !r.compacting {
		r.cpd, r.cpdDelBytes, r.cpdDels = cpdNone, 0, 0
	}
	return &volume_server_pb.VacuumVolumeCleanupResponse{}, nil
}

// ---- read-only / writable / status / delete ----

func (h *vsHandler) VolumeMarkReadonly(ctx context.Context, req *volume_server_pb.VolumeMarkReadonlyRequest) (*volume_server_pb.VolumeMarkReadonlyResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		return nil, fmt.Errorf("volume %d not found", vid)
	}
	// step 1: tell the master first; with no master, nothing changes.
	if err := s.c.master.setReadOnly(s, vid, true); err != nil {
		return nil, err
	}
	if req.CanDelete {
		r.roMark, r.canDeleteMark = false, true
	} else {
		r.roMark, r.canDeleteMark = true, false
	}
	if req.Persist {
		r.persistRO, r.persistCanDelete = r.roMark, r.canDeleteMark
	}
	s.changedLocked(volKey(vid))
	// step 3: tell the master again.
	if err := s.c.master.setReadOnly(s, vid, true); err != nil {
		return nil, err
	}
	return &volume_server_pb.VolumeMarkReadonlyResponse{}, nil
}

func (h *vsHandler) VolumeMarkWritable(ctx context.Context, req *volume_server_pb.VolumeMarkWritableRequest) (*volume_server_pb.VolumeMarkWritableResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		return nil, fmt.Errorf("volume %d not found", vid)
	}
	if err := s.checkMaintLocked(); err != nil {
		return nil, err
	}
	if r.unloaded {
		return nil, fmt.Errorf("volume %d cannot be marked writable: volume %d data backend not found", vid, vid)
	}
	// The local flip (and the .vif) comes first; a master failure is
	// reported afterwards.
	r.roMark, r.canDeleteMark, r.persistRO, r.persistCanDelete = false, false, false, false
	s.changedLocked(volKey(vid))
	if err := s.c.master.setReadOnly(s, vid, false); err != nil {
		return nil, err
	}
	return &volume_server_pb.VolumeMarkWritableResponse{}, nil
}

func (h *vsHandler) VolumeStatus(ctx context.Context, req *volume_server_pb.VolumeStatusRequest) (*volume_server_pb.VolumeStatusResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		return nil, fmt.Errorf("not found volume id %d", vid)
	}
	if r.unloaded {
		return nil, fmt.Errorf("volume %d data backend not found", vid)
	}
	return &volume_server_pb.VolumeStatusResponse{IsReadOnly: r.noWrite(), VolumeSize: r.size, FileCount: r.fileCount, FileDeletedCount: r.deleteCount}, nil
}

// fileStatusLocked answers ReadVolumeFileStatus. An unloaded volume (after a
// failed commit) reports zero sizes and file count, as SeaweedFS's FileStat
// does without a data backend.
func (s *VolumeServer) fileStatusLocked(r *replica) *volume_server_pb.ReadVolumeFileStatusResponse {
	if r.unloaded {
		zero := uint64(time.Time{}.Unix())
		return &volume_server_pb.ReadVolumeFileStatusResponse{
			VolumeId: r.id, IdxFileTimestampSeconds: zero, DatFileTimestampSeconds: zero,
			CompactionRevision: r.revision, Collection: r.collection, DiskType: s.diskType, Version: volumeVersion,
			VolumeInfo: &volume_server_pb.VolumeInfo{Version: volumeVersion, Replication: fmt.Sprintf("%03d", r.rp)},
		}
	}
	return &volume_server_pb.ReadVolumeFileStatusResponse{
		VolumeId:                r.id,
		IdxFileTimestampSeconds: uint64(r.modifiedAt),
		IdxFileSize:             r.idxEntries() * idxEntrySize,
		DatFileTimestampSeconds: uint64(r.modifiedAt),
		DatFileSize:             r.size,
		FileCount:               r.fileCount,
		CompactionRevision:      r.revision,
		Collection:              r.collection,
		DiskType:                s.diskType,
		Version:                 volumeVersion,
		VolumeInfo: &volume_server_pb.VolumeInfo{
			Version: volumeVersion, Replication: fmt.Sprintf("%03d", r.rp), DatFileSize: int64(r.size),
			ReadOnly: r.persistRO || r.persistCanDelete, ReadOnlyCanDelete: r.persistCanDelete,
		},
	}
}

func (h *vsHandler) ReadVolumeFileStatus(ctx context.Context, req *volume_server_pb.ReadVolumeFileStatusRequest) (*volume_server_pb.ReadVolumeFileStatusResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		return nil, fmt.Errorf("not found volume id %d", vid)
	}
	return s.fileStatusLocked(r), nil
}

func (h *vsHandler) VolumeDelete(ctx context.Context, req *volume_server_pb.VolumeDeleteRequest) (*volume_server_pb.VolumeDeleteResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.copying[vid] {
		return nil, status.Errorf(codes.Unavailable, "volume %d is being copied", vid)
	}
	r := s.vols[vid]
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "delete volume %d not found on disk: volume not found", vid)
	}
	if req.OnlyEmpty || req.OnlyGarbage {
		empty := r.fileCount == 0
		allGarbage := r.fileCount > 0 && r.deleteCount >= r.fileCount
		if !(req.OnlyEmpty && empty) && !(req.OnlyGarbage && allGarbage) {
			return nil, status.Errorf(codes.FailedPrecondition, "DeleteVolume %d: volume not empty", vid)
		}
		if s.emptyDeleted == nil {
			s.emptyDeleted = map[uint32]bool{}
		}
		s.emptyDeleted[vid] = true
	}
	delete(s.vols, vid)
	s.changedLocked(volKey(vid))
	return &volume_server_pb.VolumeDeleteResponse{}, nil
}

func (h *vsHandler) VolumeServerStatus(ctx context.Context, req *volume_server_pb.VolumeServerStatusRequest) (*volume_server_pb.VolumeServerStatusResponse, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	const slot = uint64(1) << 30
	all := uint64(s.maxVolumes.Load()) * slot
	used := uint64(s.maxVolumes.Load()-s.freeSlotsLocked()) * slot
	return &volume_server_pb.VolumeServerStatusResponse{
		DiskStatuses: []*volume_server_pb.DiskStatus{{
			Dir: "/sim/" + s.id, All: all, Used: used, Free: all - used, DiskType: readableDiskType(s.diskType),
			PercentUsed: float32(used) / float32(max(all, 1)) * 100, PercentFree: float32(all-used) / float32(max(all, 1)) * 100,
		}},
		MemoryStatus: &volume_server_pb.MemStatus{},
		Version:      h.s.c.cfg.version(),
		DataCenter:   s.dc,
		Rack:         s.rack,
		State:        &volume_server_pb.VolumeServerState{Maintenance: s.maintenance},
	}, nil
}

func (h *vsHandler) Ping(ctx context.Context, req *volume_server_pb.PingRequest) (*volume_server_pb.PingResponse, error) {
	now := time.Now().UnixNano()
	return &volume_server_pb.PingResponse{StartTimeNs: now, RemoteTimeNs: now, StopTimeNs: now}, nil
}

// ---- move: copy and tail ----

func (h *vsHandler) VolumeCopy(req *volume_server_pb.VolumeCopyRequest, stream volume_server_pb.VolumeServer_VolumeCopyServer) error {
	s, c, vid := h.s, h.s.c, req.VolumeId
	if err := s.checkMaint(); err != nil {
		return err
	}
	if err := c.guard(req.SourceDataNode); err != nil {
		return fmt.Errorf("invalid source data node %s: %w", req.SourceDataNode, err)
	}
	s.mu.Lock()
	if s.copying[vid] {
		s.mu.Unlock()
		return status.Errorf(codes.Unavailable, "volume %d is already being copied", vid)
	}
	s.copying[vid] = true
	life := s.life
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.life == life {
			delete(s.copying, vid)
		}
		s.mu.Unlock()
	}()

	src, err := c.peer(req.SourceDataNode)
	if err != nil {
		return fmt.Errorf("read volume file status failed, %w", err)
	}
	src.mu.Lock()
	sr := src.vols[vid]
	if sr == nil || sr.unloaded {
		src.mu.Unlock()
		return fmt.Errorf("read volume file status failed, %w", status.Errorf(codes.Unknown, "not found volume id %d", vid))
	}
	snap := sr.clone()
	src.mu.Unlock()

	// As SeaweedFS's VolumeCopy: the disk type asked for, else the source
	// volume's.
	diskType := src.diskType
	if req.DiskType != "" {
		diskType = req.DiskType
	}
	s.mu.Lock()
	_, has := s.vols[vid]
	if diskTypeKey(diskType) != diskTypeKey(s.diskType) || (!has && s.freeSlotsLocked() < 1) {
		s.mu.Unlock()
		return fmt.Errorf("no space left for disk type %s", readableDiskType(diskType))
	}
	s.mu.Unlock()

	// Halfway through, rules with Mid set apply (a test stops the server
	// there). SeaweedFS stages a copy in a copying/ directory its volume
	// loader never scans and mounts it only once complete, so a copy cut
	// short by a crash leaves nothing a restarted server serves.
	total := c.opDuration(c.cfg.CopyDuration, snap.size)
	report := func(p int64) error {
		return stream.Send(&volume_server_pb.VolumeCopyResponse{ProcessedBytes: p})
	}
	err = runTimed(stream.Context(), c.cfg.Clock, total/2, snap.size/2, report)
	if err == nil {
		err = c.faults.apply(stream.Context(), "VolumeCopy", s.ident(), vid, phaseMid)
	}
	if err == nil {
		err = runTimed(stream.Context(), c.cfg.Clock, total-total/2, snap.size-snap.size/2, func(p int64) error { return report(int64(snap.size/2) + p) })
	}
	if err != nil {
		return fmt.Errorf("failed to copy %d.dat file: interrupted copy operation: %w", vid, err)
	}
	if _, err := c.peer(req.SourceDataNode); err != nil {
		return fmt.Errorf("read source volume %d status after copy failed: %w", vid, err)
	}
	src.mu.Lock()
	sr = src.vols[vid]
	compacted := sr == nil || sr.revision != snap.revision
	src.mu.Unlock()
	if compacted {
		return fmt.Errorf("volume %d is compacted", vid)
	}

	nr := snap
	nr.roMark, nr.canDeleteMark = snap.persistRO, snap.persistCanDelete
	nr.compacting, nr.cpd, nr.cpdDelBytes, nr.cpdDels, nr.unloaded = false, cpdNone, 0, 0, false
	s.mu.Lock()
	if s.life != life {
		s.mu.Unlock()
		return fmt.Errorf("failed to mount or validate volume %d: server stopped", vid)
	}
	s.vols[vid] = nr
	s.changedLocked(volKey(vid))
	s.mu.Unlock()
	return stream.Send(&volume_server_pb.VolumeCopyResponse{LastAppendAtNs: snap.lastAppendNs})
}

func (h *vsHandler) VolumeTailReceiver(ctx context.Context, req *volume_server_pb.VolumeTailReceiverRequest) (*volume_server_pb.VolumeTailReceiverResponse, error) {
	s, c, vid := h.s, h.s.c, req.VolumeId
	if err := c.guard(req.SourceVolumeServer); err != nil {
		return nil, fmt.Errorf("invalid source volume server %s: %w", req.SourceVolumeServer, err)
	}
	s.mu.Lock()
	r := s.vols[vid]
	s.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("receiver not found volume id %d", vid)
	}
	// The real sender gives up after about 2 × idle_timeout_seconds without
	// a new needle; 0 tails until the caller cancels.
	window := 2 * time.Duration(req.IdleTimeoutSeconds) * c.cfg.TailSecond
	poll := max(c.cfg.TailSecond/2, time.Millisecond)
	since := int64(req.SinceNs)
	lastActivity := c.cfg.Clock.Now()
	for {
		src, err := c.peer(req.SourceVolumeServer)
		if err != nil {
			return nil, err
		}
		src.mu.Lock()
		sr := src.vols[vid]
		if sr == nil || sr.unloaded {
			src.mu.Unlock()
			return nil, fmt.Errorf("not found volume id %d", vid)
		}
		var recs []appendRec
		for _, rec := range sr.appends {
			if rec.ts > since {
				recs = append(recs, rec)
			}
		}
		src.mu.Unlock()
		if len(recs) > 0 {
			lastActivity = c.cfg.Clock.Now()
			s.mu.Lock()
			if cur := s.vols[vid]; cur != nil {
				for _, rec := range recs {
					cur.apply(rec)
					since = max(since, rec.ts)
				}
				s.changedLocked(volKey(vid))
			}
			s.mu.Unlock()
		}
		if req.IdleTimeoutSeconds > 0 && c.cfg.Clock.Now().Sub(lastActivity) >= window {
			return &volume_server_pb.VolumeTailReceiverResponse{}, nil
		}
		if err := sleepCtx(ctx, c.cfg.Clock, poll); err != nil {
			return nil, err
		}
	}
}

// ---- erasure coding ----

func (h *vsHandler) VolumeEcShardsGenerate(ctx context.Context, req *volume_server_pb.VolumeEcShardsGenerateRequest) (*volume_server_pb.VolumeEcShardsGenerateResponse, error) {
	s, c, vid := h.s, h.s.c, req.VolumeId
	s.mu.Lock()
	if err := s.checkMaintLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	r := s.vols[vid]
	if r == nil || r.unloaded {
		s.mu.Unlock()
		return nil, fmt.Errorf("volume %d not found", vid)
	}
	if r.collection != req.Collection {
		s.mu.Unlock()
		return nil, fmt.Errorf("existing collection:%v unexpected input: %v", r.collection, req.Collection)
	}
	// Step 1: unload and wipe any earlier EC generation of this volume here.
	if _, ok := s.ecs[vid]; ok {
		delete(s.ecs, vid)
		s.changedLocked(ecKey(vid))
	}
	e := &ecVol{collection: r.collection, datSize: r.size, fileCount: r.fileCount, deleteCount: r.deleteCount, idBase: r.idBase,
		files: 1<<TotalShards - 1, hasIndex: true}
	encoded := encodeSnapshot(r)
	life := s.life
	s.mu.Unlock()
	if err := sleepCtx(ctx, c.cfg.Clock, c.opDuration(c.cfg.EcGenerateDuration, e.datSize)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life != life {
		return nil, fmt.Errorf("WriteEcFiles %d: server stopped", vid)
	}
	e.encodeTsNs = c.nowNs()
	e.setGeneration(encoded, e.encodeTsNs)
	s.ecs[vid] = e
	return &volume_server_pb.VolumeEcShardsGenerateResponse{}, nil
}

func (h *vsHandler) VolumeEcShardsMount(ctx context.Context, req *volume_server_pb.VolumeEcShardsMountRequest) (*volume_server_pb.VolumeEcShardsMountResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	var err error
	for _, sh := range req.ShardIds {
		switch {
		case e == nil || sh >= 32 || e.files&(1<<sh) == 0:
			err = fmt.Errorf("mount %d.%d: MountEcShards %d.%d not found on disk", vid, sh, vid, sh)
		case !e.hasIndex:
			err = fmt.Errorf("mount %d.%d: MountEcShards %d.%d: no .ecx index found on any local disk", vid, sh, vid, sh)
		default:
			e.mounted |= 1 << sh
		}
		if err != nil {
			break
		}
	}
	if e != nil {
		s.changedLocked(ecKey(vid))
	}
	if err != nil {
		return nil, err
	}
	return &volume_server_pb.VolumeEcShardsMountResponse{}, nil
}

func (h *vsHandler) VolumeEcShardsUnmount(ctx context.Context, req *volume_server_pb.VolumeEcShardsUnmountRequest) (*volume_server_pb.VolumeEcShardsUnmountResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if e == nil || (req.EncodeTsNs != 0 && e.encodeTsNs >= req.EncodeTsNs) {
		return &volume_server_pb.VolumeEcShardsUnmountResponse{}, nil
	}
	for _, sh := range req.ShardIds {
		if sh < 32 {
			e.mounted &^= 1 << sh
		}
	}
	if e.mounted == 0 && e.files == 0 {
		delete(s.ecs, vid)
	}
	s.changedLocked(ecKey(vid))
	return &volume_server_pb.VolumeEcShardsUnmountResponse{}, nil
}

func (h *vsHandler) VolumeEcShardsDelete(ctx context.Context, req *volume_server_pb.VolumeEcShardsDeleteRequest) (*volume_server_pb.VolumeEcShardsDeleteResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if req.FullTeardown {
		if e != nil && (req.EncodeTsNs == 0 || e.encodeTsNs < req.EncodeTsNs) {
			delete(s.ecs, vid)
			s.changedLocked(ecKey(vid))
		}
		return &volume_server_pb.VolumeEcShardsDeleteResponse{FullTeardownDone: true}, nil
	}
	if e == nil {
		return &volume_server_pb.VolumeEcShardsDeleteResponse{}, nil
	}
	// Files only: a mounted shard stays mounted (SeaweedFS does not unmount).
	for _, sh := range req.ShardIds {
		if sh < 32 {
			e.files &^= 1 << sh
		}
	}
	if e.files == 0 {
		e.hasIndex, e.journal = false, nil
		if e.mounted == 0 {
			delete(s.ecs, vid)
		}
	}
	return &volume_server_pb.VolumeEcShardsDeleteResponse{}, nil
}

func (h *vsHandler) VolumeEcShardsCopy(ctx context.Context, req *volume_server_pb.VolumeEcShardsCopyRequest) (*volume_server_pb.VolumeEcShardsCopyResponse, error) {
	s, c, vid := h.s, h.s.c, req.VolumeId
	if err := s.checkMaint(); err != nil {
		return nil, err
	}
	if err := c.guard(req.SourceDataNode); err != nil {
		return nil, fmt.Errorf("invalid source data node %s: %w", req.SourceDataNode, err)
	}
	if req.DiskId > 0 {
		return nil, fmt.Errorf("invalid disk_id %d: only have %d disks", req.DiskId, 1)
	}
	base := fmt.Sprintf("%d", vid)
	if req.Collection != "" {
		base = req.Collection + "_" + base
	}
	var want uint32
	for _, sh := range req.ShardIds {
		if sh >= 32 {
			return nil, fmt.Errorf("VolumeEcShardsCopy volume %d: invalid shard id %d", vid, sh)
		}
		want |= 1 << sh
	}
	// Free shard slots as SeaweedFS's FindEcShardTargetLocation counts
	// them: from the mounted shards (ecFreeShardCount), a copy of shards
	// the server already mounts always finding room.
	s.mu.Lock()
	var have uint32
	if e := s.ecs[vid]; e != nil {
		have = e.mounted
	}
	free := (s.maxVolumes.Load()-int64(len(s.vols)))*DataShards - int64(s.mountedShardsLocked())
	life := s.life
	if !s.up || ctx.Err() != nil {
		// A handler of a stopped gRPC server that ran late: it copies
		// nothing (its connection is gone).
		s.mu.Unlock()
		return nil, fmt.Errorf("VolumeEcShardsCopy volume %d: server stopped", vid)
	}
	s.ecCopies++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.ecCopies--; s.ecCopies == 0 {
			s.ecCopiesDone.Broadcast()
		}
		s.mu.Unlock()
	}()
	if need := int64(bits.OnesCount32(want &^ have)); need > free {
		return nil, status.Error(codes.ResourceExhausted, "no space left")
	}

	src, err := c.peer(req.SourceDataNode)
	if err != nil {
		return nil, fmt.Errorf("VolumeEcShardsCopy volume %d: failed to copy %s.ec%02d file: %v", vid, base, firstShard(req.ShardIds), err)
	}
	src.mu.Lock()
	se := src.ecs[vid]
	var snap ecVol
	if se != nil {
		snap = *se
	}
	src.mu.Unlock()
	notFound := func(ext string) error {
		return fmt.Errorf("VolumeEcShardsCopy volume %d: failed to copy %s%s file: %v", vid, base, ext,
			status.Errorf(codes.Unknown, "CopyFile not found ec volume id %d", vid))
	}
	for _, sh := range req.ShardIds {
		if snap.files&(1<<sh) == 0 {
			return nil, notFound(fmt.Sprintf(".ec%02d", sh))
		}
	}
	if req.CopyEcxFile && !snap.hasIndex {
		return nil, notFound(".ecx")
	}
	// Halfway through, rules with Mid set apply (a test stops the server
	// there). A server stopped during the copy keeps what reached its disk.
	total := c.opDuration(c.cfg.EcCopyDuration, uint64(snap.shardSize())*uint64(len(req.ShardIds)))
	start := c.cfg.Clock.Now()
	err = sleepCtx(ctx, c.cfg.Clock, total/2)
	if err == nil {
		err = c.faults.apply(ctx, "VolumeEcShardsCopy", s.ident(), vid, phaseMid)
	}
	if err == nil {
		err = sleepCtx(ctx, c.cfg.Clock, total-total/2)
	}
	if err != nil {
		s.keepInterruptedEcCopy(life, vid, &snap, req.ShardIds, c.cfg.Clock.Now().Sub(start), total)
		return nil, err
	}
	if _, err := c.peer(req.SourceDataNode); err != nil {
		return nil, fmt.Errorf("VolumeEcShardsCopy volume %d: %v", vid, err)
	}
	if c.afterEcCopy != nil {
		c.afterEcCopy(s)
	}
	s.mu.Lock()
	if s.life != life {
		// Stopped after the last byte but before the answer: what the
		// copy wrote stays, as for a stop during it.
		s.mu.Unlock()
		s.keepInterruptedEcCopy(life, vid, &snap, req.ShardIds, c.cfg.Clock.Now().Sub(start), total)
		return nil, fmt.Errorf("VolumeEcShardsCopy volume %d: server stopped", vid)
	}
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if e == nil {
		e = &ecVol{}
		s.ecs[vid] = e
	}
	if req.CopyVifFile || e.encodeTsNs == 0 {
		e.collection, e.encodeTsNs, e.datSize = snap.collection, snap.encodeTsNs, snap.datSize
		e.fileCount, e.deleteCount, e.idBase = snap.fileCount, snap.deleteCount, snap.idBase
	}
	e.files |= want
	e.copyGenerations(&snap, want)
	if req.CopyEcxFile {
		e.hasIndex = true
	}
	if req.CopyEcjFile {
		e.mergeJournal(snap.journal)
	}
	return &volume_server_pb.VolumeEcShardsCopyResponse{}, nil
}

// keepInterruptedEcCopy leaves on disk what a shard copy cut short by a
// server stop had written, as SeaweedFS does: it copies the shard files one
// after the other straight to their final names (each truncated first), then
// the .ecx, .ecj and .vif. Stopped after elapsed of total, the shards copied
// by then are complete files, the one in progress a truncated file, and no
// index came: nothing is mounted when the server starts again (it mounts
// only shards with an .ecx; one without, beside no .dat, is left alone). A
// copy that failed for another reason (no stop) is left as before: nothing.
func (s *VolumeServer) keepInterruptedEcCopy(life uint64, vid uint32, snap *ecVol, ids []uint32, elapsed, total time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life == life || len(ids) == 0 {
		return
	}
	done := len(ids)
	if total > 0 && elapsed < total {
		done = int(float64(len(ids)) * float64(elapsed) / float64(total))
	}
	e := s.ecs[vid]
	if e == nil {
		e = &ecVol{collection: snap.collection}
		s.ecs[vid] = e
	}
	for i, sh := range ids {
		if i > done || sh >= TotalShards {
			break
		}
		e.files |= 1 << sh
		e.mounted &^= 1 << sh // the file was truncated under the mount
		e.gens[sh] = snap.gens[sh]
		if i == done {
			e.gens[sh].partial = true
		}
	}
}

func firstShard(ids []uint32) uint32 {
	if len(ids) == 0 {
		return 0
	}
	return ids[0]
}

func (h *vsHandler) VolumeEcShardsInfo(ctx context.Context, req *volume_server_pb.VolumeEcShardsInfoRequest) (*volume_server_pb.VolumeEcShardsInfoResponse, error) {
	s, vid := h.s, req.VolumeId
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if e == nil || e.mounted == 0 {
		return nil, fmt.Errorf("VolumeEcShardsInfo: EC volume %d not found", vid)
	}
	resp := &volume_server_pb.VolumeEcShardsInfoResponse{
		VolumeSize: e.datSize, FileCount: e.fileCount - min(e.fileCount, e.deleteCount), FileDeletedCount: e.deleteCount,
		// As SeaweedFS's VolumeEcShardsInfo: the config carries the
		// layout only, not the encode run (EncodeTsNs is in the .vif).
		EcShardConfig: &volume_server_pb.EcShardConfig{DataShards: DataShards, ParityShards: ParityShards},
	}
	for _, sh := range shardList(e.mounted) {
		resp.EcShardInfos = append(resp.EcShardInfos, &volume_server_pb.EcShardInfo{ShardId: sh, Size: e.fileSize(sh), Collection: e.collection, VolumeId: vid})
	}
	return resp, nil
}

// ---- CopyFile ----

const (
	copyChunk     = 2 << 20 // SeaweedFS's BufferSizeLimit
	needleSize    = 1024    // size recorded for each simulated needle
	tombstoneSize = 0xFFFFFFFF
)

func checkVolumeFileExtension(ext string) error {
	if len(ext) < 2 || ext[0] != '.' {
		return fmt.Errorf("invalid file extension %q", ext)
	}
	for _, r := range ext[1:] {
		if r < '0' || (r > '9' && r < 'A') || (r > 'Z' && r < 'a') || r > 'z' {
			return fmt.Errorf("invalid file extension %q", ext)
		}
	}
	return nil
}

func volumeBase(collection string, vid uint32) string {
	if collection == "" {
		return strconv.FormatUint(uint64(vid), 10)
	}
	return collection + "_" + strconv.FormatUint(uint64(vid), 10)
}

// simFile describes a file CopyFile serves: its size and, for index files,
// generated entries (needles 1..files put, the first dels deleted).
type simFile struct {
	size       uint64
	index      bool // an .idx/.cpx (puts then tombstones) or an .ecx (sorted, tombstoned in place)
	sortedIdx  bool
	base       uint64 // needle ids start after base
	files      uint64
	dels       uint64
	overwrites uint64   // puts of the newest live id after the tombstones
	journal    []uint64 // an .ecj's needle ids
	modifiedNs int64
	content    []byte // served as is when set (an EC .vif)
}

func (f simFile) chunk(off, n uint64) []byte {
	if f.content != nil {
		return slices.Clone(f.content[off : off+n])
	}
	if f.journal != nil {
		buf := make([]byte, 0, len(f.journal)*8)
		for _, id := range f.journal {
			buf = binary.BigEndian.AppendUint64(buf, id)
		}
		return buf[off : off+n]
	}
	buf := make([]byte, n)
	if !f.index {
		return buf
	}
	for i := uint64(0); i < n; {
		k := (off + i) / idxEntrySize
		var entry [idxEntrySize]byte
		id, size := f.base+k+1, uint32(needleSize)
		switch {
		case f.sortedIdx && k < f.dels:
			size = tombstoneSize
		case !f.sortedIdx && k >= f.files+f.dels:
			id = f.base + f.files // an overwrite of the newest live needle
		case !f.sortedIdx && k >= f.files:
			id, size = f.base+k-f.files+1, tombstoneSize
		}
		binary.BigEndian.PutUint64(entry[0:8], id)
		binary.BigEndian.PutUint32(entry[8:12], uint32(k+1)) // offset in 8-byte units
		binary.BigEndian.PutUint32(entry[12:16], size)
		i += uint64(copy(buf[i:], entry[(off+i)%idxEntrySize:]))
	}
	return buf
}

// CopyFile serves a volume's or EC volume's files as SeaweedFS does: the
// existence and size of .dat/.idx/.vif/.cpd/.cpx and .ecNN/.ecx/.ecj/.vif
// follow the simulated state; index files carry generated entries, data
// files zeros.
func (h *vsHandler) CopyFile(req *volume_server_pb.CopyFileRequest, stream volume_server_pb.VolumeServer_CopyFileServer) error {
	if err := checkVolumeFileExtension(req.Ext); err != nil {
		return err
	}
	if req.Collection == "." || req.Collection == ".." || strings.ContainsAny(req.Collection, `/\`) {
		return fmt.Errorf("invalid collection %q", req.Collection)
	}
	s, vid := h.s, req.VolumeId
	var f simFile
	exists := false
	path := ""
	s.mu.Lock()
	if !req.IsEcVolume {
		r := s.vols[vid]
		if r == nil {
			s.mu.Unlock()
			return fmt.Errorf("not found volume id %d", vid)
		}
		if req.CompactionRevision != math.MaxUint32 && req.CompactionRevision != r.revision {
			s.mu.Unlock()
			return fmt.Errorf("volume %d is compacted", vid)
		}
		path = "/sim/" + s.id + "/" + volumeBase(r.collection, vid) + req.Ext
		f.modifiedNs = r.modifiedAt * int64(time.Second)
		switch req.Ext {
		case ".dat":
			exists, f.size = true, r.size
		case ".idx":
			exists, f.index, f.base, f.files, f.dels, f.overwrites = true, true, r.idBase, r.fileCount, r.deleteCount, r.overwrites
			f.size = r.idxEntries() * idxEntrySize
		case ".vif":
			exists, f.size = true, 64
		case ".cpd":
			exists, f.size = r.cpd != cpdNone, r.size-min(r.cpdDelBytes, r.size-superBlockSize)
		case ".cpx":
			dropped := min(r.fileCount, r.deleteCount, r.cpdDels)
			live := r.fileCount - dropped
			exists, f.index, f.base, f.files = r.cpd != cpdNone, true, r.idBase+dropped, live
			f.size = live * idxEntrySize
		}
	} else {
		e := s.ecs[vid]
		if e != nil {
			f.modifiedNs = e.encodeTsNs
			switch {
			case strings.HasPrefix(req.Ext, ".ec") && len(req.Ext) == 5 && req.Ext[3] >= '0' && req.Ext[3] <= '9':
				sh, _ := strconv.Atoi(req.Ext[3:])
				exists, f.size = sh < 32 && e.files&(1<<sh) != 0, uint64(e.fileSize(uint32(sh)))
			case req.Ext == ".ecx":
				exists, f.index, f.sortedIdx, f.base, f.files, f.dels = e.hasIndex, true, true, e.idBase, e.fileCount, e.deleteCount
				f.size = e.fileCount * idxEntrySize
			case req.Ext == ".ecj":
				f.journal = make([]uint64, 0, len(e.journal))
				for _, j := range e.journal {
					f.journal = append(f.journal, j.needle)
				}
				exists, f.size = e.hasIndex, uint64(len(e.journal))*8
			case req.Ext == ".vif":
				// SeaweedFS writes the EC .vif as protojson with the
				// encode run in ecShardConfig.encodeTsNs.
				f.content, _ = protojson.Marshal(&volume_server_pb.VolumeInfo{Version: 3,
					EcShardConfig: &volume_server_pb.EcShardConfig{DataShards: DataShards, ParityShards: ParityShards, EncodeTsNs: e.encodeTsNs}})
				exists, f.size = true, uint64(len(f.content))
			}
		}
		if !exists {
			s.mu.Unlock()
			if req.IgnoreSourceFileNotFound {
				return nil
			}
			return fmt.Errorf("CopyFile not found ec volume id %d", vid)
		}
	}
	s.mu.Unlock()
	if !exists {
		if req.IgnoreSourceFileNotFound || req.StopOffset == 0 {
			return nil
		}
		return fmt.Errorf("open %s: no such file or directory", path)
	}
	toSend := min(req.StopOffset, f.size)
	modTs := f.modifiedNs
	for off := uint64(0); off < toSend; {
		n := min(toSend-off, copyChunk)
		if err := stream.Send(&volume_server_pb.CopyFileResponse{FileContent: f.chunk(off, n), ModifiedTsNs: modTs}); err != nil {
			return err
		}
		modTs = 0
		off += n
	}
	if modTs != 0 {
		return stream.Send(&volume_server_pb.CopyFileResponse{ModifiedTsNs: modTs})
	}
	return nil
}
