package sim

import (
	"net"
	"strings"
	"testing"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

func TestTopologyRoundTrip(t *testing.T) {
	c := newCluster(t, Config{Servers: 4, RacksPerDataCenter: 2, MaxVolumesPerServer: 10, VolumeSizeLimitMB: 1000})
	m := must[uint32](t)
	m(c.AddVolume(VolumeSpec{ID: 1, Collection: "c", Size: 100 * mib, FileCount: 10, DeleteCount: 2,
		DeletedBytes: 10 * mib, ReplicaPlacement: 1, ModifiedAt: 1700000000, Servers: []int{0, 1}}))
	m(c.AddVolume(VolumeSpec{ID: 2, ReadOnly: true, Servers: []int{2}}))
	ids := must[[]uint32](t)(c.AddVolumes(3, VolumeSpec{Size: mib}))
	if len(ids) != 3 || ids[0] != 3 || ids[2] != 5 {
		t.Fatalf("AddVolumes ids %v, want 3..5", ids)
	}
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 9, Collection: "ec", Size: 1000 * mib, Shards: map[int][]uint32{
		0: {0, 1, 2, 3, 4}, 1: {5, 6, 7, 8, 9}, 2: {10, 11, 12, 13}}}))
	ok(t, c.AddEcVolume(EcVolumeSpec{ID: 10, Shards: map[int][]uint32{3: {0, 1}}, Unmounted: true}))

	mc := masterClient(t, c)
	resp := must[*master_pb.VolumeListResponse](t)(mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{}))
	if resp.TopologyInfo.Id != "topo" || resp.VolumeSizeLimitMb != 1000 {
		t.Fatalf("topology id %q, limit %d", resp.TopologyInfo.Id, resp.VolumeSizeLimitMb)
	}
	if n := len(resp.TopologyInfo.DataCenterInfos); n != 1 || len(resp.TopologyInfo.DataCenterInfos[0].RackInfos) != 2 {
		t.Fatalf("want 1 data center with 2 racks, got %v", resp.TopologyInfo)
	}
	if got := resp.TopologyInfo.DiskInfos[""].MaxVolumeCount; got != 40 {
		t.Fatalf("topology max volumes %d, want 40", got)
	}
	for _, rack := range resp.TopologyInfo.DataCenterInfos[0].RackInfos {
		for _, dn := range rack.DataNodeInfos {
			s, found := c.ServerByAddress(dn.Address)
			if !found || dn.Id != s.ID() || int(dn.GrpcPort) != s.grpcPort {
				t.Fatalf("data node %v does not match a server", dn)
			}
			if _, hdd := dn.DiskInfos[""]; !hdd || len(dn.DiskInfos) != 1 {
				t.Fatalf("data node %s disk infos %v, want one keyed by \"\"", dn.Id, dn.DiskInfos)
			}
		}
	}

	topo := seaweed.FromVolumeList(resp)
	if len(topo.Servers) != 4 || topo.VolumeSizeLimit != 1000*mib {
		t.Fatalf("%d servers, limit %d", len(topo.Servers), topo.VolumeSizeLimit)
	}
	wantVols := map[int]int64{0: 2, 1: 2, 2: 2, 3: 0} // 1@{0,1}, 2@2, 3..5 round-robin from 0
	wantShards := map[int]int{0: 5, 1: 5, 2: 4, 3: 0}
	for i, s := range c.Servers() {
		ts, found := topo.Server(s.ID())
		if !found {
			t.Fatalf("server %s missing from topology", s.ID())
		}
		if ts.Addr.HTTP != s.ID() || ts.Addr.GRPC != s.GRPCAddress() {
			t.Fatalf("server %s addr %+v, want grpc %s", s.ID(), ts.Addr, s.GRPCAddress())
		}
		if ts.DataCenter != "DefaultDataCenter" || ts.Rack != []string{"rack1", "rack2"}[i%2] {
			t.Fatalf("server %d placed in %s/%s", i, ts.DataCenter, ts.Rack)
		}
		d := ts.Disks[""]
		if d == nil || d.MaxVolumes != 10 || d.VolumeCount != wantVols[i] || d.EcShards != wantShards[i] {
			t.Fatalf("server %d disk %+v, want %d volumes, %d shards", i, d, wantVols[i], wantShards[i])
		}
		if want := 10 - wantVols[i] - int64((wantShards[i]+9)/10); d.FreeSlots != want {
			t.Fatalf("server %d free %d, want %d", i, d.FreeSlots, want)
		}
		// Both SeaweedFS address forms resolve to the real gRPC port.
		for _, form := range []string{s.ID(), s.Address().String()} {
			a := must[seaweed.Address](t)(seaweed.ParseAddress(form))
			if a.GRPC != s.GRPCAddress() {
				t.Fatalf("%q parses to gRPC %s, want %s", form, a.GRPC, s.GRPCAddress())
			}
		}
	}
	v1 := topo.Volumes[1]
	if v1 == nil || len(v1.Replicas) != 2 {
		t.Fatalf("volume 1 replicas %+v", v1)
	}
	holders := map[string]bool{v1.Replicas[0].Server.ID: true, v1.Replicas[1].Server.ID: true}
	if !holders[c.Server(0).ID()] || !holders[c.Server(1).ID()] {
		t.Fatalf("volume 1 on %v, want servers 0 and 1", holders)
	}
	if v1.Collection != "c" || v1.Size != 100*mib || v1.DeletedBytes != 10*mib || v1.FileCount != 10 || v1.DeleteCount != 2 ||
		v1.ReplicaPlacement != 1 || v1.ModifiedAt != 1700000000 || v1.ReadOnly {
		t.Fatalf("volume 1 %+v", v1)
	}
	if !topo.Volumes[2].ReadOnly || len(topo.Volumes) != 5 {
		t.Fatalf("volumes %v", topo.Volumes)
	}
	ec := topo.EcVolumes[9]
	if ec == nil || ec.ShardCount() != 14 || ec.Collection != "ec" {
		t.Fatalf("ec volume 9 %+v", ec)
	}
	for sh, want := range map[uint32]int{0: 0, 4: 0, 5: 1, 9: 1, 10: 2, 13: 2} {
		if got := ec.Shards[sh]; len(got) != 1 || got[0] != c.Server(want).ID() {
			t.Fatalf("shard %d on %v, want server %d", sh, got, want)
		}
	}
	if _, found := topo.EcVolumes[10]; found {
		t.Fatal("unmounted EC shards must not be reported")
	}
	// Per-shard sizes follow the set bits.
	for _, dn := range resp.TopologyInfo.DataCenterInfos[0].RackInfos[0].DataNodeInfos {
		for _, e := range dn.DiskInfos[""].EcShardInfos {
			if len(e.ShardSizes) == 0 || e.ShardSizes[0] != 100*mib || e.EncodeTsNs == 0 {
				t.Fatalf("ec shard info %v", e)
			}
		}
	}
}

