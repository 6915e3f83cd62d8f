package scheduler

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Test topologies are built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList.

const mib = 1 << 20

// now is the fixed "current time" every test passes explicitly.
var now = time.Unix(1_700_000_000, 0)

// ago is a modification time d before now, in unix seconds.
func ago(d time.Duration) int64 { return now.Add(-d).Unix() }

// host n's HTTP address (also its id unless at() says otherwise), and the
// SeaweedFS "host:http.grpc" form with the default gRPC port (http+10000).
func sid(n int) string { return fmt.Sprintf("10.0.0.%d:8080", n) }
func swa(n int) string { return fmt.Sprintf("10.0.0.%d:8080.18080", n) }
func grpcAddr(n int) string {
	return fmt.Sprintf("10.0.0.%d:18080", n)
}

// vol is one replica of a volume as a server reports it.
type vol struct {
	id       uint32
	size     uint64
	deleted  uint64
	modified int64
	coll     string
	rp       uint32
	ro       bool
}

func v(id uint32, size uint64) vol { return vol{id: id, size: size, modified: ago(48 * time.Hour)} }

func (x vol) garbage(deleted uint64) vol { x.deleted = deleted; return x }
func (x vol) mod(unix int64) vol         { x.modified = unix; return x }
func (x vol) in(coll string) vol         { x.coll = coll; return x }
func (x vol) readOnly() vol              { x.ro = true; return x }

// vrp is a replica of a volume with replica placement rp (001: two copies).
func vrp(id uint32, size uint64, rp uint32) vol { x := v(id, size); x.rp = rp; return x }

// node is one volume server (data node) with a single default-type disk.
type node struct {
	id, addr string
	grpc     uint32
	max      int64
	free     int64
	freeSet  bool
	vols     []vol
	ec       map[uint32]uint32 // volume id -> ec_index_bits
	dc, rack string
}

// srv is a server with max volume slots holding vols; its free slot count is
// max - len(vols) unless free() says otherwise.
func srv(id string, max int64, vols ...vol) *node {
	return &node{id: id, max: max, vols: vols, dc: "dc1", rack: "rack1"}
}

// at gives the server an address different from its id, and a gRPC port.
func (n *node) at(addr string, grpc uint32) *node { n.addr, n.grpc = addr, grpc; return n }

// withFree overrides the free slot count the master reports (e.g. slots used by
// EC shards or remote volumes).
func (n *node) withFree(f int64) *node { n.free, n.freeSet = f, true; return n }

// shards adds EC shards of volume id to the server.
func (n *node) shards(id uint32, shardIDs ...uint32) *node {
	if n.ec == nil {
		n.ec = map[uint32]uint32{}
	}
	for _, s := range shardIDs {
		n.ec[id] |= 1 << s
	}
	return n
}

func (n *node) placed(dc, rack string) *node { n.dc, n.rack = dc, rack; return n }

// allShards is shard ids 0..13.
func allShards() []uint32 {
	out := make([]uint32, placement.TotalShards)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

func (n *node) dataNode(rng *rand.Rand) *master_pb.DataNodeInfo {
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
			Id: x.id, Size: x.size, DeletedByteCount: x.deleted, ModifiedAtSecond: x.modified, Collection: x.coll, ReplicaPlacement: x.rp, ReadOnly: x.ro,
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
	return &master_pb.DataNodeInfo{Id: n.id, Address: addr, GrpcPort: n.grpc, DiskInfos: map[string]*master_pb.DiskInfo{"": disk}}
}

// volumeList builds the master's answer. With rng non-nil, the order of
// servers, racks, data centers and volume infos is shuffled (deterministically
// for a given seed): the decision functions must not care.
func volumeList(limitMB uint64, rng *rand.Rand, nodes ...*node) *master_pb.VolumeListResponse {
	order := make([]*node, len(nodes))
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

// build is the topology FromVolumeList makes of the servers.
func build(limitMB uint64, nodes ...*node) *seaweed.Topology {
	return seaweed.FromVolumeList(volumeList(limitMB, nil, nodes...))
}

// idle is a Busy that reports nothing busy.
func idle(uint32) bool { return false }

// busyOn reports the given volumes busy.
func busyOn(ids ...uint32) Busy {
	m := map[uint32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return func(id uint32) bool { return m[id] }
}

// summary renders proposals compactly for table comparisons.
func summary(ps []Proposal) []string {
	out := []string{}
	for _, p := range ps {
		switch p.Type {
		case fsmpb.TaskType_TASK_TYPE_VACUUM:
			out = append(out, fmt.Sprintf("vacuum %d", p.VolumeID))
		case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
			out = append(out, fmt.Sprintf("ec %d", p.VolumeID))
		case fsmpb.TaskType_TASK_TYPE_BALANCE:
			out = append(out, fmt.Sprintf("balance %d %s->%s", p.VolumeID, p.Source, p.Target))
		default:
			out = append(out, fmt.Sprintf("%v %d", p.Type, p.VolumeID))
		}
	}
	return out
}

// fillers are n volumes with ids from first, size 1 MiB, no garbage.
func fillers(first uint32, n int) []vol {
	out := make([]vol, n)
	for i := range out {
		out[i] = v(first+uint32(i), 1*mib)
	}
	return out
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
