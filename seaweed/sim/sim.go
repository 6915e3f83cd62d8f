package sim

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const (
	// TaskMetadataKey is the incoming gRPC metadata key carrying
	// "<taskID>/<fence>"; the operation log records it.
	TaskMetadataKey = "gk-task"
	// MaxMessageSize is the largest gRPC message the simulated servers send
	// or accept (SeaweedFS uses the same 1 GiB).
	MaxMessageSize = 1 << 30
	// MasterName names the master in Fault.Server and Op.Server.
	MasterName = "master"

	// DataShards, ParityShards and TotalShards are SeaweedFS's EC layout.
	DataShards   = 10
	ParityShards = 4
	TotalShards  = DataShards + ParityShards

	grpcPortOffset   = 10000
	superBlockSize   = 8
	idxEntrySize     = 16
	progressInterval = 128 << 20 // SeaweedFS reports compact/copy progress every 128 MiB
	volumeVersion    = 3
)

// DialOptions are the client options a caller needs against the simulator:
// insecure transport and a receive limit large enough for a 100k-volume
// VolumeList.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	}
}

// Config describes a simulated cluster. The zero value is usable: 4 servers
// in one rack, immediate heartbeats, instant operations.
func (c Config) version() string {
	if c.Version == "" {
		return "30GB 4.53 sim"
	}
	return c.Version
}

type Config struct {
	// Clock times the slow operations: compaction, copies, EC generation,
	// injected latency and tailing (default the real clock). Heartbeat and
	// refill delays and admin-lock expiry use the real clock regardless.
	Clock Clock
	// Servers is the number of volume servers (default 4).
	Servers int
	// Version is what VolumeServerStatus reports (default "30GB 4.53 sim",
	// a default build: 16-byte index entries).
	Version string
	// DataCenters and RacksPerDataCenter spread the servers round-robin over
	// racks (defaults 1 and 1, named DefaultDataCenter/DefaultRack; with more,
	// "dc1".., "rack1"..).
	DataCenters        int
	RacksPerDataCenter int
	// MaxVolumesPerServer is each server's volume slot count (default 100).
	MaxVolumesPerServer int64
	// DiskType of every server's disk; "" is hdd (SeaweedFS's default).
	DiskType string
	// DiskTypes, if set, gives server i the disk type DiskTypes[i mod
	// len] instead of DiskType (each server still has one disk); a copy
	// asking for no disk type wants its source's, as in SeaweedFS.
	DiskTypes []string
	// VolumeSizeLimitMB is the master's -volumeSizeLimitMB (default 30000).
	VolumeSizeLimitMB uint64

	// Host to listen on (default 127.0.0.1).
	Host string
	// DistinctHosts puts volume server i on its own loopback address
	// 127.0.0.(100+i) instead of Host, so replica placement sees one machine
	// per server (SeaweedFS's balance never puts two copies of a volume on
	// one machine). Linux only (the whole of 127.0.0.0/8 answers there);
	// at most 150 servers.
	DistinctHosts bool
	// BaseHTTPPort, if set, gives server i the HTTP port BaseHTTPPort+i and
	// the gRPC port BaseHTTPPort+i+10000. 0 picks free ports (HTTP = gRPC − 10000).
	BaseHTTPPort int
	// MasterHTTPPort, if set, makes master i listen for gRPC on
	// MasterHTTPPort+i+10000. 0 picks free ports.
	MasterHTTPPort int
	// Masters is how many master endpoints serve (default 1). They share
	// one cluster state; one is the raft leader, the others are followers
	// that name the leader in GetMasterConfiguration and refuse the
	// leader-only calls with "raft.Server: Not current leader".
	Masters int
	// MasterElectionDelay is how long the masters are leaderless after the
	// leader is killed or steps down (default 1 s).
	MasterElectionDelay time.Duration

	// HeartbeatDelay is how long volume-server changes take to reach the
	// master's VolumeList. 0 means immediately. Read-only marks always reach
	// it at once, as in SeaweedFS. DefaultConfig uses 50 ms.
	HeartbeatDelay time.Duration
	// MasterRefillDelay is how long a restarted master takes to hear from all
	// volume servers again; server i re-registers at (i+1)/N of it.
	MasterRefillDelay time.Duration
	// AdminLockDuration is the admin-lock lease (default 10 s, as SeaweedFS).
	AdminLockDuration time.Duration

	// Durations of the slow operations (0 = instant), plus
	// size/IOBytesPerSecond when IOBytesPerSecond > 0.
	CompactDuration    time.Duration
	CopyDuration       time.Duration
	EcGenerateDuration time.Duration
	EcCopyDuration     time.Duration
	IOBytesPerSecond   int64
	// TailSecond stands in for one second of VolumeTailReceiver's
	// idle_timeout_seconds (the real idle wait is about 2 × idle_timeout
	// seconds). Default 10 ms.
	TailSecond time.Duration

	// SSRFGuard makes the volume servers refuse loopback peers in VolumeCopy,
	// VolumeTailReceiver and VolumeEcShardsCopy, like a real volume server
	// without -volume.allowUntrustedRemoteEndpoints. Off by default.
	SSRFGuard bool
	// Seed seeds the random source of probabilistic faults.
	Seed int64
}

