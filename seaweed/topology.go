package seaweed

import (
	"math/bits"
	"sort"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
)

// Topology is the master's view of the cluster, flattened for decisions.
type Topology struct {
	// VolumeSizeLimit is the master's volume size limit in bytes.
	VolumeSizeLimit uint64
	// Servers sorted by ID.
	Servers []*Server
	// Volumes by id; a volume has one replica per server that holds it.
	Volumes map[uint32]*Volume
	// EcVolumes by id: which server holds which shards.
	EcVolumes map[uint32]*EcVolume
}

// Server is one volume server.
type Server struct {
	ID         string
	Addr       Address
	DataCenter string
	Rack       string
	// Disks by disk type ("" is the default hard-drive type).
	Disks map[string]*Disk
}

// Disk is one disk type's capacity on a server.
type Disk struct {
	Type        string
	MaxVolumes  int64
	VolumeCount int64
	FreeSlots   int64
	// EcShards counts shards held; SeaweedFS charges one slot per 10 shards.
	EcShards int
	// Physical is the type's physical disks (the volume server's -dir
	// locations, by disk id, the location's index), as the master lists
	// them (max_volume_count_by_disk), in disk id order; nil when it does
	// not (an older SeaweedFS).
	Physical []PhysicalDisk
}

// PhysicalDisk is one of a server's disk locations of a disk type.
type PhysicalDisk struct {
	// ID is the location's index on its server: the disk_id SeaweedFS's
	// RPCs take, where 0 also means "not given".
	ID         uint32
	MaxVolumes int64
	Volumes    int64
	EcShards   int
}

// Replica is one copy of a volume: the few fields of the master's
// VolumeInformationMessage that decisions read. The message itself is not
// kept: at a million volumes it made up most of an admin's heap.
type Replica struct {
	Server          *Server
	Size            uint64
	DiskType        string
	CompactRevision uint32
}

// Volume is a normal (replicated) volume and its replicas.
type Volume struct {
	ID               uint32
	ReplicaPlacement uint32
	Collection       string
	DiskType         string
	// Size, DeletedBytes, FileCount, DeleteCount are the largest any replica reports.
	Size         uint64
	DeletedBytes uint64
	FileCount    uint64
	DeleteCount  uint64
	ReadOnly     bool
	// ReadOnlyNoDelete: some replica is read-only for a reason that
	// forbids deletes too (not read_only_can_delete, as a full volume is:
	// an operator's mark, low disk space, I/O errors).
	ReadOnlyNoDelete bool
	replicaCount     int32 // FromVolumeList's count, before Replicas is filled
	// RemoteStorage names the remote storage (cloud tier) holding the
	// volume's data, as any replica reports it (RemoteStorageName in the
	// master's VolumeInformationMessage, set by volume.tier.upload); "" for
	// a volume whose data is local.
	RemoteStorage string
	// ModifiedAt is the latest modification (unix seconds) of any replica.
	ModifiedAt int64
	Replicas   []Replica
}

// CloudTiered reports whether the volume's data lives in remote storage
// (a cloud tier): such a volume is never vacuumed, erasure coded or moved.
func (v *Volume) CloudTiered() bool { return v.RemoteStorage != "" }

// GarbageRatio is deleted bytes over size (0 for an empty volume).
func (v *Volume) GarbageRatio() float64 {
	if v.Size == 0 {
		return 0
	}
	return float64(v.DeletedBytes) / float64(v.Size)
}

// EcVolume is an erasure-coded volume: shard id -> holders.
type EcVolume struct {
	ID         uint32
	Collection string
	// DiskType is the disk type the master lists the shards under (the
	// first seen, in server order, if servers disagree).
	DiskType string
	// Shards is shard id -> the servers that mount it at the volume's
	// shard size.
	Shards map[uint32][]string
	// Short is shard id -> the servers that mount it at a size below
	// another shard of the volume they mount (every shard of one encode
	// has the same size, and a server mounts one encode's, beside one
	// .ecx): a truncated file, a copy a crash cut short and the server
	// mounted when it started again beside the .ecx of its other shards.
	// It is not a shard (it is in no Shards list), and it still takes room
	// on its server. Nil when there is none.
	Short map[uint32][]string
}

// ShardCount is the number of distinct shards present.
func (e *EcVolume) ShardCount() int { return len(e.Shards) }

