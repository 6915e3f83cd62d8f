package seaweed

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// EC layout of SeaweedFS (weed/storage/erasure_coding): 10 data + 4 parity
// shards; shard ids go up to 31 in the bitmask.
const (
	EcDataShards   = 10
	EcParityShards = 4
	EcTotalShards  = EcDataShards + EcParityShards
	EcMaxShards    = 32
)

// AllEcShards returns the shard ids 0..EcTotalShards-1.
func AllEcShards() []uint32 { return shardRange(EcTotalShards) }

// EveryEcShardID returns 0..EcMaxShards-1, for sweeps that must catch any
// layout.
func EveryEcShardID() []uint32 { return shardRange(EcMaxShards) }

func shardRange(n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return ids
}

// VolumeClient calls volume servers. It keeps one gRPC connection per
// volume-server gRPC address. Servers are named in either SeaweedFS form,
// "host:port" or "host:port.grpcPort". It is safe for concurrent use.
type VolumeClient struct {
	opts   []grpc.DialOption // after the defaults (Security.DialOptions)
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
	// entrySizes: server -> its .idx entry size (IdxEntrySizeOf).
	entrySizes sync.Map
}

// NewVolumeClient returns an empty connection cache. Its connections are
// plaintext unless opts say otherwise (Security.DialOptions).
func NewVolumeClient(opts ...grpc.DialOption) *VolumeClient {
	return &VolumeClient{conns: map[string]*grpc.ClientConn{}, opts: opts}
}

// Close closes every cached connection. Later calls fail.
func (c *VolumeClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for addr, conn := range c.conns {
		if err := conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", addr, err))
		}
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

func (c *VolumeClient) client(server string) (volume_server_pb.VolumeServerClient, error) {
	a, err := ParseAddress(server)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("volume client is closed")
	}
	conn := c.conns[a.GRPC]
	if conn == nil {
		conn, err = grpc.NewClient(a.GRPC, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithChainUnaryInterceptor(guardUnary), grpc.WithChainStreamInterceptor(guardStream)}, c.opts...)...)
		if err != nil {
			return nil, fmt.Errorf("dial volume server %s: %w", a.GRPC, err)
		}
		c.conns[a.GRPC] = conn
	}
	return volume_server_pb.NewVolumeServerClient(conn), nil
}

// unary makes one call on server's client; a failure of the call itself is
// wrapped as "<what> on <server>", what being format with args.
func unary[Req, Resp any](ctx context.Context, c *VolumeClient, server string,
	rpc func(volume_server_pb.VolumeServerClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	req Req, format string, args ...any) (Resp, error) {
	cl, err := c.client(server)
	if err != nil {
		var zero Resp
		return zero, err
	}
	resp, err := rpc(cl, ctx, req)
	if err != nil {
		return resp, fmt.Errorf("%s on %s: %w", fmt.Sprintf(format, args...), server, err)
	}
	return resp, nil
}

// pullClient is target's client and source in the form target is told to
// pull from.
func (c *VolumeClient) pullClient(target, source string) (volume_server_pb.VolumeServerClient, string, error) {
	cl, err := c.client(target)
	if err != nil {
		return nil, "", err
	}
	src, err := SourceForm(source)
	if err != nil {
		return nil, "", err
	}
	return cl, src, nil
}

// SourceForm gives the "host:port.grpcPort" form a volume server expects as
// the peer it should pull from (source_data_node, source_volume_server).
func SourceForm(server string) (string, error) {
	a, err := ParseAddress(server)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// ---------------------------------------------------------------------------
// Error classification.

// notFoundMessage matches the plain-text "volume missing" answers of the
// RPCs that do not use codes.NotFound (see docs/seaweedfs-rpcs.md §4). It is
// anchored so that a master error quoted inside another message, or
// "volume N data backend not found" (an unloaded volume), does not match.
var notFoundMessage = regexp.MustCompile(`^(not found volume id \d+|volume \d+ not found|volume not found \d+|receiver not found volume id \d+|EC volume \d+ not found|VolumeEcShardsInfo: EC volume \d+ not found)$`)

func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus(), true
	}
	return nil, false
}

