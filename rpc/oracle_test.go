package rpc

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const oracleMiB = 1 << 20

// fixedTopology is a TopologySource that answers one topology.
type fixedTopology struct {
	mu   sync.Mutex
	topo *seaweed.Topology
	at   time.Time
}

func (f *fixedTopology) Latest() (*seaweed.Topology, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.topo, f.at
}

// oracleTopology: volume 7 (size7, 30 MiB garbage) on s1 and s2, volume 8
// (50 MiB) on s1, an empty s3.
func oracleTopology(size7 uint64) *fixedTopology {
	vi := func(id uint32, size, deleted uint64) *master_pb.VolumeInformationMessage {
		return &master_pb.VolumeInformationMessage{Id: id, Size: size, DeletedByteCount: deleted, Collection: "c"}
	}
	dn := func(id string, vols ...*master_pb.VolumeInformationMessage) *master_pb.DataNodeInfo {
		return &master_pb.DataNodeInfo{Id: id, Address: id, DiskInfos: map[string]*master_pb.DiskInfo{"": {
			MaxVolumeCount: 10, VolumeCount: int64(len(vols)), FreeVolumeCount: 10 - int64(len(vols)), VolumeInfos: vols,
		}}}
	}
	resp := &master_pb.VolumeListResponse{VolumeSizeLimitMb: 1000, TopologyInfo: &master_pb.TopologyInfo{
		DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: []*master_pb.DataNodeInfo{
			dn("10.0.0.1:8080", vi(7, size7, 30*oracleMiB), vi(8, 50*oracleMiB, 0)),
			dn("10.0.0.2:8080", vi(7, size7, 30*oracleMiB)),
			dn("10.0.0.3:8080"),
		}}}}},
	}}
	return &fixedTopology{topo: seaweed.FromVolumeList(resp), at: time.Now()}
}

func oracle(n *adminNode) pb.CapacityOracleClient { return pb.NewCapacityOracleClient(n.conn) }

func volumeCapacity(t testing.TB, n *adminNode, cons pb.Consistency, ids ...uint32) (*pb.GetVolumeCapacityResponse, error) {
	t.Helper()
	return call(t, func(ctx context.Context) (*pb.GetVolumeCapacityResponse, error) {
		return oracle(n).GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: ids, Consistency: cons})
	})
}

