package sim

import (
	"fmt"
	"math/bits"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// VolumeServer is one simulated volume server.
type VolumeServer struct {
	c        *Cluster
	idx      int
	id       string // host:httpPort, also DataNodeInfo.id and .address
	host     string
	httpPort int
	grpcPort int
	grpcAddr string
	dc, rack string
	diskType string
	// maxVolumes is read by the master's topology build, which holds the
	// master's lock, not this server's.
	maxVolumes atomic.Int64

	lifeMu sync.Mutex // serialises Stop/Start
	gs     *grpc.Server
	lis    net.Listener // closed by us too: Stop before Serve ran would leave it open

	mu          sync.Mutex
	up          bool
	life        uint64 // bumped on every stop: handlers drop work of an older life
	regGen      uint64 // bumped on stop and start: orders master (un)registrations
	maintenance bool
	vols        map[uint32]*replica
	ecs         map[uint32]*ecVol
	copying     map[uint32]bool
	// emptyDeleted: volumes a VolumeDelete with only_empty/only_garbage
	// deleted here (verified to hold no live file): the durability check
	// counts no data lost for a volume with such a delete whose remaining
	// replicas hold no live file either.
	emptyDeleted map[uint32]bool
	// ecCopies counts shard copies in flight (under mu): Start waits, on
	// ecCopiesDone, for those of the previous life to leave on disk what
	// they had written. Not a WaitGroup: gRPC's Stop does not wait for its
	// handlers, so a copy can begin (Add) while Start waits.
	ecCopies     int
	ecCopiesDone *sync.Cond

	pmu     sync.Mutex
	pending map[uint64]struct{}
	armed   bool
}

func newVolumeServer(c *Cluster, idx int, lis net.Listener, host, dc, rack string) *VolumeServer {
	gp := lis.Addr().(*net.TCPAddr).Port
	hp := gp - grpcPortOffset
	s := &VolumeServer{
		c: c, idx: idx, host: host, httpPort: hp, grpcPort: gp,
		id:       net.JoinHostPort(host, strconv.Itoa(hp)),
		grpcAddr: net.JoinHostPort(host, strconv.Itoa(gp)),
		dc:       dc, rack: rack, diskType: c.cfg.DiskType,
		vols: map[uint32]*replica{}, ecs: map[uint32]*ecVol{}, copying: map[uint32]bool{},
		pending: map[uint64]struct{}{},
	}
	if n := len(c.cfg.DiskTypes); n > 0 {
		s.diskType = c.cfg.DiskTypes[idx%n]
	}
	s.ecCopiesDone = sync.NewCond(&s.mu)
	s.maxVolumes.Store(c.cfg.MaxVolumesPerServer)
	s.gs = c.newGRPCServer(s.ident())
	volume_server_pb.RegisterVolumeServerServer(s.gs, &vsHandler{s: s})
	s.up = true
	s.lis = lis
	go s.gs.Serve(lis)
	return s
}

func (s *VolumeServer) ident() ident { return ident{id: s.id, grpcAddr: s.grpcAddr, volume: true} }

// Index is the server's position in Cluster.Servers.
func (s *VolumeServer) Index() int { return s.idx }

// ID is the data node id the master reports ("host:httpPort").
func (s *VolumeServer) ID() string { return s.id }

// GRPCAddress is where the server listens ("host:grpcPort").
func (s *VolumeServer) GRPCAddress() string { return s.grpcAddr }

// Address gives both address forms; Address().String() is SeaweedFS's
// "host:httpPort.grpcPort".
func (s *VolumeServer) Address() seaweed.Address {
	return seaweed.Address{HTTP: s.id, GRPC: s.grpcAddr}
}

// DataCenter and Rack place the server in the topology.
func (s *VolumeServer) DataCenter() string { return s.dc }
func (s *VolumeServer) Rack() string       { return s.rack }

// Up reports whether the server is serving.
func (s *VolumeServer) Up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// SetMaxVolumes changes the server's volume slot count, as restarting it
// with another -max (or a disk filling up) would; the master sees the new
// free slots with the next heartbeat.
func (s *VolumeServer) SetMaxVolumes(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxVolumes.Store(n)
	s.c.master.touchLocked(s)
}

// SetMaintenance puts the server in (or out of) maintenance mode: the RPCs
// SeaweedFS gates on it fail with "volume server … is in maintenance mode".
func (s *VolumeServer) SetMaintenance(on bool) {
	s.mu.Lock()
	s.maintenance = on
	s.mu.Unlock()
}

// Stop takes the server down: its gRPC server stops (in-flight calls fail)
// and the master drops it after the heartbeat delay. Its volumes stay on
// "disk".
func (s *VolumeServer) Stop() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	if !s.up {
		s.mu.Unlock()
		return
	}
	s.up = false
	s.life++
	s.regGen++
	gen := s.regGen
	gs := s.gs
	s.gs = nil
	s.mu.Unlock()
	gs.Stop()
	s.lis.Close()
	s.c.master.scheduleUnregister(s, gen)
}