// IsNotFound reports whether a volume server answered that it does not have
// the volume (or EC volume) at all.
func IsNotFound(err error) bool {
	st, ok := grpcStatus(err)
	if !ok {
		return false
	}
	if st.Code() == codes.NotFound {
		return true
	}
	return st.Code() == codes.Unknown && notFoundMessage.MatchString(st.Message())
}

// IsUnreachable reports whether the call failed because the server could not
// be reached (nothing was delivered).
func IsUnreachable(err error) bool {
	st, ok := grpcStatus(err)
	return ok && st.Code() == codes.Unavailable && !strings.Contains(st.Message(), "being copied")
}

// IsBeingCopied reports the "volume N is already being copied" refusal of
// VolumeCopy and VolumeDelete while a copy of that volume is in flight.
func IsBeingCopied(err error) bool {
	st, ok := grpcStatus(err)
	return ok && strings.Contains(st.Message(), "being copied")
}

// ---------------------------------------------------------------------------
// Vacuum.

// VacuumVolumeCheck returns the volume's garbage ratio as the server computes
// it from its needle map.
func (c *VolumeClient) VacuumVolumeCheck(ctx context.Context, server string, vid uint32) (*volume_server_pb.VacuumVolumeCheckResponse, error) {
	return unary(ctx, c, server, volume_server_pb.VolumeServerClient.VacuumVolumeCheck, &volume_server_pb.VacuumVolumeCheckRequest{VolumeId: vid},
		"vacuum check volume %d", vid)
}

// VacuumVolumeCompact runs a compaction and drains its stream; progress (may
// be nil) receives processed bytes, which the server only sends every
// 128 MiB. A nil return means the stream ended with EOF.
func (c *VolumeClient) VacuumVolumeCompact(ctx context.Context, server string, vid uint32, progress func(processedBytes int64)) error {
	cl, err := c.client(server)
	if err != nil {
		return err
	}
	stream, err := cl.VacuumVolumeCompact(ctx, &volume_server_pb.VacuumVolumeCompactRequest{VolumeId: vid})
	if err != nil {
		return fmt.Errorf("vacuum compact volume %d on %s: %w", vid, server, err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("vacuum compact volume %d on %s: %w", vid, server, err)
		}
		if progress != nil {
			progress(msg.GetProcessedBytes())
		}
	}
}

// VacuumVolumeCommit swaps in the compacted files. Not retry-safe.
func (c *VolumeClient) VacuumVolumeCommit(ctx context.Context, server string, vid uint32) (*volume_server_pb.VacuumVolumeCommitResponse, error) {
	return unary(ctx, c, server, volume_server_pb.VolumeServerClient.VacuumVolumeCommit, &volume_server_pb.VacuumVolumeCommitRequest{VolumeId: vid},
		"vacuum commit volume %d", vid)
}

// VacuumVolumeCleanup removes a compaction's temporary files.
func (c *VolumeClient) VacuumVolumeCleanup(ctx context.Context, server string, vid uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VacuumVolumeCleanup, &volume_server_pb.VacuumVolumeCleanupRequest{VolumeId: vid},
		"vacuum cleanup volume %d", vid)
	return err
}

// HasVolumeFile reports whether the volume's file with extension ext (".cpd",
// ".cpx", ...) exists on the server, by asking CopyFile for its first byte.
func (c *VolumeClient) HasVolumeFile(ctx context.Context, server string, vid uint32, collection, ext string) (bool, error) {
	cl, err := c.client(server)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.CopyFile(ctx, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ext, Collection: collection,
		CompactionRevision: math.MaxUint32, StopOffset: 1,
	})
	if err == nil {
		for {
			if _, err = stream.Recv(); err != nil {
				break
			}
		}
		if err == io.EOF {
			return true, nil
		}
	}
	if st, ok := grpcStatus(err); ok && strings.Contains(st.Message(), "no such file or directory") {
		return false, nil
	}
	return false, fmt.Errorf("probe %s of volume %d on %s: %w", ext, vid, server, err)
}

// ---------------------------------------------------------------------------
// Volume state.

// VolumeMarkReadonly marks the volume read-only. The volume server first
// tells the master, so this fails while the master is unreachable.
func (c *VolumeClient) VolumeMarkReadonly(ctx context.Context, server string, vid uint32, persist bool) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeMarkReadonly, &volume_server_pb.VolumeMarkReadonlyRequest{VolumeId: vid, Persist: persist},
		"mark volume %d read-only", vid)
	return err
}