func TestVolumeListFilters(t *testing.T) {
	c := newCluster(t, Config{Servers: 2})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Collection: "a", Servers: []int{0}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Servers: []int{1}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 3, Collection: "a", Servers: []int{1}}))
	mc := masterClient(t, c)
	list := func(req *master_pb.VolumeListRequest) *seaweed.Topology {
		resp := must[*master_pb.VolumeListResponse](t)(mc.VolumeList(ctxT(t), req))
		return seaweed.FromVolumeList(resp)
	}
	if got := list(&master_pb.VolumeListRequest{Collection: "a"}); len(got.Volumes) != 2 || got.Volumes[2] != nil {
		t.Fatalf("collection filter: %v", got.Volumes)
	}
	if got := list(&master_pb.VolumeListRequest{DefaultCollectionOnly: true}); len(got.Volumes) != 1 || got.Volumes[2] == nil {
		t.Fatalf("default collection filter: %v", got.Volumes)
	}
	if got := list(&master_pb.VolumeListRequest{VolumeIds: []uint32{3}}); len(got.Volumes) != 1 || got.Volumes[3] == nil {
		t.Fatalf("id filter: %v", got.Volumes)
	}
	got := list(&master_pb.VolumeListRequest{TopologyOnly: true})
	s1, _ := got.Server(c.Server(1).ID())
	if len(got.Volumes) != 0 || len(got.Servers) != 2 || s1.Disks[""].VolumeCount != 2 {
		t.Fatalf("topology only: %v, %+v", got.Volumes, s1.Disks[""])
	}
	_, err := mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{TopologyOnly: true, Collection: "a"})
	wantErr(t, err, codes.InvalidArgument, "topology_only")
}