// Start brings a stopped server back on the same port, as a restarted
// process: non-persisted read-only marks are gone, unfinished compactions
// are rolled back, unloaded volumes load again and every EC shard file with
// an index is mounted. The master learns of it after the heartbeat delay.
func (s *VolumeServer) Start() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.c.closed.Load() {
		return fmt.Errorf("sim: cluster closed")
	}
	s.mu.Lock()
	up := s.up
	for !up && s.ecCopies > 0 {
		s.ecCopiesDone.Wait()
	}
	s.mu.Unlock()
	if up {
		return nil
	}
	lis, err := net.Listen("tcp", s.grpcAddr)
	if err != nil {
		return fmt.Errorf("sim: restart %s: %w", s.id, err)
	}
	gs := s.c.newGRPCServer(s.ident())
	volume_server_pb.RegisterVolumeServerServer(gs, &vsHandler{s: s})
	s.mu.Lock()
	for _, r := range s.vols {
		r.roMark, r.canDeleteMark = r.persistRO, r.persistCanDelete
		r.compacting, r.cpd, r.unloaded = false, cpdNone, false
	}
	for vid, e := range s.ecs {
		// SeaweedFS's checkOrphanedShards: shard files without an .ecx
		// beside the volume's .dat are an encode cut short, and deleted.
		if e.files == 0 || (!e.hasIndex && s.vols[vid] != nil) {
			delete(s.ecs, vid)
			continue
		}
		e.mounted = 0
		if e.hasIndex {
			e.mounted = e.files
		}
	}
	s.copying = map[uint32]bool{}
	s.up = true
	s.regGen++
	gen := s.regGen
	s.gs = gs
	s.lis = lis
	s.mu.Unlock()
	go gs.Serve(lis)
	s.c.master.scheduleRegister(s, gen)
	return nil
}

// Lose takes the server down for good, as a machine whose disks are gone:
// it stops (the master drops it after the heartbeat delay) and every
// volume and EC shard it held is lost. The durability check no longer
// counts them: the volumes they were copies of are at reduced redundancy
// until a repair copies them elsewhere. Start brings it back empty, as a
// replacement machine at the same address.
func (s *VolumeServer) Lose() {
	s.Stop()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	for s.ecCopies > 0 {
		s.ecCopiesDone.Wait()
	}
	s.vols = map[uint32]*replica{}
	s.ecs = map[uint32]*ecVol{}
	s.copying = map[uint32]bool{}
	s.mu.Unlock()
}

// Restart is Stop then Start.
func (s *VolumeServer) Restart() error {
	s.Stop()
	return s.Start()
}

func (s *VolumeServer) shutdown() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	s.up = false
	s.life++
	s.regGen++
	gs := s.gs
	s.gs = nil
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
		s.lis.Close()
	}
}

