package capacity

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// scanMaster is the straightforward computation IndexServers replaces:
// every replica of every volume, added to its server if wanted.
func scanMaster(p *projection) {
	for _, v := range p.topo.Volumes {
		for _, r := range v.Replicas {
			p.addMaster(r.Server.ID, r.DiskType, r.Size, 1)
		}
	}
}

// randomTopology: servers with one to three disk types, volumes with
// replicas on distinct servers, replica disk types that do not always match
// a disk of the server (so the fallback disk is picked), some EC volumes.
func randomTopology(r *rand.Rand) *seaweed.Topology {
	types := []string{"", "ssd", "nvme", "hdd"}
	nServers := 1 + r.IntN(8)
	nodes := make([]*master_pb.DataNodeInfo, nServers)
	for i := range nodes {
		nodes[i] = &master_pb.DataNodeInfo{Id: fmt.Sprintf("10.0.0.%d:8080", i+1), DiskInfos: map[string]*master_pb.DiskInfo{}}
		for _, k := range r.Perm(3)[:1+r.IntN(3)] {
			nodes[i].DiskInfos[types[k]] = &master_pb.DiskInfo{Type: types[k], MaxVolumeCount: 100, FreeVolumeCount: int64(r.IntN(100))}
		}
	}
	diskOf := func(n *master_pb.DataNodeInfo) *master_pb.DiskInfo {
		for _, k := range r.Perm(4) {
			if d, ok := n.DiskInfos[types[k]]; ok {
				return d
			}
		}
		panic("no disk")
	}
	for id := uint32(1); id <= uint32(r.IntN(60)); id++ {
		size := uint64(r.IntN(1000)) * mib
		for _, si := range r.Perm(nServers)[:1+r.IntN(min(3, nServers))] {
			d := diskOf(nodes[si])
			typ := d.Type
			if r.IntN(4) == 0 {
				typ = types[r.IntN(4)] // listed under one disk, typed another
			}
			d.VolumeInfos = append(d.VolumeInfos, &master_pb.VolumeInformationMessage{Id: id, Size: size + uint64(r.IntN(10))*mib,
				DeletedByteCount: size / uint64(1+r.IntN(4)), DiskType: typ, Collection: "c"})
		}
	}
	for id := uint32(1000); id < 1000+uint32(r.IntN(4)); id++ {
		d := diskOf(nodes[r.IntN(nServers)])
		d.EcShardInfos = append(d.EcShardInfos, &master_pb.VolumeEcShardInformationMessage{Id: id, EcIndexBits: uint32(r.IntN(1 << seaweed.EcTotalShards))})
	}
	return seaweed.FromVolumeList(&master_pb.VolumeListResponse{VolumeSizeLimitMb: 1000, TopologyInfo: &master_pb.TopologyInfo{
		DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: nodes}}}}}})
}

// TestServerIndexMatchesScan: over random topologies and work in flight,
// projecting servers with the per-topology index gives exactly what the
// scan of every volume gives.
func TestServerIndexMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for round := 0; round < 500; round++ {
		topo := randomTopology(r)
		var servers []*seaweed.Server
		for range 1 + r.IntN(len(topo.Servers)+1) {
			servers = append(servers, topo.Servers[r.IntN(len(topo.Servers))]) // duplicates too
		}
		var vols []uint32
		for id := range topo.Volumes {
			vols = append(vols, id)
		}
		var active []*fsmpb.Task
		var changes []*fsmpb.CapacityChange
		for i, id := range vols {
			if i%3 != 0 {
				continue
			}
			v := topo.Volumes[id]
			switch r.IntN(4) {
			case 0:
				active = append(active, task(uint64(i+1), vac, id))
			case 1:
				changes = append(changes, change(uint64(i+1), vac, id, v.Size, v.Size/2))
			case 2:
				src := v.Replicas[0].Server.ID
				dst := topo.Servers[r.IntN(len(topo.Servers))].ID
				changes = append(changes, &fsmpb.CapacityChange{TaskId: uint64(i + 1), Type: balType, VolumeId: id, OldSize: v.Size, NewSize: v.Size, Source: src, Target: dst})
			case 3:
				var ps []*fsmpb.ShardPlacement
				for sh := range uint32(seaweed.EcTotalShards) {
					ps = append(ps, &fsmpb.ShardPlacement{ShardId: sh, Server: topo.Servers[r.IntN(len(topo.Servers))].ID})
				}
				changes = append(changes, &fsmpb.CapacityChange{TaskId: uint64(i + 1), Type: ecType, VolumeId: id, OldSize: v.Size, Shards: ps})
			}
		}
		p := newProjection(topo, servers)
		scanMaster(&p)
		want := p.project(active, changes)
		got := projectServers(topo, IndexServers(topo), servers, active, changes)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d servers, want %d", round, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("round %d, server %s:\n got %v\nwant %v", round, want[i].Server, got[i], want[i])
			}
		}
	}
}
