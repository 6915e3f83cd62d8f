package sim

import (
	"testing"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestCloudTieredVolume: a volume created cloud-tiered is reported by the
// master with its remote storage name and key on every replica, also after
// it is marked read-only, and the topology keeps the name.
func TestCloudTieredVolume(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, MaxVolumesPerServer: 10, VolumeSizeLimitMB: 1000})
	m := must[uint32](t)
	m(c.AddVolume(VolumeSpec{ID: 1, Size: mib, ReplicaPlacement: 1, Servers: []int{0, 1}, RemoteStorageName: "s3.cold", RemoteStorageKey: "k1"}))
	m(c.AddVolume(VolumeSpec{ID: 2, Size: mib, Servers: []int{0}}))
	must[*volume_server_pb.VolumeMarkReadonlyResponse](t)(vsClient(t, c.Server(0)).VolumeMarkReadonly(ctxT(t), &volume_server_pb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	mc := masterClient(t, c)
	resp := must[*master_pb.VolumeListResponse](t)(mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{}))
	seen := 0
	for _, dc := range resp.TopologyInfo.DataCenterInfos {
		for _, rack := range dc.RackInfos {
			for _, dn := range rack.DataNodeInfos {
				for _, vi := range dn.DiskInfos[""].VolumeInfos {
					want := map[uint32][2]string{1: {"s3.cold", "k1"}, 2: {}}[vi.Id]
					if vi.RemoteStorageName != want[0] || vi.RemoteStorageKey != want[1] {
						t.Errorf("%s: volume %d remote %q/%q, want %q/%q", dn.Id, vi.Id, vi.RemoteStorageName, vi.RemoteStorageKey, want[0], want[1])
					}
					seen++
				}
			}
		}
	}
	if seen != 3 {
		t.Fatalf("%d replicas listed, want 3", seen)
	}
	topo := seaweed.FromVolumeList(resp)
	if v := topo.Volumes[1]; !v.CloudTiered() || v.RemoteStorage != "s3.cold" {
		t.Errorf("volume 1: RemoteStorage %q, want s3.cold", v.RemoteStorage)
	}
	if topo.Volumes[2].CloudTiered() {
		t.Error("volume 2 is local, the topology says cloud-tiered")
	}
}