// DefaultConfig is the configuration `groundskeeper dev` wants: small but
// visible delays.
func DefaultConfig() Config {
	return Config{
		Servers:            4,
		HeartbeatDelay:     50 * time.Millisecond,
		MasterRefillDelay:  2 * time.Second,
		CompactDuration:    200 * time.Millisecond,
		CopyDuration:       200 * time.Millisecond,
		EcGenerateDuration: 200 * time.Millisecond,
		EcCopyDuration:     50 * time.Millisecond,
		TailSecond:         10 * time.Millisecond,
	}
}

func (c *Config) fill() error {
	if c.Servers == 0 {
		c.Servers = 4
	}
	if c.Servers < 0 {
		return fmt.Errorf("sim: %d servers", c.Servers)
	}
	c.DataCenters = max(c.DataCenters, 1)
	c.RacksPerDataCenter = max(c.RacksPerDataCenter, 1)
	if c.MaxVolumesPerServer == 0 {
		c.MaxVolumesPerServer = 100
	}
	if c.VolumeSizeLimitMB == 0 {
		c.VolumeSizeLimitMB = 30000
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.DistinctHosts && c.Servers > 150 {
		return fmt.Errorf("sim: DistinctHosts with %d servers (at most 150)", c.Servers)
	}
	if c.Masters == 0 {
		c.Masters = 1
	}
	if c.Masters < 0 {
		return fmt.Errorf("sim: %d masters", c.Masters)
	}
	if c.MasterElectionDelay == 0 {
		c.MasterElectionDelay = time.Second
	}
	if c.AdminLockDuration == 0 {
		c.AdminLockDuration = 10 * time.Second
	}
	if c.TailSecond <= 0 {
		c.TailSecond = 10 * time.Millisecond
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return nil
}

// Cluster is a running simulated SeaweedFS cluster.
type Cluster struct {
	cfg     Config
	master  *master
	servers []*VolumeServer
	byGRPC  map[string]*VolumeServer // immutable after New
	faults  faultSet
	ops     opLog
	calls   sync.Map // method -> *atomic.Int64

	mu     sync.Mutex // volume id allocation and placement
	nextID uint32
	maxID  uint32 // highest id ever placed: ids above it are free
	cursor int
	lastNs atomic.Int64
	closed atomic.Bool

	content contentLedger // what each volume must hold: see content.go

	// afterEcCopy (tests only) runs between a shard copy's last byte and
	// its commit on the target.
	afterEcCopy func(*VolumeServer)
}

// New starts a cluster: the master and every volume server are listening
// when it returns.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, byGRPC: map[string]*VolumeServer{}, nextID: 1}
	c.faults.init(cfg.Seed, cfg.Clock)
	m, err := newMaster(c)
	if err != nil {
		return nil, err
	}
	c.master = m
	racks := cfg.DataCenters * cfg.RacksPerDataCenter
	for i := 0; i < cfg.Servers; i++ {
		dc, rack := "DefaultDataCenter", "DefaultRack"
		ri := i % racks
		if cfg.DataCenters > 1 {
			dc = "dc" + strconv.Itoa(ri/cfg.RacksPerDataCenter+1)
		}
		if cfg.RacksPerDataCenter > 1 {
			rack = "rack" + strconv.Itoa(ri%cfg.RacksPerDataCenter+1)
		}
		port := 0
		if cfg.BaseHTTPPort != 0 {
			port = cfg.BaseHTTPPort + i + grpcPortOffset
		}
		host := cfg.Host
		if cfg.DistinctHosts {
			host = "127.0.0." + strconv.Itoa(100+i)
		}
		lis, err := listen(host, port)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("sim: volume server %d: %w", i, err)
		}
		s := newVolumeServer(c, i, lis, host, dc, rack)
		c.servers = append(c.servers, s)
		c.byGRPC[s.grpcAddr] = s
	}
	for _, s := range c.servers {
		s.mu.Lock()
		s.regGen++
		gen := s.regGen
		s.mu.Unlock()
		c.master.register(s, gen, c.master.currentEpoch())
	}
	return c, nil
}

