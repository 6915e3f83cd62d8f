package scheduler

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestECPlansNameShardDisks: on servers with an hdd disk (location 0) and
// an ssd one (location 1), an ssd volume's encode copies its shards to
// each target's ssd disk (spec.shard_disks), and never plans shards onto a
// server whose only ssd disk is location 0 beside an hdd one (no disk id
// can name it, and left to choose SeaweedFS picks the hdd). A server that
// holds shards of the volume already is left to choose: the disk beside
// them.
func TestECPlansNameShardDisks(t *testing.T) {
	const mib = 1 << 20
	nodes := []*node{srv(sid(1), 10).WithDisk("ssd", 10, v(7, 95*mib).In("c")).Shards(9, 0, 1)}
	for i := 2; i <= 6; i++ {
		nodes = append(nodes, srv(sid(i), 10).WithDisk("ssd", 10))
	}
	topo := build(100, nodes...)
	for _, s := range topo.Servers {
		hdd, ssd := uint32(0), uint32(1)
		if s.ID == sid(6) {
			hdd, ssd = 1, 0 // -disk ssd,hdd
		}
		s.Disks[""].Physical = []seaweed.PhysicalDisk{{ID: hdd, MaxVolumes: 10}}
		s.Disks["ssd"].Physical = []seaweed.PhysicalDisk{{ID: ssd, MaxVolumes: 10, Volumes: s.Disks["ssd"].VolumeCount}}
	}
	spec, err := PlanSpec(&fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 7, Collection: "c", Attempt: 1}, topo, DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	source := spec.GetReplicas()[0]
	targets := map[string]bool{}
	for _, st := range spec.GetShardTargets() {
		targets[st.GetServer()] = true
		if st.GetServer() == swa(6) {
			t.Fatalf("shard %d planned onto %s, whose only ssd disk is location 0", st.GetShardId(), swa(6))
		}
		if st.GetServer() != source && spec.GetShardDisks()[st.GetServer()] != 1 {
			t.Fatalf("a copy to %s names disk %d; want its ssd disk 1 (%v)", st.GetServer(), spec.GetShardDisks()[st.GetServer()], spec.GetShardDisks())
		}
	}
	if len(targets) < 4 {
		t.Fatalf("shards over %d servers: %v", len(targets), spec.GetShardTargets())
	}

	// Server 1 holds shards of volume 9: a copy of more of them there names
	// no disk; one to server 3, holding none, names its ssd disk.
	spec9 := &pb.TaskSpec{Task: &fsmpb.Task{VolumeId: 9}, DiskType: "ssd", Rebuilder: swa(1),
		ShardTargets: []*fsmpb.ShardPlacement{{ShardId: 2, Server: swa(1)}, {ShardId: 3, Server: swa(3)}, {ShardId: 4, Server: swa(6)}}}
	fillShardDisks(spec9, topo)
	if got := spec9.GetShardDisks(); len(got) != 1 || got[swa(3)] != 1 {
		t.Fatalf("shard disks %v; want only %s on disk 1", got, swa(3))
	}
}