func TestOracleValidation(t *testing.T) {
	c := newCluster(t)
	leader := c.waitLeader()
	follower := c.nodes[c.followers(leader)[0]]

	// No master configured: one sentence, FailedPrecondition, on any node.
	for _, n := range []*adminNode{c.nodes[leader], follower} {
		_, err := volumeCapacity(t, n, pb.Consistency_CONSISTENCY_STALE, 7)
		wantCode(t, "volumes without a master", err, codes.FailedPrecondition)
		_, err = oracle(n).GetServerCapacity(context.Background(), &pb.GetServerCapacityRequest{Servers: []string{"10.0.0.1:8080"}})
		wantCode(t, "servers without a master", err, codes.FailedPrecondition)
	}
	// A master configured but not answered yet: retry shortly.
	follower.server.SetTopology(&fixedTopology{})
	_, err := oracle(follower).GetVolumeCapacity(context.Background(), &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7}, Consistency: pb.Consistency_CONSISTENCY_STALE})
	wantCode(t, "before the first poll", err, codes.Unavailable)

	for _, n := range c.nodes {
		n.server.SetTopology(oracleTopology(100 * oracleMiB))
	}
	tooMany := make([]uint32, MaxOracleIDs+1)
	for i := range tooMany {
		tooMany[i] = uint32(i + 1)
	}
	vols := []struct {
		name string
		req  *pb.GetVolumeCapacityRequest
		msg  string
	}{
		{"no ids", &pb.GetVolumeCapacityRequest{}, "no volume ids"},
		{"id 0", &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7, 0}}, "greater than 0"},
		{"too many ids", &pb.GetVolumeCapacityRequest{VolumeIds: tooMany}, "at most 10000"},
		{"bad consistency", &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7}, Consistency: 9}, "unknown consistency 9"},
		{"unknown volume", &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7, 99}, Consistency: pb.Consistency_CONSISTENCY_STALE}, "volume 99 is not in the master's topology"},
		{"unknown volume linearizable", &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{99}}, "volume 99 is not in the master's topology"},
		{"unknown volumes", &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{99, 98, 7}, Consistency: pb.Consistency_CONSISTENCY_STALE}, "volumes 99, 98 are not"},
	}
	for _, n := range []*adminNode{c.nodes[leader], follower} {
		for _, tc := range vols {
			_, err := call(t, func(ctx context.Context) (*pb.GetVolumeCapacityResponse, error) {
				return oracle(n).GetVolumeCapacity(ctx, tc.req)
			})
			wantCode(t, n.id+": "+tc.name, err, codes.InvalidArgument)
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.msg) {
				t.Errorf("%s: %s: message %q does not say %q", n.id, tc.name, msg, tc.msg)
			}
		}
	}
	servers := []struct {
		name string
		req  *pb.GetServerCapacityRequest
		msg  string
	}{
		{"no servers", &pb.GetServerCapacityRequest{}, "no servers"},
		{"empty name", &pb.GetServerCapacityRequest{Servers: []string{"10.0.0.1:8080", ""}}, "empty"},
		{"bad consistency", &pb.GetServerCapacityRequest{Servers: []string{"10.0.0.1:8080"}, Consistency: 5}, "unknown consistency 5"},
		{"unknown server", &pb.GetServerCapacityRequest{Servers: []string{"10.9.9.9:8080"}}, "server 10.9.9.9:8080 is not in the master's topology"},
	}
	for _, tc := range servers {
		_, err := call(t, func(ctx context.Context) (*pb.GetServerCapacityResponse, error) {
			return oracle(follower).GetServerCapacity(ctx, tc.req)
		})
		wantCode(t, tc.name, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: message %q does not say %q", tc.name, msg, tc.msg)
		}
	}
}

// splitMasterViews waits for a leader and gives it a master cache saying
// 100 MiB for volume 7, the followers one (polled at another moment) saying
// 90 MiB: which node answered shows in master_size. It returns the leader
// and the followers.
func (c *testCluster) splitMasterViews() (leader int, followers []int) {
	leader = c.waitLeader()
	followers = c.followers(leader)
	c.nodes[leader].server.SetTopology(oracleTopology(100 * oracleMiB))
	for _, i := range followers {
		c.nodes[i].server.SetTopology(oracleTopology(90 * oracleMiB))
	}
	return leader, followers
}