// FromVolumeList builds a Topology from the master's answer.
//
// A topology is kept for as long as the next poll takes, by every admin, so
// it is laid out for a small heap: volumes and replicas live in two slabs
// sized in a first pass, and names are shared.
func FromVolumeList(resp *master_pb.VolumeListResponse) *Topology {
	replicas := 0
	for _, dc := range resp.GetTopologyInfo().GetDataCenterInfos() {
		for _, rack := range dc.GetRackInfos() {
			for _, dn := range rack.GetDataNodeInfos() {
				for _, di := range dn.GetDiskInfos() {
					replicas += len(di.GetVolumeInfos())
				}
			}
		}
	}
	t := &Topology{
		VolumeSizeLimit: resp.GetVolumeSizeLimitMb() * 1024 * 1024,
		Volumes:         map[uint32]*Volume{},
		EcVolumes:       map[uint32]*EcVolume{},
	}
	b := builder{t: t, names: map[string]string{}}
	type placed struct {
		s  *Server
		vi []*master_pb.VolumeInformationMessage
	}
	var all []placed
	// sized: every mounted shard and the size its server reports, for
	// the second pass that tells truncated copies apart.
	type sized struct {
		vid, shard uint32
		server     string
		size       int64
	}
	var shards []sized
	for _, dc := range resp.GetTopologyInfo().GetDataCenterInfos() {
		for _, rack := range dc.GetRackInfos() {
			for _, dn := range rack.GetDataNodeInfos() {
				s := &Server{
					ID:         dn.GetId(),
					Addr:       nodeAddress(dn.GetId(), dn.GetAddress(), dn.GetGrpcPort()),
					DataCenter: dc.GetId(),
					Rack:       rack.GetId(),
					Disks:      map[string]*Disk{},
				}
				t.Servers = append(t.Servers, s)
				types := make([]string, 0, len(dn.GetDiskInfos()))
				for typ := range dn.GetDiskInfos() {
					types = append(types, typ)
				}
				sort.Strings(types)
				for _, typ := range types {
					di := dn.GetDiskInfos()[typ]
					d := &Disk{Type: typ, MaxVolumes: di.GetMaxVolumeCount(), VolumeCount: di.GetVolumeCount(), FreeSlots: di.GetFreeVolumeCount(), Physical: physicalDisks(di)}
					s.Disks[typ] = d
					for _, vi := range di.GetVolumeInfos() {
						b.merge(vi)
					}
					all = append(all, placed{s, di.GetVolumeInfos()})
					for _, ec := range di.GetEcShardInfos() {
						e := t.EcVolumes[ec.GetId()]
						if e == nil {
							e = &EcVolume{ID: ec.GetId(), Collection: b.name(ec.GetCollection()), DiskType: b.name(typ), Shards: map[uint32][]string{}}
							t.EcVolumes[ec.GetId()] = e
						}
						// ShardSizes lists one size per set bit, in bit
						// order; a master that sends none (an older
						// SeaweedFS) leaves every size unknown (0).
						sizes, j := ec.GetShardSizes(), 0
						for bits, shard := ec.GetEcIndexBits(), uint32(0); bits != 0; bits, shard = bits>>1, shard+1 {
							if bits&1 == 1 {
								var size int64
								if j < len(sizes) {
									size = sizes[j]
								}
								j++
								shards = append(shards, sized{ec.GetId(), shard, s.ID, size})
								d.EcShards++
							}
						}
					}
				}
			}
		}
	}
	// A copy reported smaller than another shard of the volume on the same
	// server is truncated: a server mounts a volume's shards beside one
	// .ecx, of one encode run, all of one size (a size of 0 is unknown:
	// counted as whole). Sizes are never compared across servers: another
	// server may hold a whole shard of another encode run of the volume
	// (one an encode's rollback could not reach), of another size.
	type onServer struct {
		vid    uint32
		server string
	}
	largest := map[onServer]int64{}
	for _, sh := range shards {
		k := onServer{sh.vid, sh.server}
		largest[k] = max(largest[k], sh.size)
	}
	for _, sh := range shards {
		e := t.EcVolumes[sh.vid]
		if sh.size > 0 && sh.size < largest[onServer{sh.vid, sh.server}] {
			if e.Short == nil {
				e.Short = map[uint32][]string{}
			}
			e.Short[sh.shard] = append(e.Short[sh.shard], sh.server)
			continue
		}
		e.Shards[sh.shard] = append(e.Shards[sh.shard], sh.server)
	}
	// Second pass: every volume's replicas, in one slab cut to the counts
	// the first pass took.
	slab := make([]Replica, replicas)
	for _, chunk := range b.chunks {
		for i := range chunk {
			v := &chunk[i]
			v.Replicas, slab = slab[:0:v.replicaCount], slab[v.replicaCount:]
		}
	}
	for _, p := range all {
		for _, vi := range p.vi {
			v := t.Volumes[vi.GetId()]
			v.Replicas = append(v.Replicas, Replica{Server: p.s, Size: vi.GetSize(), DiskType: b.name(vi.GetDiskType()), CompactRevision: vi.GetCompactRevision()})
		}
	}
	sort.Slice(t.Servers, func(i, j int) bool { return t.Servers[i].ID < t.Servers[j].ID })
	for _, v := range t.Volumes {
		sort.Slice(v.Replicas, func(i, j int) bool { return v.Replicas[i].Server.ID < v.Replicas[j].Server.ID })
	}
	return t
}