func TestAddVolumesPlacement(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, MaxVolumesPerServer: 4})
	ids := must[[]uint32](t)(c.AddVolumes(6, VolumeSpec{ReplicaPlacement: 1}))
	if len(ids) != 6 {
		t.Fatal(ids)
	}
	for _, s := range c.Servers() {
		if n := len(s.Volumes()); n != 4 {
			t.Fatalf("server %s has %d volumes, want 4 (12 replicas over 3 servers)", s.ID(), n)
		}
	}
	if _, err := c.AddVolumes(1, VolumeSpec{}); err == nil {
		t.Fatal("placing into a full cluster must fail")
	}
	if _, err := c.AddVolume(VolumeSpec{ID: 1, Servers: []int{0}}); err == nil {
		t.Fatal("a duplicate id must fail")
	}
	if _, err := c.AddVolume(VolumeSpec{ReplicaPlacement: 100, Servers: nil}); err == nil {
		t.Fatal("no room anywhere must fail")
	}
}

// TestDistinctHosts: with DistinctHosts every volume server is its own
// machine (address host) in the master's topology, and still answers.
func TestDistinctHosts(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, DataCenters: 2, RacksPerDataCenter: 2, DistinctHosts: true})
	mc := masterClient(t, c)
	resp := must[*master_pb.VolumeListResponse](t)(mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{}))
	hosts := map[string]bool{}
	racks := map[string]bool{}
	for _, dc := range resp.TopologyInfo.DataCenterInfos {
		for _, rack := range dc.RackInfos {
			for _, dn := range rack.DataNodeInfos {
				host, _, err := net.SplitHostPort(dn.Address)
				if err != nil {
					t.Fatalf("data node address %q: %v", dn.Address, err)
				}
				hosts[host] = true
				racks[dc.Id+"/"+rack.Id] = true
			}
		}
	}
	if len(hosts) != 3 || len(racks) != 3 {
		t.Fatalf("hosts %v racks %v: want 3 servers on 3 machines in 3 racks", hosts, racks)
	}
}

// TestDiskTypesPerServer: with DiskTypes the servers alternate disk types
// in the master's topology, and a copy lands only on a server of the disk
// type it asks for ("" and "hdd" being one type).
func TestDiskTypesPerServer(t *testing.T) {
	c := newCluster(t, Config{Servers: 4, DiskTypes: []string{"", "ssd"}})
	m := must[uint32](t)
	m(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{1}}))
	m(c.AddVolume(VolumeSpec{ID: 2, Size: mib, Servers: []int{0}}))
	mc := masterClient(t, c)
	resp := must[*master_pb.VolumeListResponse](t)(mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{}))
	topo := seaweed.FromVolumeList(resp)
	for i, want := range []string{"", "ssd", "", "ssd"} {
		s, ok := topo.Server(c.Server(i).ID())
		if _, has := s.Disks[want]; !ok || !has || len(s.Disks) != 1 {
			t.Fatalf("server %d disks %v, want one %q disk", i, s.Disks, want)
		}
	}
	if v := topo.Volumes[1]; v == nil || v.DiskType != "ssd" {
		t.Fatalf("volume 1 %+v, want disk type ssd", v)
	}
	ctx := ctxT(t)
	copyTo := func(server int, vid uint32, diskType string) error {
		st, err := vsClient(t, c.Server(server)).VolumeCopy(ctx, &volume_server_pb.VolumeCopyRequest{VolumeId: vid, SourceDataNode: c.Server(int(vid % 2)).ID(), DiskType: diskType})
		if err != nil {
			return err
		}
		_, err = drain(st.Recv)
		return err
	}
	if err := copyTo(2, 1, "ssd"); err == nil || !strings.Contains(err.Error(), "no space left for disk type ssd") {
		t.Fatalf("ssd copy onto an hdd server: %v, want refused", err)
	}
	if err := copyTo(3, 1, "ssd"); err != nil {
		t.Fatalf("ssd copy onto an ssd server: %v", err)
	}
	if err := copyTo(2, 2, "hdd"); err != nil {
		t.Fatalf("hdd copy onto an hdd server: %v", err)
	}
	if err := copyTo(3, 2, ""); err == nil {
		t.Fatal("hdd copy onto an ssd server accepted")
	}
	// No disk type asked for: the source volume's (SeaweedFS's
	// VolumeCopy takes the source's VolumeFileStatus disk type).
	m(c.AddVolume(VolumeSpec{ID: 3, Size: mib, Servers: []int{1}}))
	if err := copyTo(3, 3, ""); err != nil {
		t.Fatalf("ssd copy asking for no disk type onto an ssd server: %v", err)
	}
	if err := copyTo(2, 3, ""); err == nil {
		t.Fatal("ssd copy asking for no disk type onto an hdd server accepted")
	}
}