// freeSlotsLocked is the server's own count of free volume slots: max −
// volumes − ceil(mounted EC shards / 10). As SeaweedFS's EcShardCount it
// counts the shards loaded, not the files: unmounted shard files (an
// interrupted copy's, or ones never mounted) take no slot.
func (s *VolumeServer) freeSlotsLocked() int64 {
	return s.maxVolumes.Load() - int64(len(s.vols)) - int64((s.mountedShardsLocked()+DataShards-1)/DataShards)
}

// mountedShardsLocked counts the EC shards the server has mounted.
func (s *VolumeServer) mountedShardsLocked() int {
	shards := 0
	for _, e := range s.ecs {
		shards += bits.OnesCount32(e.mounted)
	}
	return shards
}

func (s *VolumeServer) addReplicas(reps []*replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reps {
		s.vols[r.id] = r
		s.changedLocked(volKey(r.id))
	}
}

// ---- inspection ----

// VolumeState is a snapshot of one replica.
type VolumeState struct {
	ID                uint32
	Collection        string
	Size              uint64
	FileCount         uint64
	DeleteCount       uint64
	DeletedBytes      uint64
	ReadOnly          bool // any read-only mark (what VolumeStatus reports)
	ReadOnlyPersist   bool // the mark is in the .vif and survives a restart
	ReadOnlyCanDelete bool
	ReplicaPlacement  uint32
	ModifiedAt        int64
	CompactRevision   uint32
	LastAppendAtNs    uint64
	Compacting        bool
	Compacted         bool // a finished compaction awaits commit (.cpd/.cpx present)
	Unloaded          bool // a failed commit unloaded it until the server restarts
}

// Volume returns this server's replica of vid.
func (s *VolumeServer) Volume(vid uint32) (VolumeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	if r == nil {
		return VolumeState{}, false
	}
	return r.state(), true
}

