package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestECShardsKeepDiskType: on volume servers with an hdd and an ssd disk
// (-dir a,b -disk hdd,ssd: the ssd is location 1), an ssd volume's EC
// shards copied to servers that hold none of them yet land on their ssd
// disks. Left to choose (VolumeEcShardsCopy without disk_id), SeaweedFS
// puts such a copy on "any hdd disk", and the shards left their disk
// type. The plan names the disk; a server whose only ssd disk is location
// 0 beside an hdd one (-disk ssd,hdd), which no disk_id can name, is given
// no shard to copy. Then an ec_balance moves a shard to a server that holds
// none yet but a stale file of that very shard on its hdd (a copy cut
// short): the stale file is deleted first (SeaweedFS would mount it, from
// the lowest disk with the file) and the shard lands on ssd too. Every file
// reads back from the shards.
func TestECShardsKeepDiskType(t *testing.T) {
	t.Parallel() // its own SeaweedFS cluster
	specs := []volumeSpec{
		{Disks: []string{"hdd", "ssd"}}, {Disks: []string{"hdd", "ssd"}}, {Disks: []string{"hdd", "ssd"}},
		{Disks: []string{"hdd", "ssd"}}, {Disks: []string{"hdd", "ssd"}}, {Disks: []string{"ssd", "hdd"}},
	}
	c := startWeedClusterWith(t, 0, weedOptions{specs: specs})
	ssdFirst := c.servers[len(c.servers)-1]
	const collection = "ssdec"
	a, vid := c.assignTo(t, time.Minute, assignTarget{Collection: collection, Disk: "ssd"}, 30, 32<<10)
	files := c.writeAssigned(t, a, vid, 30, 32<<10, 7)
	topo := c.waitTopology(t, "the master to list the ssd volume's files", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 30, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	if placement.DiskTypeKey(v.DiskType) != "ssd" {
		t.Fatalf("set-up: volume %d is on disk type %q, want ssd", vid, v.DiskType)
	}
	for _, s := range topo.Servers {
		if d := placement.Disk(s, "ssd"); d == nil || len(d.Physical) != 1 {
			t.Fatalf("set-up: server %s's ssd disks as the master lists them: %+v", s.ID, d)
		}
	}
	task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: collection, Attempt: 1, Fence: 2}
	spec, err := scheduler.PlanSpec(task, topo, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	source := spec.GetReplicas()[0]
	// One server of both types is kept free of shards for the ec_balance
	// below: its planned shards go to the source.
	var spare *volumeServer
	for _, s := range c.servers[:len(c.servers)-1] {
		if s.Addr != source {
			spare = s
			break
		}
	}
	for _, st := range spec.GetShardTargets() {
		if st.GetServer() == spare.Addr {
			st.Server = source
		}
	}
	for _, st := range spec.GetShardTargets() {
		if st.GetServer() == source {
			continue
		}
		if st.GetServer() == ssdFirst.Addr {
			t.Fatalf("shard %d planned onto %s, whose only ssd disk is location 0 beside an hdd", st.GetShardId(), ssdFirst.Addr)
		}
		if d := spec.GetShardDisks()[st.GetServer()]; d != 1 {
			t.Fatalf("a copy to %s names disk %d, want its ssd disk 1 (shard disks %v)", st.GetServer(), d, spec.GetShardDisks())
		}
	}
	t.Logf("volume %d (ssd) on %s; shards over %v on disks %v", vid, source, spec.GetShardTargets(), spec.GetShardDisks())
	ctx, cancel := execCtx(t)
	defer cancel()
	executeSteps(ctx, t, worker.NewECExecutor(c.vc), spec, "erasure coding an ssd volume",
		[]string{worker.StepEcPrepare, worker.StepEcFreeze, worker.StepEcGenerate, worker.StepEcMount, worker.StepEcSpread, worker.StepEcVerify, worker.StepEcDelete, "done"})
	c.waitTopology(t, "the master to list the 14 shards, all on ssd disks", func(topo *seaweed.Topology) (bool, string) {
		e := topo.EcVolumes[vid]
		if e == nil || e.ShardCount() != seaweed.EcTotalShards || topo.Volumes[vid] != nil {
			return false, fmt.Sprintf("EC volume %+v, regular volume on %v", e, holders(topo, vid))
		}
		onSSD := 0
		for _, s := range topo.Servers {
			if d := placement.Disk(s, ""); d != nil && d.EcShards > 0 {
				return false, fmt.Sprintf("server %s holds %d EC shards on its hdd disk", s.ID, d.EcShards)
			}
			if d := placement.Disk(s, "ssd"); d != nil {
				onSSD += d.EcShards
			}
		}
		return onSSD == seaweed.EcTotalShards, fmt.Sprintf("%d shards listed on ssd disks", onSSD)
	})

	// A stale copy of shard 1 on the spare server's hdd, unmounted.
	const moved = 1
	topo, err = c.topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := topo.EcVolumes[vid].Shards[moved]
	if len(from) != 1 {
		t.Fatalf("set-up: shard %d on %v", moved, from)
	}
	holder, _ := topo.Server(from[0])
	if err := c.vc.VolumeEcShardsCopy(ctx, spare.Addr, vid, collection, []uint32{moved}, holder.Addr.String(), 0); err != nil {
		t.Fatalf("set-up: a stale copy of shard %d on %s: %v", moved, spare.Addr, err)
	}
	bt := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_BALANCE, VolumeId: vid, Collection: collection, Source: from[0], Target: spare.HTTP,
		Params: []*fsmpb.Param{{Key: placement.ShardParam, Value: fmt.Sprint(moved)}}, Attempt: 1, Fence: 3}
	bspec, err := scheduler.PlanSpec(bt, topo, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec of the ec_balance: %v", err)
	}
	if d := bspec.GetShardDisks()[spare.Addr]; d != 1 {
		t.Fatalf("the move to %s names disk %d; want its ssd disk 1", spare.Addr, d)
	}
	executeSteps(ctx, t, worker.NewECBalanceExecutor(c.vc), bspec, "ec balance onto an ssd disk",
		[]string{worker.StepECBalancePrepare, worker.StepECBalanceCopy, worker.StepECBalanceMount, worker.StepECBalanceVerify, worker.StepECBalanceRemove, "done"})
	c.waitTopology(t, fmt.Sprintf("the master to list shard %d on %s only, every shard on ssd", moved, spare.HTTP), func(topo *seaweed.Topology) (bool, string) {
		e := topo.EcVolumes[vid]
		if e == nil || e.ShardCount() != seaweed.EcTotalShards || len(e.Shards[moved]) != 1 || e.Shards[moved][0] != spare.HTTP {
			return false, fmt.Sprintf("EC volume %+v", e)
		}
		for _, s := range topo.Servers {
			if d := placement.Disk(s, ""); d != nil && d.EcShards > 0 {
				return false, fmt.Sprintf("server %s holds %d EC shards on its hdd disk", s.ID, d.EcShards)
			}
		}
		return true, ""
	})
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.HTTP)
	}
	c.checkFiles(t, files, urls...)
}