// VolumeMarkWritable clears the read-only marks and tells the master.
func (c *VolumeClient) VolumeMarkWritable(ctx context.Context, server string, vid uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeMarkWritable, &volume_server_pb.VolumeMarkWritableRequest{VolumeId: vid},
		"mark volume %d writable", vid)
	return err
}

// VolumeStatus returns read-only state, .dat size and counts.
func (c *VolumeClient) VolumeStatus(ctx context.Context, server string, vid uint32) (*volume_server_pb.VolumeStatusResponse, error) {
	return unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeStatus, &volume_server_pb.VolumeStatusRequest{VolumeId: vid},
		"status of volume %d", vid)
}

// ReadVolumeFileStatus returns file sizes, counts and the compaction revision.
func (c *VolumeClient) ReadVolumeFileStatus(ctx context.Context, server string, vid uint32) (*volume_server_pb.ReadVolumeFileStatusResponse, error) {
	return unary(ctx, c, server, volume_server_pb.VolumeServerClient.ReadVolumeFileStatus, &volume_server_pb.ReadVolumeFileStatusRequest{VolumeId: vid},
		"file status of volume %d", vid)
}

// VolumeDelete unmounts and deletes the volume on the server, whatever it
// holds (only_empty=false).
func (c *VolumeClient) VolumeDelete(ctx context.Context, server string, vid uint32, keepRemoteData bool) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeDelete, &volume_server_pb.VolumeDeleteRequest{VolumeId: vid, KeepRemoteData: keepRemoteData},
		"delete volume %d", vid)
	return err
}

// VolumeDeleteEmpty deletes the volume on the server only if it holds no
// live file (only_empty and only_garbage: never written, or every file
// written also deleted); the server refuses otherwise.
func (c *VolumeClient) VolumeDeleteEmpty(ctx context.Context, server string, vid uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeDelete, &volume_server_pb.VolumeDeleteRequest{VolumeId: vid, OnlyEmpty: true, OnlyGarbage: true},
		"delete empty volume %d", vid)
	return err
}

// ---------------------------------------------------------------------------
// Moving a volume.

// VolumeCopy makes target pull the volume from source and mount it, draining
// the stream; progress (may be nil) receives processed bytes. It returns the
// final message's last_append_at_ns (0 if the server sent none).
func (c *VolumeClient) VolumeCopy(ctx context.Context, target string, vid uint32, collection, source, diskType string, progress func(processedBytes int64)) (uint64, error) {
	cl, src, err := c.pullClient(target, source)
	if err != nil {
		return 0, err
	}
	stream, err := cl.VolumeCopy(ctx, &volume_server_pb.VolumeCopyRequest{
		VolumeId: vid, Collection: collection, SourceDataNode: src, DiskType: diskType,
	})
	if err != nil {
		return 0, fmt.Errorf("copy volume %d from %s to %s: %w", vid, source, target, err)
	}
	var lastAppendAtNs uint64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return lastAppendAtNs, nil
		}
		if err != nil {
			return 0, fmt.Errorf("copy volume %d from %s to %s: %w", vid, source, target, err)
		}
		if msg.GetLastAppendAtNs() != 0 {
			lastAppendAtNs = msg.GetLastAppendAtNs()
		}
		if progress != nil && msg.GetProcessedBytes() > 0 {
			progress(msg.GetProcessedBytes())
		}
	}
}

// VolumeTailReceiver makes target apply the needles source appended after
// sinceNs, returning once source was idle for about 2×idleSeconds.
func (c *VolumeClient) VolumeTailReceiver(ctx context.Context, target string, vid uint32, sinceNs uint64, idleSeconds uint32, source string) error {
	cl, src, err := c.pullClient(target, source)
	if err != nil {
		return err
	}
	if _, err := cl.VolumeTailReceiver(ctx, &volume_server_pb.VolumeTailReceiverRequest{
		VolumeId: vid, SinceNs: sinceNs, IdleTimeoutSeconds: idleSeconds, SourceVolumeServer: src,
	}); err != nil {
		return fmt.Errorf("tail volume %d from %s into %s: %w", vid, source, target, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Erasure coding.

// VolumeEcShardsGenerate writes .ecx, the 14 shards and the .vif next to the
// volume. Each call is a new encode generation.
func (c *VolumeClient) VolumeEcShardsGenerate(ctx context.Context, server string, vid uint32, collection string) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsGenerate, &volume_server_pb.VolumeEcShardsGenerateRequest{VolumeId: vid, Collection: collection},
		"generate EC shards of volume %d", vid)
	return err
}

// VolumeEcShardsMount mounts the given shards from local files.
func (c *VolumeClient) VolumeEcShardsMount(ctx context.Context, server string, vid uint32, collection string, shards []uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsMount, &volume_server_pb.VolumeEcShardsMountRequest{VolumeId: vid, Collection: collection, ShardIds: shards},
		"mount EC shards %v of volume %d", shards, vid)
	return err
}

