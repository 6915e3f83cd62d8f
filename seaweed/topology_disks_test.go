package seaweed

import (
	"reflect"
	"testing"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
)

// TestPhysicalDisks: a disk type's physical disks come from the master's
// max_volume_count_by_disk, in disk id order, each with the volumes and EC
// shards its records place on it (records on a disk the map does not list
// are not counted on any); a master that sends no map lists none.
func TestPhysicalDisks(t *testing.T) {
	resp := &master_pb.VolumeListResponse{TopologyInfo: &master_pb.TopologyInfo{DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: []*master_pb.DataNodeInfo{
		{Id: "a:8080", DiskInfos: map[string]*master_pb.DiskInfo{
			"": {MaxVolumeCount: 10, MaxVolumeCountByDisk: map[uint32]int64{0: 10},
				VolumeInfos: []*master_pb.VolumeInformationMessage{{Id: 1, DiskId: 0}}},
			"ssd": {Type: "ssd", MaxVolumeCount: 14, MaxVolumeCountByDisk: map[uint32]int64{3: 6, 1: 8},
				VolumeInfos:  []*master_pb.VolumeInformationMessage{{Id: 2, DiskId: 1, DiskType: "ssd"}, {Id: 3, DiskId: 3, DiskType: "ssd"}, {Id: 4, DiskId: 3, DiskType: "ssd"}, {Id: 5, DiskId: 7, DiskType: "ssd"}},
				EcShardInfos: []*master_pb.VolumeEcShardInformationMessage{{Id: 9, DiskId: 1, EcIndexBits: 0b1011, DiskType: "ssd"}}},
		}},
		{Id: "b:8080", DiskInfos: map[string]*master_pb.DiskInfo{"": {MaxVolumeCount: 10}}},
	}}}}}}}
	topo := FromVolumeList(resp)
	a, _ := topo.Server("a:8080")
	want := []PhysicalDisk{{ID: 1, MaxVolumes: 8, Volumes: 1, EcShards: 3}, {ID: 3, MaxVolumes: 6, Volumes: 2}}
	if got := a.Disks["ssd"].Physical; !reflect.DeepEqual(got, want) {
		t.Errorf("a's ssd disks %+v; want %+v", got, want)
	}
	if got := a.Disks[""].Physical; !reflect.DeepEqual(got, []PhysicalDisk{{ID: 0, MaxVolumes: 10, Volumes: 1}}) {
		t.Errorf("a's hdd disks %+v", got)
	}
	b, _ := topo.Server("b:8080")
	if got := b.Disks[""].Physical; got != nil {
		t.Errorf("b's hdd disks %+v without max_volume_count_by_disk; want none listed", got)
	}
}
