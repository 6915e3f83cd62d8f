// Package topotest builds SeaweedFS topologies for tests the way
// production gets them: as a master_pb.VolumeListResponse passed through
// seaweed.FromVolumeList. The scheduler's and the capacity model's tests
// share it. It is for tests only; nothing in the product imports it.
package topotest

import (
	"fmt"
	"math/rand"
	"sort"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// SID is host n's HTTP address (also its id unless At says otherwise), and
// SWA the SeaweedFS "host:http.grpc" form with the default gRPC port
// (http+10000).
func SID(n int) string { return fmt.Sprintf("10.0.0.%d:8080", n) }

// SWA: see SID.
func SWA(n int) string { return fmt.Sprintf("10.0.0.%d:8080.18080", n) }

// GRPCAddr is host n's gRPC address at the default port.
func GRPCAddr(n int) string {
	return fmt.Sprintf("10.0.0.%d:18080", n)
}

// Vol is one replica of a volume as a server reports it.
type Vol struct {
	id       uint32
	size     uint64
	deleted  uint64
	modified int64
	coll     string
	rp       uint32
	ro       bool
	remote   string
	files    uint64
	canDel   bool
	dels     uint64
}

// V is a replica of volume id holding size bytes, nothing else set.
func V(id uint32, size uint64) Vol { return Vol{id: id, size: size} }

// Garbage sets the deleted bytes.
func (x Vol) Garbage(deleted uint64) Vol { x.deleted = deleted; return x }

// Mod sets the modification time, in unix seconds.
func (x Vol) Mod(unix int64) Vol { x.modified = unix; return x }

// ReadOnlyCanDelete marks the replica read-only as a full volume is:
// deletes still allowed.
func (x Vol) ReadOnlyCanDelete() Vol { x.ro, x.canDel = true, true; return x }

// Files sets the file and delete counts.
func (x Vol) Files(files, deletes uint64) Vol { x.files, x.dels = files, deletes; return x }

// In sets the collection.
func (x Vol) In(coll string) Vol { x.coll = coll; return x }

// ReadOnly marks the replica read-only.
func (x Vol) ReadOnly() Vol { x.ro = true; return x }

// Remote makes the volume cloud-tiered in the named remote storage.
func (x Vol) Remote(name string) Vol { x.remote = name; return x }

// RP sets the replica placement (001: two copies).
func (x Vol) RP(rp uint32) Vol { x.rp = rp; return x }

// Node is one volume server (data node) with a single default-type disk.
type Node struct {
	id, addr string
	grpc     uint32
	max      int64
	free     int64
	freeSet  bool
	vols     []Vol
	ec       map[uint32]uint32 // volume id -> ec_index_bits
	dc, rack string
	disks    []typedDisk
}

// typedDisk is a disk of a type other than the default one.
type typedDisk struct {
	typ  string
	max  int64
	vols []Vol
}

// Srv is a server in dc1/rack1 with max volume slots holding vols; its free
// slot count is max - len(vols) unless WithFree says otherwise.
func Srv(id string, max int64, vols ...Vol) *Node {
	return &Node{id: id, max: max, vols: vols, dc: "dc1", rack: "rack1"}
}

// At gives the server an address different from its id, and a gRPC port.
func (n *Node) At(addr string, grpc uint32) *Node { n.addr, n.grpc = addr, grpc; return n }

// WithFree overrides the free slot count the master reports (e.g. slots
// used by EC shards or remote volumes).
func (n *Node) WithFree(f int64) *Node { n.free, n.freeSet = f, true; return n }

// Shards adds EC shards of volume id to the server.
func (n *Node) Shards(id uint32, shardIDs ...uint32) *Node {
	if n.ec == nil {
		n.ec = map[uint32]uint32{}
	}
	for _, s := range shardIDs {
		n.ec[id] |= 1 << s
	}
	return n
}

// Holding adds replicas to the server.
func (n *Node) Holding(vols ...Vol) *Node { n.vols = append(n.vols, vols...); return n }

// WithDisk gives the server a disk of type typ (e.g. "ssd") with max
// volume slots holding vols, which report that disk type.
func (n *Node) WithDisk(typ string, max int64, vols ...Vol) *Node {
	n.disks = append(n.disks, typedDisk{typ, max, vols})
	return n
}

// Placed moves the server to data center dc, rack rack.
func (n *Node) Placed(dc, rack string) *Node { n.dc, n.rack = dc, rack; return n }

func (n *Node) dataNode(rng *rand.Rand) *master_pb.DataNodeInfo {
	free := n.max - int64(len(n.vols))
	if n.freeSet {
		free = n.free
	}
	disk := &master_pb.DiskInfo{
		VolumeCount:     int64(len(n.vols)),
		MaxVolumeCount:  n.max,
		FreeVolumeCount: free,
	}
	for _, x := range n.vols {
		disk.VolumeInfos = append(disk.VolumeInfos, &master_pb.VolumeInformationMessage{
			Id: x.id, Size: x.size, DeletedByteCount: x.deleted, ModifiedAtSecond: x.modified, Collection: x.coll, ReplicaPlacement: x.rp, ReadOnly: x.ro, RemoteStorageName: x.remote, FileCount: x.files, DeleteCount: x.dels, ReadOnlyCanDelete: x.canDel,
		})
	}
	ecIDs := make([]uint32, 0, len(n.ec))
	for id := range n.ec {
		ecIDs = append(ecIDs, id)
	}
	sort.Slice(ecIDs, func(i, j int) bool { return ecIDs[i] < ecIDs[j] })
	for _, id := range ecIDs {
		disk.EcShardInfos = append(disk.EcShardInfos, &master_pb.VolumeEcShardInformationMessage{Id: id, EcIndexBits: n.ec[id]})
	}
	if rng != nil {
		rng.Shuffle(len(disk.VolumeInfos), func(i, j int) {
			disk.VolumeInfos[i], disk.VolumeInfos[j] = disk.VolumeInfos[j], disk.VolumeInfos[i]
		})
		rng.Shuffle(len(disk.EcShardInfos), func(i, j int) {
			disk.EcShardInfos[i], disk.EcShardInfos[j] = disk.EcShardInfos[j], disk.EcShardInfos[i]
		})
	}
	addr := n.addr
	if addr == "" {
		addr = n.id
	}
	infos := map[string]*master_pb.DiskInfo{"": disk}
	for _, d := range n.disks {
		di := &master_pb.DiskInfo{Type: d.typ, VolumeCount: int64(len(d.vols)), MaxVolumeCount: d.max, FreeVolumeCount: d.max - int64(len(d.vols))}
		for _, x := range d.vols {
			di.VolumeInfos = append(di.VolumeInfos, &master_pb.VolumeInformationMessage{
				Id: x.id, Size: x.size, DeletedByteCount: x.deleted, ModifiedAtSecond: x.modified, Collection: x.coll, ReplicaPlacement: x.rp, ReadOnly: x.ro, DiskType: d.typ, RemoteStorageName: x.remote, FileCount: x.files, DeleteCount: x.dels, ReadOnlyCanDelete: x.canDel,
			})
		}
		infos[d.typ] = di
	}
	return &master_pb.DataNodeInfo{Id: n.id, Address: addr, GrpcPort: n.grpc, DiskInfos: infos}
}

// VolumeList builds the master's answer. With rng non-nil, the order of
// servers, racks, data centers and volume infos is shuffled
// (deterministically for a given seed): the decision functions must not
// care.
func VolumeList(limitMB uint64, rng *rand.Rand, nodes ...*Node) *master_pb.VolumeListResponse {
	order := make([]*Node, len(nodes))
	copy(order, nodes)
	if rng != nil {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	topo := &master_pb.TopologyInfo{Id: "topo"}
	dcs := map[string]*master_pb.DataCenterInfo{}
	racks := map[string]*master_pb.RackInfo{}
	for _, n := range order {
		dc := dcs[n.dc]
		if dc == nil {
			dc = &master_pb.DataCenterInfo{Id: n.dc}
			dcs[n.dc] = dc
			topo.DataCenterInfos = append(topo.DataCenterInfos, dc)
		}
		rk := racks[n.dc+"/"+n.rack]
		if rk == nil {
			rk = &master_pb.RackInfo{Id: n.rack}
			racks[n.dc+"/"+n.rack] = rk
			dc.RackInfos = append(dc.RackInfos, rk)
		}
		rk.DataNodeInfos = append(rk.DataNodeInfos, n.dataNode(rng))
	}
	return &master_pb.VolumeListResponse{TopologyInfo: topo, VolumeSizeLimitMb: limitMB}
}

// Build is the topology FromVolumeList makes of the servers.
func Build(limitMB uint64, nodes ...*Node) *seaweed.Topology {
	return seaweed.FromVolumeList(VolumeList(limitMB, nil, nodes...))
}