// VolumeEcShardsUnmount unmounts the given shards (every generation); files
// stay.
func (c *VolumeClient) VolumeEcShardsUnmount(ctx context.Context, server string, vid uint32, shards []uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsUnmount, &volume_server_pb.VolumeEcShardsUnmountRequest{VolumeId: vid, ShardIds: shards},
		"unmount EC shards %v of volume %d", shards, vid)
	return err
}

// VolumeEcShardsCopy makes target pull the given shards, with .ecx, .ecj,
// .vif and .ecsum, from source's disk, onto target's disk diskID (its
// location index; 0: the server picks, the disk holding the volume's
// shards or index if any, else an hdd disk). It does not mount them.
func (c *VolumeClient) VolumeEcShardsCopy(ctx context.Context, target string, vid uint32, collection string, shards []uint32, source string, diskID uint32) error {
	cl, src, err := c.pullClient(target, source)
	if err != nil {
		return err
	}
	if _, err := cl.VolumeEcShardsCopy(ctx, &volume_server_pb.VolumeEcShardsCopyRequest{
		VolumeId: vid, Collection: collection, ShardIds: shards, SourceDataNode: src,
		CopyEcxFile: true, CopyEcjFile: true, CopyVifFile: true, CopyEcsumFile: true, DiskId: diskID,
	}); err != nil {
		return fmt.Errorf("copy EC shards %v of volume %d from %s to %s: %w", shards, vid, source, target, err)
	}
	return nil
}

// VolumeEcShardsGather makes target pull the given shards from source's
// disk for a rebuild, as `weed shell ec.rebuild` does: always the .ecj,
// and the .ecx, .vif and .ecsum only with withIndex (a target already
// holding shards of the volume keeps its own index), onto target's disk
// diskID as VolumeEcShardsCopy. It does not mount them.
func (c *VolumeClient) VolumeEcShardsGather(ctx context.Context, target string, vid uint32, collection string, shards []uint32, source string, withIndex bool, diskID uint32) error {
	cl, src, err := c.pullClient(target, source)
	if err != nil {
		return err
	}
	if _, err := cl.VolumeEcShardsCopy(ctx, &volume_server_pb.VolumeEcShardsCopyRequest{
		VolumeId: vid, Collection: collection, ShardIds: shards, SourceDataNode: src,
		CopyEcxFile: withIndex, CopyEcjFile: true, CopyVifFile: withIndex, CopyEcsumFile: withIndex, DiskId: diskID,
	}); err != nil {
		return fmt.Errorf("copy EC shards %v of volume %d from %s to %s: %w", shards, vid, source, target, err)
	}
	return nil
}

// VolumeEcShardsRebuild regenerates, on server, every shard of the volume
// whose file is missing there from the shards it holds (at least 10), and
// rebuilds its .ecx. It returns the regenerated shard ids, also when it
// fails after regenerating some (SeaweedFS reports them in the error's
// details), so that the caller knows which files it created. They are not
// mounted.
func (c *VolumeClient) VolumeEcShardsRebuild(ctx context.Context, server string, vid uint32, collection string) ([]uint32, error) {
	resp, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsRebuild, &volume_server_pb.VolumeEcShardsRebuildRequest{VolumeId: vid, Collection: collection},
		"rebuild EC shards of volume %d", vid)
	if err == nil {
		return resp.GetRebuiltShardIds(), nil
	}
	var ids []uint32
	if st, ok := grpcStatus(err); ok {
		for _, d := range st.Details() {
			if r, ok := d.(*volume_server_pb.VolumeEcShardsRebuildResponse); ok {
				ids = r.GetRebuiltShardIds()
			}
		}
	}
	return ids, err
}