// physicalDisks is a disk type's physical disks as the master lists them,
// with the volumes and EC shards each holds (nil when the master sends no
// max_volume_count_by_disk).
func physicalDisks(di *master_pb.DiskInfo) []PhysicalDisk {
	byID := di.GetMaxVolumeCountByDisk()
	if len(byID) == 0 {
		return nil
	}
	out := make([]PhysicalDisk, 0, len(byID))
	for id, m := range byID {
		out = append(out, PhysicalDisk{ID: id, MaxVolumes: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	at := func(id uint32) *PhysicalDisk {
		i := sort.Search(len(out), func(i int) bool { return out[i].ID >= id })
		if i < len(out) && out[i].ID == id {
			return &out[i]
		}
		return nil
	}
	for _, vi := range di.GetVolumeInfos() {
		if p := at(vi.GetDiskId()); p != nil {
			p.Volumes++
		}
	}
	for _, ec := range di.GetEcShardInfos() {
		if p := at(ec.GetDiskId()); p != nil {
			p.EcShards += bits.OnesCount32(ec.GetEcIndexBits())
		}
	}
	return out
}

// builder holds what FromVolumeList shares between volumes.
type builder struct {
	t *Topology
	// names shares one copy of each collection and disk type name: the
	// decoded message holds a copy per volume.
	names map[string]string
	// chunks hold the volumes, a few thousand to an allocation; a chunk
	// never grows, so pointers into it stay valid.
	chunks [][]Volume
}

const volumeChunk = 4096

func (b *builder) name(s string) string {
	if v, ok := b.names[s]; ok {
		return v
	}
	b.names[s] = s
	return s
}

// merge counts a replica into its volume: the volume carries the largest
// size, garbage and counts any replica reports.
func (b *builder) merge(vi *master_pb.VolumeInformationMessage) {
	v := b.t.Volumes[vi.GetId()]
	if v == nil {
		if n := len(b.chunks); n == 0 || len(b.chunks[n-1]) == volumeChunk {
			b.chunks = append(b.chunks, make([]Volume, 0, volumeChunk))
		}
		c := &b.chunks[len(b.chunks)-1]
		*c = append(*c, Volume{ID: vi.GetId(), Collection: b.name(vi.GetCollection()), DiskType: b.name(vi.GetDiskType()), ReplicaPlacement: vi.GetReplicaPlacement()})
		v = &(*c)[len(*c)-1]
		b.t.Volumes[vi.GetId()] = v
	}
	v.Size = max(v.Size, vi.GetSize())
	v.DeletedBytes = max(v.DeletedBytes, vi.GetDeletedByteCount())
	v.FileCount = max(v.FileCount, vi.GetFileCount())
	v.DeleteCount = max(v.DeleteCount, vi.GetDeleteCount())
	v.ModifiedAt = max(v.ModifiedAt, vi.GetModifiedAtSecond())
	v.ReadOnly = v.ReadOnly || vi.GetReadOnly()
	v.ReadOnlyNoDelete = v.ReadOnlyNoDelete || vi.GetReadOnly() && !vi.GetReadOnlyCanDelete()
	if r := vi.GetRemoteStorageName(); r != "" {
		v.RemoteStorage = b.name(r)
	}
	v.replicaCount++
}

// Server returns the server with the given id.
func (t *Topology) Server(id string) (*Server, bool) {
	i := sort.Search(len(t.Servers), func(i int) bool { return t.Servers[i].ID >= id })
	if i < len(t.Servers) && t.Servers[i].ID == id {
		return t.Servers[i], true
	}
	return nil, false
}

// FindServer matches a server by id, HTTP address, gRPC address or
// SeaweedFS's "host:port.grpcPort" form.
func (t *Topology) FindServer(name string) (*Server, bool) {
	if s, ok := t.Server(name); ok {
		return s, true
	}
	for _, s := range t.Servers {
		if s.Addr.HTTP == name || s.Addr.String() == name || s.Addr.GRPC == name {
			return s, true
		}
	}
	return nil, false
}