func TestOracleStaleAndLinearizable(t *testing.T) {
	c := newCluster(t)
	leader, fs := c.splitMasterViews()
	sub, err := submit(t, c.nodes[fs[0]], fsmpb.TaskType_TASK_TYPE_VACUUM, 7)
	if err != nil {
		t.Fatal(err)
	}

	// LINEARIZABLE (and the default) through a follower is the leader's
	// answer, and already shows the task just submitted.
	for _, cons := range []pb.Consistency{pb.Consistency_CONSISTENCY_LINEARIZABLE, pb.Consistency_CONSISTENCY_UNSPECIFIED} {
		for _, i := range []int{fs[1], leader, fs[0]} {
			resp, err := volumeCapacity(t, c.nodes[i], cons, 7, 8)
			if err != nil {
				t.Fatalf("%s through %s: %v", cons, c.nodes[i].id, err)
			}
			if resp.AppliedIndex < sub.Index {
				t.Errorf("%s through %s: applied index %d before the submit's %d", cons, c.nodes[i].id, resp.AppliedIndex, sub.Index)
			}
			if len(resp.Volumes) != 2 {
				t.Fatalf("%s through %s: %d volumes", cons, c.nodes[i].id, len(resp.Volumes))
			}
			v7, v8 := resp.Volumes[0], resp.Volumes[1]
			if v7.VolumeId != 7 || v7.MasterSize != 100*oracleMiB || v7.ProjectedSize != 70*oracleMiB || v7.DeletedBytes != 30*oracleMiB || v7.Collection != "c" {
				t.Errorf("%s through %s: volume 7 = %v, want the leader's 100 MiB projected to 70 MiB", cons, c.nodes[i].id, v7)
			}
			if len(v7.Adjustments) != 1 || v7.Adjustments[0].TaskId != sub.Task.Id || v7.Adjustments[0].Kind != pb.Adjustment_IN_PROGRESS ||
				v7.Adjustments[0].DeltaBytes != -30*oracleMiB || v7.Adjustments[0].Type != fsmpb.TaskType_TASK_TYPE_VACUUM {
				t.Errorf("%s through %s: adjustments %v", cons, c.nodes[i].id, v7.Adjustments)
			}
			if v8.VolumeId != 8 || v8.MasterSize != 50*oracleMiB || v8.ProjectedSize != 50*oracleMiB || len(v8.Adjustments) != 0 {
				t.Errorf("%s through %s: volume 8 = %v", cons, c.nodes[i].id, v8)
			}
		}
	}

	// STALE is answered by the node itself, from its own topology and state,
	// with its own applied index.
	for _, i := range fs {
		n := c.nodes[i]
		waitFor(t, n.id+" to apply the submit", func() bool {
			var idx uint64
			n.fsm.Read(func(st *fsm.State) { idx = st.AppliedIndex() })
			return idx >= sub.Index
		})
		resp, err := volumeCapacity(t, n, pb.Consistency_CONSISTENCY_STALE, 7)
		if err != nil {
			t.Fatal(err)
		}
		v7 := resp.Volumes[0]
		if v7.MasterSize != 90*oracleMiB || v7.ProjectedSize != 60*oracleMiB || len(v7.Adjustments) != 1 {
			t.Errorf("STALE through %s: %v, want its own 90 MiB projected to 60 MiB", n.id, v7)
		}
		if resp.AppliedIndex < sub.Index {
			t.Errorf("STALE through %s: applied index %d", n.id, resp.AppliedIndex)
		}
	}

	// Servers: through a follower, linearizable is the leader's view.
	resp, err := call(t, func(ctx context.Context) (*pb.GetServerCapacityResponse, error) {
		return oracle(c.nodes[fs[0]]).GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Servers) != 3 || resp.AppliedIndex < sub.Index {
		t.Fatalf("servers: %v", resp)
	}
	d := resp.Servers[0].Disks[0]
	if resp.Servers[0].Server != "10.0.0.1:8080" || d.MaxSlots != 10 || d.Master.UsedSlots != 2 || d.Master.FreeSlots != 8 ||
		d.Master.VolumeBytes != 150*oracleMiB || d.Projected.VolumeBytes != 120*oracleMiB || d.Projected.FreeSlots != 8 {
		t.Errorf("server 1: %v", resp.Servers[0])
	}

	// With the other two nodes gone there is no leader: STALE still answers
	// from the survivor's state; LINEARIZABLE cannot.
	survivor := c.nodes[fs[1]]
	for i, n := range c.nodes {
		if i != fs[1] {
			if err := n.stop(); err != nil {
				t.Logf("stop %s: %v", n.id, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stale, err := oracle(survivor).GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7}, Consistency: pb.Consistency_CONSISTENCY_STALE})
	if err != nil || stale.Volumes[0].ProjectedSize != 60*oracleMiB {
		t.Fatalf("STALE without a quorum: %v, %v", stale, err)
	}
	_, err = oracle(survivor).GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7}, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("LINEARIZABLE without a quorum: %v, want Unavailable", err)
	}
}