// VolumeEcShardsDelete deletes the given shard files (and the index files
// once no shard is left). Unmount first.
func (c *VolumeClient) VolumeEcShardsDelete(ctx context.Context, server string, vid uint32, collection string, shards []uint32) error {
	_, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsDelete, &volume_server_pb.VolumeEcShardsDeleteRequest{VolumeId: vid, Collection: collection, ShardIds: shards},
		"delete EC shards %v of volume %d", shards, vid)
	return err
}

// VolumeEcShardsTeardown unloads the EC volume and wipes every EC artifact of
// it on every disk of the server (full_teardown, all generations). The .vif
// of a regular volume living there is kept.
func (c *VolumeClient) VolumeEcShardsTeardown(ctx context.Context, server string, vid uint32, collection string) error {
	resp, err := unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsDelete, &volume_server_pb.VolumeEcShardsDeleteRequest{VolumeId: vid, Collection: collection, FullTeardown: true},
		"tear down EC volume %d", vid)
	if err != nil {
		return err
	}
	if !resp.GetFullTeardownDone() {
		return fmt.Errorf("tear down EC volume %d on %s: the server does not support full teardown", vid, server)
	}
	return nil
}

// VolumeEcShardsInfo lists the shards of the volume mounted on the server.
func (c *VolumeClient) VolumeEcShardsInfo(ctx context.Context, server string, vid uint32) (*volume_server_pb.VolumeEcShardsInfoResponse, error) {
	return unary(ctx, c, server, volume_server_pb.VolumeServerClient.VolumeEcShardsInfo, &volume_server_pb.VolumeEcShardsInfoRequest{VolumeId: vid},
		"EC shards of volume %d", vid)
}