// listen listens on host:port; with port 0 it retries until the port leaves
// room for a virtual HTTP port 10000 below it.
func listen(host string, port int) (net.Listener, error) {
	for tries := 0; ; tries++ {
		lis, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		if p := lis.Addr().(*net.TCPAddr).Port; port != 0 || p > grpcPortOffset || tries > 50 {
			if p <= grpcPortOffset {
				lis.Close()
				return nil, fmt.Errorf("gRPC port %d leaves no room for a virtual HTTP port %d below it", p, grpcPortOffset)
			}
			return lis, nil
		}
		lis.Close()
	}
}

// Close stops every server. The cluster cannot be used afterwards.
func (c *Cluster) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	for _, s := range c.servers {
		s.shutdown()
	}
	if c.master != nil {
		c.master.shutdown()
	}
	return nil
}

// Config is the effective configuration (defaults filled in).
func (c *Cluster) Config() Config { return c.cfg }

// MasterAddress is the master's gRPC address (host:port).
func (c *Cluster) MasterAddress() string { return c.master.grpcAddr }

// MasterServerAddress is the master in SeaweedFS's "host:httpPort.grpcPort" form.
// With several masters it is master 0.
func (c *Cluster) MasterServerAddress() seaweed.Address {
	return seaweed.Address{HTTP: c.master.id, GRPC: c.master.grpcAddr}
}

// MasterServerAddresses lists every master endpoint in index order.
func (c *Cluster) MasterServerAddresses() []seaweed.Address {
	out := make([]seaweed.Address, len(c.master.eps))
	for i, ep := range c.master.eps {
		out[i] = seaweed.Address{HTTP: ep.id, GRPC: ep.grpcAddr}
	}
	return out
}

// MasterLeader is the index of the master leader, or -1 while there is
// none (an election is under way, or every master is down).
func (c *Cluster) MasterLeader() int {
	c.master.mu.Lock()
	defer c.master.mu.Unlock()
	return c.master.leader
}

// KillMaster makes master i unreachable (listener and connections closed).
// If it led, the leader's memory (registrations, admin locks, vacuum
// switches) is lost and another live master leads after
// Config.MasterElectionDelay, hearing from the volume servers over
// Config.MasterRefillDelay.
func (c *Cluster) KillMaster(i int) error { return c.master.kill(i) }

// ReviveMaster brings a killed master i back on its port as a follower; if
// no master leads, an election follows after Config.MasterElectionDelay.
func (c *Cluster) ReviveMaster(i int) error { return c.master.revive(i) }

// StepDown ends the master leader's term without killing it: its memory is
// lost and another master (if one is alive) leads after
// Config.MasterElectionDelay.
func (c *Cluster) StepDown() error { return c.master.stepDown() }

