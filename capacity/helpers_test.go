package capacity

import (
	"fmt"
	"sort"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Test topologies are built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList. This
// is the part of the scheduler tests' builder (scheduler/helpers_test.go)
// the projection tests use.

const mib = 1 << 20

// host n's HTTP address (also its id), and the SeaweedFS "host:http.grpc"
// form with the default gRPC port (http+10000).
func sid(n int) string { return fmt.Sprintf("10.0.0.%d:8080", n) }
func swa(n int) string { return fmt.Sprintf("10.0.0.%d:8080.18080", n) }

// vol is one replica of a volume as a server reports it.
type vol struct {
	id      uint32
	size    uint64
	deleted uint64
}

func v(id uint32, size uint64) vol { return vol{id: id, size: size} }

func (x vol) garbage(deleted uint64) vol { x.deleted = deleted; return x }

// node is one volume server with a single default-type disk.
type node struct {
	id      string
	max     int64
	free    int64
	freeSet bool
	vols    []vol
	ec      map[uint32]uint32 // volume id -> ec_index_bits
}

// srv is a server with max volume slots holding vols; its free slot count is
// max - len(vols) unless withFree says otherwise.
func srv(id string, max int64, vols ...vol) *node { return &node{id: id, max: max, vols: vols} }

// withFree overrides the free slot count the master reports (e.g. slots
// used by EC shards).
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

func (n *node) dataNode() *master_pb.DataNodeInfo {
	free := n.max - int64(len(n.vols))
	if n.freeSet {
		free = n.free
	}
	disk := &master_pb.DiskInfo{VolumeCount: int64(len(n.vols)), MaxVolumeCount: n.max, FreeVolumeCount: free}
	for _, x := range n.vols {
		disk.VolumeInfos = append(disk.VolumeInfos, &master_pb.VolumeInformationMessage{Id: x.id, Size: x.size, DeletedByteCount: x.deleted})
	}
	ecIDs := make([]uint32, 0, len(n.ec))
	for id := range n.ec {
		ecIDs = append(ecIDs, id)
	}
	sort.Slice(ecIDs, func(i, j int) bool { return ecIDs[i] < ecIDs[j] })
	for _, id := range ecIDs {
		disk.EcShardInfos = append(disk.EcShardInfos, &master_pb.VolumeEcShardInformationMessage{Id: id, EcIndexBits: n.ec[id]})
	}
	return &master_pb.DataNodeInfo{Id: n.id, Address: n.id, DiskInfos: map[string]*master_pb.DiskInfo{"": disk}}
}

// build is the topology FromVolumeList makes of the servers, all in one
// rack.
func build(limitMB uint64, nodes ...*node) *seaweed.Topology {
	dns := make([]*master_pb.DataNodeInfo, len(nodes))
	for i, n := range nodes {
		dns[i] = n.dataNode()
	}
	return seaweed.FromVolumeList(&master_pb.VolumeListResponse{VolumeSizeLimitMb: limitMB, TopologyInfo: &master_pb.TopologyInfo{
		DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "rack1", DataNodeInfos: dns}}}}}})
}

const (
	vac     = fsmpb.TaskType_TASK_TYPE_VACUUM
	ecType  = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	balType = fsmpb.TaskType_TASK_TYPE_BALANCE
)

func task(id uint64, typ fsmpb.TaskType, vol uint32) *fsmpb.Task {
	return &fsmpb.Task{Id: id, Type: typ, VolumeId: vol, State: fsmpb.TaskState_TASK_STATE_RUNNING}
}

func change(id uint64, typ fsmpb.TaskType, vol uint32, oldSize, newSize uint64) *fsmpb.CapacityChange {
	return &fsmpb.CapacityChange{TaskId: id, Type: typ, VolumeId: vol, OldSize: oldSize, NewSize: newSize}
}
