package rpc

import (
	"strings"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestSubmitCloudTieredRefused: a manual submit of any type for a volume
// the master lists with a remote storage is refused in one sentence saying
// it is cloud-tiered; a local volume beside it is accepted.
func TestSubmitCloudTieredRefused(t *testing.T) {
	c := newCluster(t)
	leader := c.nodes[c.waitLeader()]
	resp := &master_pb.VolumeListResponse{VolumeSizeLimitMb: 1000, TopologyInfo: &master_pb.TopologyInfo{
		DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: []*master_pb.DataNodeInfo{
			{Id: "10.0.0.1:8080", Address: "10.0.0.1:8080", DiskInfos: map[string]*master_pb.DiskInfo{"": {MaxVolumeCount: 10, VolumeCount: 2, FreeVolumeCount: 8,
				VolumeInfos: []*master_pb.VolumeInformationMessage{
					{Id: 7, Size: 100, DeletedByteCount: 90, RemoteStorageName: "s3.cold", RemoteStorageKey: "7.dat"},
					{Id: 8, Size: 100, DeletedByteCount: 90},
				}}}},
		}}}}},
	}}
	leader.server.SetTopology(&fixedTopology{topo: seaweed.FromVolumeList(resp), at: time.Now()})
	for _, typ := range []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE} {
		_, err := submit(t, leader, typ, 7)
		wantCode(t, "submit for a cloud-tiered volume", err, codes.FailedPrecondition)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "volume 7 is cloud-tiered") || !strings.Contains(msg, "s3.cold") {
			t.Errorf("%s: refusal %q does not say volume 7 is cloud-tiered in s3.cold", typ, msg)
		}
	}
	if _, err := submit(t, leader, fsmpb.TaskType_TASK_TYPE_VACUUM, 8); err != nil {
		t.Errorf("submit for a local volume: %v", err)
	}
}