// MountedEcShards returns the shard ids the server has mounted for the
// volume with a positive size; an absent EC volume gives an empty set.
func (c *VolumeClient) MountedEcShards(ctx context.Context, server string, vid uint32) (map[uint32]int64, error) {
	resp, err := c.VolumeEcShardsInfo(ctx, server, vid)
	if err != nil {
		if IsNotFound(err) {
			return map[uint32]int64{}, nil
		}
		return nil, err
	}
	out := map[uint32]int64{}
	for _, s := range resp.GetEcShardInfos() {
		if s.GetSize() > 0 {
			out[s.GetShardId()] = s.GetSize()
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Needle index.

// IdxEntrySize is the size of one .idx entry of a weed built without the
// 5BytesOffset tag (the release default): needle id (8 bytes), offset in
// 8-byte units (4) and size (4), big-endian. LargeIdxEntrySize is that of a
// "large_disk" build (5BytesOffset): the offset takes 5 bytes.
const (
	IdxEntrySize      = 16
	LargeIdxEntrySize = 17
)

// IdxEntrySizeOf tells a volume server's index entry size from the version
// it reports (VolumeServerStatus): SeaweedFS's util.Version starts with its
// volume size limit, "30GB" in a default build and "8000GB" in a
// 5BytesOffset (large disk) one. Anything else is refused: reading an
// index with the wrong entry size would compare garbage.
func IdxEntrySizeOf(version string) (int, error) {
	f := strings.Fields(version)
	switch {
	case len(f) > 0 && f[0] == "30GB":
		return IdxEntrySize, nil
	case len(f) > 0 && f[0] == "8000GB":
		return LargeIdxEntrySize, nil
	}
	return 0, fmt.Errorf("cannot tell the index entry size from the volume server version %q (want one starting with 30GB or 8000GB)", version)
}

// InMaintenance reports whether the volume server says it is in
// maintenance mode (VolumeServerStatus' state), when it refuses the RPCs
// that change volumes.
func (c *VolumeClient) InMaintenance(ctx context.Context, server string) (bool, error) {
	cl, err := c.client(server)
	if err != nil {
		return false, err
	}
	st, err := cl.VolumeServerStatus(ctx, &volume_server_pb.VolumeServerStatusRequest{})
	if err != nil {
		return false, fmt.Errorf("status of volume server %s: %w", server, err)
	}
	return st.GetState().GetMaintenance(), nil
}

// idxEntrySize returns the server's index entry size, asked once per server.
func (c *VolumeClient) idxEntrySize(ctx context.Context, server string) (int, error) {
	if n, ok := c.entrySizes.Load(server); ok {
		return n.(int), nil
	}
	cl, err := c.client(server)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := cl.VolumeServerStatus(cctx, &volume_server_pb.VolumeServerStatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("status of volume server %s: %w", server, err)
	}
	n, err := IdxEntrySizeOf(st.GetVersion())
	if err != nil {
		return 0, fmt.Errorf("volume server %s: %w", server, err)
	}
	c.entrySizes.Store(server, n)
	return n, nil
}

// NeedleSet is the live content of a volume by its index: needles sorted
// by id, with their sizes. Sixteen bytes a needle, built in place from the
// index entries (a map took several times that): a 30 GB volume of 1 KB
// needles (30M) takes 480 MB, two replicas compared under 1 GB.
type NeedleSet struct {
	recs []needleRec
}

// Len is the number of live needles.
func (s NeedleSet) Len() int { return len(s.recs) }

// needleReplay collects index entries in file order and replays them: the
// last entry of an id decides (a put with a non-zero offset and a valid
// size sets it, anything else, a tombstone, deletes it).
type needleReplay struct {
	recs []needleRec
	size int // entry size: IdxEntrySize or LargeIdxEntrySize
}

type needleRec struct {
	id   uint64
	seq  uint32
	size uint32 // tombstone: math.MaxUint32
}

const deletedSize = math.MaxUint32

func (r *needleReplay) apply(e []byte) {
	id := binary.BigEndian.Uint64(e[0:8])
	offset := e[8 : r.size-4]
	size := int32(binary.BigEndian.Uint32(e[r.size-4 : r.size]))
	zero := true
	for _, b := range offset {
		zero = zero && b == 0
	}
	rec := needleRec{id: id, seq: uint32(len(r.recs)), size: uint32(size)}
	// SeaweedFS: Size.IsDeleted is size < 0 (TombstoneFileSize is -1).
	if zero || size < 0 {
		rec.size = deletedSize
	}
	r.recs = append(r.recs, rec)
}

func (r *needleReplay) del(id uint64) {
	r.recs = append(r.recs, needleRec{id: id, seq: uint32(len(r.recs)), size: deletedSize})
}

func (r *needleReplay) set() NeedleSet {
	slices.SortFunc(r.recs, func(a, b needleRec) int {
		if c := cmp.Compare(a.id, b.id); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	// Keep the last entry of each id if it is a put, in place.
	n := 0
	for i, rec := range r.recs {
		if (i+1 < len(r.recs) && r.recs[i+1].id == rec.id) || rec.size == deletedSize {
			continue
		}
		r.recs[n] = rec
		n++
	}
	out := NeedleSet{recs: r.recs[:n:n]}
	r.recs = nil
	return out
}

// LiveNeedles reads the volume's .idx from the server (CopyFile, as
// `weed shell volume.check.disk` does) and replays it. What is left is what
// the volume holds, whatever its compaction revision: vacuum drops deleted
// entries, not live ones.
func (c *VolumeClient) LiveNeedles(ctx context.Context, server string, vid uint32, collection string) (NeedleSet, error) {
	size, err := c.idxEntrySize(ctx, server)
	if err != nil {
		return NeedleSet{}, fmt.Errorf("read the index of volume %d: %w", vid, err)
	}
	r := &needleReplay{size: size}
	// Sized from the index's length up front: growing by appends would
	// keep about twice the entries' memory while replaying.
	if st, err := c.ReadVolumeFileStatus(ctx, server, vid); err == nil && st.GetIdxFileSize()/uint64(size) < math.MaxInt32 {
		r.recs = make([]needleRec, 0, st.GetIdxFileSize()/uint64(size)+1)
	}
	err = c.readEntries(ctx, server, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ".idx", Collection: collection,
		CompactionRevision: math.MaxUint32, StopOffset: math.MaxInt64,
	}, size, r.apply)
	if err != nil {
		return NeedleSet{}, fmt.Errorf("read the index of volume %d on %s: %w", vid, server, err)
	}
	return r.set(), nil
}

// EcLiveNeedles reads what an EC volume holds from the server's .ecx (the
// sorted index the encode wrote from the .idx, tombstones the .idx had
// included) and .ecj (the ids deleted since on this server: this weed
// journals an EC delete there rather than changing the .ecx, and on one
// holder only; see EcJournal): comparable with a replica's LiveNeedles.
func (c *VolumeClient) EcLiveNeedles(ctx context.Context, server string, vid uint32, collection string) (NeedleSet, error) {
	size, err := c.idxEntrySize(ctx, server)
	if err != nil {
		return NeedleSet{}, fmt.Errorf("read the EC index of volume %d: %w", vid, err)
	}
	r := &needleReplay{size: size}
	err = c.readEntries(ctx, server, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ".ecx", Collection: collection, IsEcVolume: true, StopOffset: math.MaxInt64,
	}, size, r.apply)
	if err == nil {
		err = c.readEntries(ctx, server, &volume_server_pb.CopyFileRequest{
			VolumeId: vid, Ext: ".ecj", Collection: collection, IsEcVolume: true, StopOffset: math.MaxInt64,
			IgnoreSourceFileNotFound: true,
		}, 8, func(e []byte) { r.del(binary.BigEndian.Uint64(e)) })
	}
	if err != nil {
		return NeedleSet{}, fmt.Errorf("read the EC index of volume %d on %s: %w", vid, server, err)
	}
	return r.set(), nil
}

// readEntries streams a file from the server (CopyFile) and calls apply on
// each whole entry of size bytes.
func (c *VolumeClient) readEntries(ctx context.Context, server string, req *volume_server_pb.CopyFileRequest, size int, apply func([]byte)) error {
	cl, err := c.client(server)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.CopyFile(ctx, req)
	if err != nil {
		return err
	}
	var rest []byte
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buf := append(rest, msg.GetFileContent()...)
		for len(buf) >= size {
			apply(buf[:size])
			buf = buf[size:]
		}
		rest = append(rest[:0:0], buf...)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes in %s (not a whole %d-byte entry)", len(rest), req.GetExt(), size)
	}
	return nil
}

// Diff counts the needles only s holds and only other holds (a needle of
// different sizes counts on both sides), walking both sorted sets.
func (s NeedleSet) Diff(other NeedleSet) (sOnly, otherOnly int) {
	i, j := 0, 0
	for i < len(s.recs) && j < len(other.recs) {
		switch a, b := s.recs[i], other.recs[j]; {
		case a.id < b.id:
			sOnly++
			i++
		case a.id > b.id:
			otherOnly++
			j++
		default:
			if a.size != b.size {
				sOnly++
				otherOnly++
			}
			i++
			j++
		}
	}
	return sOnly + len(s.recs) - i, otherOnly + len(other.recs) - j
}

// EcEncodeTsNs reads the encode run (EncodeTsNs, SeaweedFS's generation
// fence) of the EC volume on server from its .vif (CopyFile): the
// volume server's VolumeEcShardsInfo does not report it. 0 means the .vif
// does not say (an encode by a SeaweedFS without generations).
func (c *VolumeClient) EcEncodeTsNs(ctx context.Context, server string, vid uint32, collection string) (int64, error) {
	var buf []byte
	err := c.readEntries(ctx, server, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ".vif", Collection: collection, IsEcVolume: true, StopOffset: 1 << 20,
	}, 1, func(b []byte) { buf = append(buf, b[0]) })
	if err != nil {
		return 0, fmt.Errorf("read the .vif of EC volume %d on %s: %w", vid, server, err)
	}
	var info volume_server_pb.VolumeInfo
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(buf, &info); err != nil {
		return 0, fmt.Errorf("parse the .vif of EC volume %d on %s: %w", vid, server, err)
	}
	return info.GetEcShardConfig().GetEncodeTsNs(), nil
}

// EcJournal lists the needle ids in the EC volume's .ecj on server: the
// deletes that server took since the encode (SeaweedFS journals each EC
// delete on one holder, store_ec_delete.go).
func (c *VolumeClient) EcJournal(ctx context.Context, server string, vid uint32, collection string) ([]uint64, error) {
	var ids []uint64
	err := c.readEntries(ctx, server, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ".ecj", Collection: collection, IsEcVolume: true, StopOffset: math.MaxInt64,
		IgnoreSourceFileNotFound: true,
	}, 8, func(e []byte) { ids = append(ids, binary.BigEndian.Uint64(e)) })
	if err != nil {
		return nil, fmt.Errorf("read the EC journal of volume %d on %s: %w", vid, server, err)
	}
	return ids, nil
}