// Servers lists the volume servers in index order.
func (c *Cluster) Servers() []*VolumeServer { return append([]*VolumeServer(nil), c.servers...) }

// Server returns volume server i.
func (c *Cluster) Server(i int) *VolumeServer { return c.servers[i] }

// ServerByAddress finds a volume server by any SeaweedFS address form
// ("host:httpPort", "host:httpPort.grpcPort") or its gRPC address.
func (c *Cluster) ServerByAddress(addr string) (*VolumeServer, bool) {
	if s, ok := c.byGRPC[addr]; ok {
		return s, true
	}
	a, err := seaweed.ParseAddress(addr)
	if err != nil {
		return nil, false
	}
	s, ok := c.byGRPC[a.GRPC]
	return s, ok
}

// nowNs is a strictly increasing wall clock in nanoseconds (append ids,
// encode generations, lock timestamps).
func (c *Cluster) nowNs() int64 {
	for {
		now := time.Now().UnixNano()
		last := c.lastNs.Load()
		if now <= last {
			now = last + 1
		}
		if c.lastNs.CompareAndSwap(last, now) {
			return now
		}
	}
}

// opDuration is how long a slow operation on size bytes takes.
func (c *Cluster) opDuration(base time.Duration, size uint64) time.Duration {
	d := base
	if c.cfg.IOBytesPerSecond > 0 {
		d += time.Duration(float64(size) / float64(c.cfg.IOBytesPerSecond) * float64(time.Second))
	}
	return d
}

