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

// TestECBalanceSkipsUnreachableServers: a server whose only ssd disk is
// location 0 beside an hdd one cannot receive a copied ssd shard, so the
// servers' ssd shard counts are evened without it: no move targets it,
// and its low count does not keep the others moving once they are even.
func TestECBalanceSkipsUnreachableServers(t *testing.T) {
	nodes := []*node{}
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, srv(sid(i), 20).WithDisk("ssd", 20))
	}
	// Volumes 20..24: shards 0-13 round-robin over servers 1-5 from a
	// different server each (the fifth again from the first), so every
	// volume holds 3 or 2 shards per server and the servers 15, 14, 14,
	// 14, 13: within a skew of 2, though 2 apart.
	for i, vid := range []uint32{20, 21, 22, 23, 24} {
		start := []int{0, 4, 3, 2, 0}[i]
		for sh := uint32(0); sh < 14; sh++ {
			nodes[(start+int(sh))%5].Shards(vid, sh)
		}
	}
	nodes = append(nodes, srv(sid(6), 20).WithDisk("ssd", 20))
	topo := build(100, nodes...)
	for _, e := range topo.EcVolumes {
		e.DiskType = "ssd"
	}
	for _, s := range topo.Servers {
		hdd, ssd := uint32(0), uint32(1)
		if s.ID == sid(6) {
			hdd, ssd = 1, 0
		}
		s.Disks[""].Physical = []seaweed.PhysicalDisk{{ID: hdd, MaxVolumes: 20}}
		s.Disks["ssd"].Physical = []seaweed.PhysicalDisk{{ID: ssd, MaxVolumes: 20}}
	}
	th := DefaultThresholds()
	th.ECBalanceSkew = 2
	for _, p := range DetectECBalance(topo, idle, nil, th) {
		t.Errorf("proposed %s", p.Reason)
	}
}