// Volumes lists this server's replicas by id.
func (s *VolumeServer) Volumes() []VolumeState {
	s.mu.Lock()
	out := make([]VolumeState, 0, len(s.vols))
	for _, r := range s.vols {
		out = append(out, r.state())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// EcState is a snapshot of one server's EC shards of a volume.
type EcState struct {
	ID         uint32
	Collection string
	EncodeTsNs int64
	Files      []uint32 // shard files on disk
	Mounted    []uint32 // shards mounted (served and reported to the master)
	HasIndex   bool     // .ecx present
	ShardSize  int64
}

// EcShards returns this server's EC state for vid.
func (s *VolumeServer) EcShards(vid uint32) (EcState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if e == nil {
		return EcState{}, false
	}
	return EcState{ID: vid, Collection: e.collection, EncodeTsNs: e.encodeTsNs, Files: shardList(e.files),
		Mounted: shardList(e.mounted), HasIndex: e.hasIndex, ShardSize: e.shardSize()}, true
}

// EcVolumes lists this server's EC state of every volume it holds shards
// of, by volume id.
func (s *VolumeServer) EcVolumes() []EcState {
	s.mu.Lock()
	out := make([]EcState, 0, len(s.ecs))
	for vid, e := range s.ecs {
		out = append(out, EcState{ID: vid, Collection: e.collection, EncodeTsNs: e.encodeTsNs, Files: shardList(e.files),
			Mounted: shardList(e.mounted), HasIndex: e.hasIndex, ShardSize: e.shardSize()})
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func shardList(b uint32) []uint32 {
	var out []uint32
	for i := uint32(0); b != 0; i, b = i+1, b>>1 {
		if b&1 == 1 {
			out = append(out, i)
		}
	}
	return out
}

// ---- replicas ----

type cpdState int

const (
	cpdNone     cpdState = iota
	cpdPartial           // an interrupted compaction left temp files
	cpdComplete          // a finished compaction awaits commit
)

type appendRec struct {
	ts                           int64
	bytes, files, delBytes, dels uint64
	overwrites                   uint64 // same-size overwrites of live needles
}

type replica struct {
	id           uint32
	collection   string
	size         uint64
	fileCount    uint64
	deleteCount  uint64
	deletedBytes uint64
	rp           uint32
	modifiedAt   int64
	revision     uint32
	lastAppendNs uint64
	// idBase is how many needle ids compactions dropped: the .idx holds
	// puts of ids idBase+1..idBase+fileCount and tombstones of the oldest
	// deleteCount of them, so that replicas holding the same needles list the
	// same live ids whatever their compaction history.
	idBase uint64
	// overwrites is how many same-size overwrites the .idx holds since the
	// last compaction: each a put of the newest live id, after the
	// tombstones (compaction keeps only the last entry of an id).
	overwrites uint64

	roMark, canDeleteMark       bool // in memory
	persistRO, persistCanDelete bool // in the .vif

	compacting           bool
	cpd                  cpdState
	cpdDelBytes, cpdDels uint64 // garbage the finished compaction removes
	unloaded             bool

	remoteName, remoteKey string // cloud tier (VolumeSpec.RemoteStorageName/Key)

	appends []appendRec        // writes made through Cluster.Write/DeleteData
	applied map[int64]struct{} // append ids present here
}

func newReplica(spec VolumeSpec) *replica {
	size := max(spec.Size, superBlockSize)
	return &replica{
		id: spec.ID, collection: spec.Collection, size: size, fileCount: spec.FileCount,
		deleteCount: spec.DeleteCount, deletedBytes: min(spec.DeletedBytes, size-superBlockSize),
		rp: spec.ReplicaPlacement, modifiedAt: spec.ModifiedAt, lastAppendNs: uint64(spec.ModifiedAt) * uint64(time.Second),
		roMark: spec.ReadOnly, persistRO: spec.ReadOnly,
		remoteName: spec.RemoteStorageName, remoteKey: spec.RemoteStorageKey,
	}
}

func (r *replica) noWrite() bool { return r.roMark || r.canDeleteMark }

func (r *replica) garbageRatio() float64 {
	if r.unloaded || r.size <= superBlockSize {
		return 0
	}
	return float64(r.deletedBytes) / float64(r.size-superBlockSize)
}

func (r *replica) apply(rec appendRec) {
	if _, dup := r.applied[rec.ts]; dup {
		return
	}
	if r.applied == nil {
		r.applied = map[int64]struct{}{}
	}
	r.applied[rec.ts] = struct{}{}
	r.appends = append(r.appends, rec)
	r.size += rec.bytes
	r.fileCount += rec.files
	r.deletedBytes = min(r.deletedBytes+rec.delBytes, r.size-superBlockSize)
	r.deleteCount += rec.dels
	r.overwrites += rec.overwrites
	r.modifiedAt = rec.ts / int64(time.Second)
	r.lastAppendNs = uint64(rec.ts)
}

func (r *replica) clone() *replica {
	n := *r
	n.appends = append([]appendRec(nil), r.appends...)
	n.applied = make(map[int64]struct{}, len(r.applied))
	for k := range r.applied {
		n.applied[k] = struct{}{}
	}
	return &n
}

func (r *replica) state() VolumeState {
	return VolumeState{
		ID: r.id, Collection: r.collection, Size: r.size, FileCount: r.fileCount, DeleteCount: r.deleteCount,
		DeletedBytes: r.deletedBytes, ReadOnly: r.noWrite(), ReadOnlyPersist: r.persistRO,
		ReadOnlyCanDelete: r.canDeleteMark && !r.roMark, ReplicaPlacement: r.rp, ModifiedAt: r.modifiedAt,
		CompactRevision: r.revision, LastAppendAtNs: r.lastAppendNs, Compacting: r.compacting,
		Compacted: r.cpd == cpdComplete, Unloaded: r.unloaded,
	}
}

func (s *VolumeServer) volumeMessage(r *replica) *master_pb.VolumeInformationMessage {
	return &master_pb.VolumeInformationMessage{
		Id: r.id, Size: r.size, Collection: r.collection, FileCount: r.fileCount, DeleteCount: r.deleteCount,
		DeletedByteCount: r.deletedBytes, ReadOnly: r.noWrite(), ReadOnlyCanDelete: r.canDeleteMark && !r.roMark,
		ReplicaPlacement: r.rp, Version: volumeVersion, CompactRevision: r.revision, ModifiedAtSecond: r.modifiedAt,
		DiskType: s.diskType, RemoteStorageName: r.remoteName, RemoteStorageKey: r.remoteKey,
	}
}

// ---- EC ----

type ecVol struct {
	collection  string
	encodeTsNs  int64
	idBase      uint64 // .ecx needle ids start after it, as the encoded replica's .idx did
	datSize     uint64
	fileCount   uint64
	deleteCount uint64
	files       uint32 // shard files present
	mounted     uint32 // shards mounted
	hasIndex    bool
	gens        [TotalShards]ecGen // each shard file's generation (content.go)
	// journal is the .ecj beside the .ecx: the EC deletes this server
	// took (clientwrites.go), kept while the index is.
	journal []ecJournalEntry
}

func (e *ecVol) shardSize() int64 {
	return int64((e.datSize + DataShards - 1) / DataShards)
}

// fileSize is the size of shard sh's file: the shard's size, or half of
// it for a truncated file (a copy cut short by a crash), which SeaweedFS
// mounts and reports at the size it has on disk.
func (e *ecVol) fileSize(sh uint32) int64 {
	if sh < TotalShards && e.gens[sh].partial {
		return e.shardSize() / 2
	}
	return e.shardSize()
}

func (s *VolumeServer) ecMessage(vid uint32, e *ecVol) *master_pb.VolumeEcShardInformationMessage {
	sizes := make([]int64, 0, bits.OnesCount32(e.mounted))
	for _, sh := range shardList(e.mounted) {
		sizes = append(sizes, e.fileSize(sh))
	}
	return &master_pb.VolumeEcShardInformationMessage{
		Id: vid, Collection: e.collection, EcIndexBits: e.mounted, DiskType: s.diskType, ShardSizes: sizes,
		FileCount: e.fileCount, DeleteCount: e.deleteCount, EncodeTsNs: e.encodeTsNs,
	}
}

// ---- heartbeats ----

const ecFlag = 1 << 32

func volKey(vid uint32) uint64 { return uint64(vid) }
func ecKey(vid uint32) uint64  { return uint64(vid) | ecFlag }

// changedLocked tells the master about a change (s.mu held): at once with no
// heartbeat delay, otherwise with the next heartbeat.
func (s *VolumeServer) changedLocked(keys ...uint64) {
	if s.c.cfg.HeartbeatDelay <= 0 {
		s.c.master.updateLocked(s, keys)
		return
	}
	s.pmu.Lock()
	for _, k := range keys {
		s.pending[k] = struct{}{}
	}
	if !s.armed {
		s.armed = true
		time.AfterFunc(s.c.cfg.HeartbeatDelay, s.flush)
	}
	s.pmu.Unlock()
}

// flush sends the pending changes to the master.
func (s *VolumeServer) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmu.Lock()
	p := s.pending
	s.pending = map[uint64]struct{}{}
	s.armed = false
	s.pmu.Unlock()
	if len(p) == 0 {
		return
	}
	keys := make([]uint64, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	s.c.master.updateLocked(s, keys)
}

// idxEntries is the number of entries in the replica's .idx: a put per
// file, a tombstone per delete, a put per same-size overwrite.
func (r *replica) idxEntries() uint64 { return r.fileCount + r.deleteCount + r.overwrites }