func (c *Cluster) countCall(method string) {
	v, ok := c.calls.Load(method)
	if !ok {
		v, _ = c.calls.LoadOrStore(method, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// CallCount is how many calls of a method (short name, e.g. "VolumeList")
// reached any server, injected failures included.
func (c *Cluster) CallCount(method string) int {
	if v, ok := c.calls.Load(method); ok {
		return int(v.(*atomic.Int64).Load())
	}
	return 0
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	// ID 0 allocates the next free id.
	ID         uint32
	Collection string
	// Size of the .dat file in bytes (the 8-byte superblock is added when smaller).
	Size         uint64
	FileCount    uint64
	DeleteCount  uint64
	DeletedBytes uint64
	ReadOnly     bool
	// ReplicaPlacement is SeaweedFS's placement byte (e.g. 1 for "001", 10 for
	// "010"); the volume gets 1 + the sum of its digits replicas.
	ReplicaPlacement uint32
	// ModifiedAt is the last write (unix seconds); 0 means now.
	ModifiedAt int64
	// Servers are the indexes of the servers holding replicas; nil places
	// them round-robin over servers with free slots.
	Servers []int
	// RemoteStorageName and RemoteStorageKey, when set, make the volume
	// cloud-tiered (as volume.tier.upload leaves it): its replicas report
	// them to the master.
	RemoteStorageName, RemoteStorageKey string
}

// ReplicaCount is the number of copies a placement byte asks for.
func ReplicaCount(placement uint32) int {
	return int(placement/100%10+placement/10%10+placement%10) + 1
}

// AddVolume creates a volume (and its replicas) and returns its id.
func (c *Cluster) AddVolume(spec VolumeSpec) (uint32, error) {
	ids, err := c.AddVolumesFunc(1, func(int, *VolumeSpec) {}, spec)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// AddVolumes creates n volumes like tmpl (whose ID and Servers are ignored:
// ids are allocated and replicas spread round-robin) and returns their ids.
func (c *Cluster) AddVolumes(n int, tmpl VolumeSpec) ([]uint32, error) {
	tmpl.ID, tmpl.Servers = 0, nil
	return c.AddVolumesFunc(n, func(int, *VolumeSpec) {}, tmpl)
}

// AddVolumesFunc creates n volumes; edit adjusts a copy of tmpl for the i-th
// one before it is placed. Building 100,000 volumes takes well under a second.
func (c *Cluster) AddVolumesFunc(n int, edit func(i int, spec *VolumeSpec), tmpl VolumeSpec) ([]uint32, error) {
	now := time.Now().Unix()
	type placed struct {
		spec    VolumeSpec
		servers []int
	}
	all := make([]placed, 0, n)
	c.mu.Lock()
	// slots counts what each server still has, for placement.
	slots := make([]int64, len(c.servers))
	taken := map[uint32]bool{}
	for i, s := range c.servers {
		s.mu.Lock()
		slots[i] = s.freeSlotsLocked()
		s.mu.Unlock()
	}
	for i := 0; i < n; i++ {
		spec := tmpl
		spec.Servers = append([]int(nil), tmpl.Servers...)
		edit(i, &spec)
		if spec.ID == 0 {
			for taken[c.nextID] || (c.nextID <= c.maxID && c.idInUse(c.nextID)) {
				c.nextID++
			}
			spec.ID = c.nextID
			c.nextID++
		} else if taken[spec.ID] || (spec.ID <= c.maxID && c.idInUse(spec.ID)) {
			c.mu.Unlock()
			return nil, fmt.Errorf("sim: volume %d already exists", spec.ID)
		}
		taken[spec.ID] = true
		if spec.ID >= c.nextID {
			c.nextID = spec.ID + 1
		}
		if spec.ModifiedAt == 0 {
			spec.ModifiedAt = now
		}
		servers := spec.Servers
		if servers == nil {
			want := ReplicaCount(spec.ReplicaPlacement)
			if want > len(c.servers) {
				c.mu.Unlock()
				return nil, fmt.Errorf("sim: volume %d needs %d replicas but there are %d servers", spec.ID, want, len(c.servers))
			}
			for tries := 0; len(servers) < want && tries < len(c.servers); tries++ {
				si := c.cursor % len(c.servers)
				c.cursor++
				if slots[si] > 0 {
					servers = append(servers, si)
				}
			}
			if len(servers) < want {
				c.mu.Unlock()
				return nil, fmt.Errorf("sim: no free slots for volume %d (%d of %d replicas placed)", spec.ID, len(servers), want)
			}
		}
		seen := map[int]bool{}
		for _, si := range servers {
			if si < 0 || si >= len(c.servers) || seen[si] {
				c.mu.Unlock()
				return nil, fmt.Errorf("sim: volume %d: bad server index %d", spec.ID, si)
			}
			seen[si] = true
			slots[si]--
		}
		all = append(all, placed{spec, servers})
	}
	for id := range taken {
		c.maxID = max(c.maxID, id)
	}
	c.mu.Unlock()
	for _, p := range all {
		c.content.born(p.spec.ID, ReplicaCount(p.spec.ReplicaPlacement), p.spec.FileCount > 0 || p.spec.Size > superBlockSize)
	}

	perServer := make([][]*replica, len(c.servers))
	ids := make([]uint32, 0, n)
	for _, p := range all {
		ids = append(ids, p.spec.ID)
		for _, si := range p.servers {
			perServer[si] = append(perServer[si], newReplica(p.spec))
		}
	}
	for si, reps := range perServer {
		if len(reps) > 0 {
			c.servers[si].addReplicas(reps)
		}
	}
	return ids, nil
}

// idInUse reports whether any server holds volume id (c.mu held).
func (c *Cluster) idInUse(id uint32) bool {
	for _, s := range c.servers {
		s.mu.Lock()
		_, ok := s.vols[id]
		_, ok2 := s.ecs[id]
		s.mu.Unlock()
		if ok || ok2 {
			return true
		}
	}
	return false
}

// EcVolumeSpec describes an erasure-coded volume to create directly.
type EcVolumeSpec struct {
	ID         uint32
	Collection string
	// Size is the original .dat size; each shard is Size/10 rounded up.
	Size        uint64
	FileCount   uint64
	DeleteCount uint64
	// Shards maps server index to the shard ids it holds.
	Shards map[int][]uint32
	// Unmounted leaves the shard files on disk without mounting them.
	Unmounted bool
}

// AddEcVolume places EC shards (files, index and, unless Unmounted, mounts).
func (c *Cluster) AddEcVolume(spec EcVolumeSpec) error {
	if spec.ID == 0 {
		return errors.New("sim: EC volume needs an id")
	}
	ts := c.nowNs()
	c.mu.Lock()
	if spec.ID >= c.nextID {
		c.nextID = spec.ID + 1
	}
	c.maxID = max(c.maxID, spec.ID)
	c.mu.Unlock()
	idx := make([]int, 0, len(spec.Shards))
	for si := range spec.Shards {
		if si < 0 || si >= len(c.servers) {
			return fmt.Errorf("sim: bad server index %d", si)
		}
		idx = append(idx, si)
	}
	sort.Ints(idx)
	gen := c.content.ledgerGeneration(spec.ID, spec.FileCount > 0 || spec.Size > 0)
	for _, si := range idx {
		s := c.servers[si]
		s.mu.Lock()
		e := s.ecs[spec.ID]
		if e == nil {
			e = &ecVol{}
			s.ecs[spec.ID] = e
		}
		e.collection, e.encodeTsNs, e.datSize = spec.Collection, ts, spec.Size
		e.fileCount, e.deleteCount, e.hasIndex = spec.FileCount, spec.DeleteCount, true
		for _, sh := range spec.Shards[si] {
			if sh >= TotalShards {
				s.mu.Unlock()
				return fmt.Errorf("sim: shard id %d", sh)
			}
			e.files |= 1 << sh
			e.gens[sh] = gen
			e.gens[sh].id = ts
			if !spec.Unmounted {
				e.mounted |= 1 << sh
			}
		}
		s.changedLocked(ecKey(spec.ID))
		s.mu.Unlock()
	}
	return nil
}

// Write simulates a client write of bytes in files new files to every
// replica of vid. It fails on a read-only replica (and then writes nothing).
func (c *Cluster) Write(vid uint32, bytes, files uint64) error {
	return c.mutateReplicas(vid, appendRec{bytes: bytes, files: files})
}

// WriteReplica simulates a write of bytes in files new files that reached
// only the replica of vid on the server with the given id (or gRPC
// address): a replicated write whose fan-out failed half-way, which leaves
// the replicas disagreeing until volume.check.disk repairs them.
func (c *Cluster) WriteReplica(vid uint32, server string, bytes, files uint64) error {
	s, ok := c.ServerByAddress(server)
	if !ok {
		return fmt.Errorf("sim: no volume server %s", server)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.vols[vid]
	switch {
	case r == nil:
		return fmt.Errorf("sim: volume %d not found on %s", vid, s.id)
	case r.unloaded || r.noWrite():
		return fmt.Errorf("sim: volume %d on %s is read only", vid, s.id)
	}
	r.apply(appendRec{ts: c.nowNs(), bytes: bytes, files: files})
	s.changedLocked(volKey(vid))
	return nil
}

// DeleteData simulates deleting files files holding bytes bytes from every
// replica of vid, which creates garbage for vacuum. While a server holding
// a replica of vid has shards of it mounted (an encode between its mount and
// the originals' delete), or when only shards are left, the delete is an EC
// delete journalled in an .ecj, as a client's delete would be there (see
// clientwrites.go).
func (c *Cluster) DeleteData(vid uint32, bytes, files uint64) error {
	rec := appendRec{delBytes: bytes, dels: files}
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	regular, mounted, both := false, false, false
	for _, s := range c.servers {
		s.mu.Lock()
		r, e := s.vols[vid], s.ecs[vid]
		s.mu.Unlock()
		m := e != nil && e.mounted != 0
		regular, mounted, both = regular || r != nil, mounted || m, both || (m && r != nil)
	}
	if both || (mounted && !regular) {
		// Without a regular replica left, the master's lookup lists the
		// shard holders; with one, a server that also mounts shards.
		return c.ecDeleteLocked(vid, rec)
	}
	return c.mutateReplicasLocked(vid, rec)
}

func (c *Cluster) mutateReplicas(vid uint32, rec appendRec) error {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	return c.mutateReplicasLocked(vid, rec)
}

// WriteUp simulates a client write of bytes in files new files to vid
// that reaches only the replicas on servers that are up: SeaweedFS's
// write once the master has dropped a server that went down (it
// replicates to the locations the master still lists). The copy on the
// down server misses it, and comes back stale when the server starts
// again.
func (c *Cluster) WriteUp(vid uint32, bytes, files uint64) error {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	return c.mutateReplicasUpLocked(vid, appendRec{bytes: bytes, files: files}, true)
}

// DeleteDataUp is WriteUp for a delete of files files holding bytes
// bytes: the copy on a down server keeps them.
func (c *Cluster) DeleteDataUp(vid uint32, bytes, files uint64) error {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	return c.mutateReplicasUpLocked(vid, appendRec{delBytes: bytes, dels: files}, true)
}

// mutateReplicasLocked applies rec to every replica of vid, or to none
// when one refuses it (c.content.mu held).
func (c *Cluster) mutateReplicasLocked(vid uint32, rec appendRec) error {
	return c.mutateReplicasUpLocked(vid, rec, false)
}

// mutateReplicasUpLocked is mutateReplicasLocked, with upOnly for the
// replicas on servers that are up only.
func (c *Cluster) mutateReplicasUpLocked(vid uint32, rec appendRec, upOnly bool) error {
	var holders []*VolumeServer
	for _, s := range c.servers {
		s.mu.Lock()
		r := s.vols[vid]
		if upOnly && !s.up {
			r = nil
		}
		if r != nil {
			if err := r.check(rec); err != nil {
				s.mu.Unlock()
				return fmt.Errorf("sim: volume %d on %s %w", vid, s.id, err)
			}
			holders = append(holders, s)
		}
		s.mu.Unlock()
	}
	if len(holders) == 0 {
		return fmt.Errorf("sim: volume %d not found", vid)
	}
	rec.ts = c.nowNs()
	for _, s := range holders {
		s.mu.Lock()
		if r := s.vols[vid]; r != nil {
			r.apply(rec)
			s.changedLocked(volKey(vid))
		}
		s.mu.Unlock()
	}
	c.content.ackLocked(vid, rec.ts)
	return nil
}

// Flush pushes every pending heartbeat to the master now.
func (c *Cluster) Flush() {
	for _, s := range c.servers {
		s.flush()
	}
}

// VacuumDisabled reports the master's two vacuum-disable flags.
func (c *Cluster) VacuumDisabled() (byOperator, byPlugin bool) {
	m := c.master
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vacOperator, m.vacPlugin
}

// AdminLock reports who holds an admin lock, if anyone does.
func (c *Cluster) AdminLock(name string) (client string, held bool) {
	m := c.master
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.locks[name]
	if l == nil || !time.Now().Before(l.at.Add(c.cfg.AdminLockDuration)) {
		return "", false
	}
	return l.client, true
}

// StopMaster takes every master down: their gRPC servers stop and the
// leader's registrations, admin locks and vacuum flags are forgotten.
func (c *Cluster) StopMaster() { c.master.stop() }

// StartMaster brings every stopped master back on its port; with no leader,
// master 0 leads at once. Volume servers re-register over
// Config.MasterRefillDelay.
func (c *Cluster) StartMaster() error { return c.master.start() }

// RestartMaster is StopMaster followed by StartMaster.
func (c *Cluster) RestartMaster() error {
	c.master.stop()
	return c.master.start()
}

// MasterUp reports whether every master is listening and one leads.
func (c *Cluster) MasterUp() bool {
	c.master.mu.Lock()
	defer c.master.mu.Unlock()
	for _, ep := range c.master.eps {
		if !ep.alive {
			return false
		}
	}
	return c.master.up
}

// RegisteredServers is how many volume servers the master currently knows.
func (c *Cluster) RegisteredServers() int {
	c.master.mu.Lock()
	defer c.master.mu.Unlock()
	return len(c.master.nodes)
}