// Without drops the given needle ids from the set (a copy).
func (s NeedleSet) Without(ids []uint64) NeedleSet {
	drop := map[uint64]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	out := NeedleSet{recs: make([]needleRec, 0, len(s.recs))}
	for _, r := range s.recs {
		if !drop[r.id] {
			out.recs = append(out.recs, r)
		}
	}
	return out
}

// IndexBeyond counts the entries of server a's .idx of the volume that lie
// beyond the longest common prefix with server b's .idx, comparing entries
// by needle id and size (a tombstone as a tombstone). 0 means a's index is
// a prefix of b's: every write and delete a ever took, b has too, in the
// same order. Unlike live needle sets, raw entries show a delete (a
// tombstone) and an overwrite with data of the same size (a second put of
// a live id). Both indexes are streamed side by side (CopyFile), in constant
// memory. Meant for a copy made from b (VolumeCopy copies the .idx as is and
// VolumeTailReceiver appends b's later entries in order); replicas
// compacted apart differ whatever they hold.
func (c *VolumeClient) IndexBeyond(ctx context.Context, a, b string, vid uint32, collection string) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ra, err := c.openIndex(ctx, a, vid, collection)
	if err != nil {
		return 0, err
	}
	rb, err := c.openIndex(ctx, b, vid, collection)
	if err != nil {
		return 0, err
	}
	for {
		ea, ok, err := ra.next()
		if err != nil || !ok {
			return 0, err
		}
		eb, okb, err := rb.next()
		if err != nil {
			return 0, err
		}
		if okb && ra.key(ea) == rb.key(eb) {
			continue
		}
		n := 1
		for {
			_, ok, err := ra.next()
			if err != nil {
				return 0, err
			}
			if !ok {
				return n, nil
			}
			n++
		}
	}
}

// indexReader pulls whole entries from a CopyFile stream of an .idx.
type indexReader struct {
	server string
	stream volume_server_pb.VolumeServer_CopyFileClient
	size   int
	buf    []byte
}

func (c *VolumeClient) openIndex(ctx context.Context, server string, vid uint32, collection string) (*indexReader, error) {
	size, err := c.idxEntrySize(ctx, server)
	if err != nil {
		return nil, fmt.Errorf("read the index of volume %d: %w", vid, err)
	}
	cl, err := c.client(server)
	if err != nil {
		return nil, err
	}
	stream, err := cl.CopyFile(ctx, &volume_server_pb.CopyFileRequest{
		VolumeId: vid, Ext: ".idx", Collection: collection,
		CompactionRevision: math.MaxUint32, StopOffset: math.MaxInt64,
	})
	if err != nil {
		return nil, fmt.Errorf("read the index of volume %d on %s: %w", vid, server, err)
	}
	return &indexReader{server: server, stream: stream, size: size}, nil
}

// next returns the next entry; ok is false at the end of the file.
func (r *indexReader) next() (entry []byte, ok bool, err error) {
	for len(r.buf) < r.size {
		msg, err := r.stream.Recv()
		if err == io.EOF {
			if len(r.buf) != 0 {
				return nil, false, fmt.Errorf("%d trailing bytes in the .idx on %s (not a whole %d-byte entry)", len(r.buf), r.server, r.size)
			}
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read the index on %s: %w", r.server, err)
		}
		r.buf = append(r.buf, msg.GetFileContent()...)
	}
	entry, r.buf = r.buf[:r.size], r.buf[r.size:]
	return entry, true, nil
}

// key is what IndexBeyond compares of an entry: the needle id and its size,
// any tombstone (a negative size or a zero offset) as deletedSize.
func (r *indexReader) key(e []byte) [2]uint64 {
	id := binary.BigEndian.Uint64(e[0:8])
	size := int32(binary.BigEndian.Uint32(e[r.size-4 : r.size]))
	zero := true
	for _, b := range e[8 : r.size-4] {
		zero = zero && b == 0
	}
	if zero || size < 0 {
		return [2]uint64{id, deletedSize}
	}
	return [2]uint64{id, uint64(size)}
}
