package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestECRebuildExecutor: an erasure-coded volume (files written with
// checksums, some deleted after the encode so that the journal counts)
// loses three shards for good (unmounted and deleted on their servers).
// The planner plans an ec_rebuild from the master's topology and the
// executor restores the 14 shards, each mounted exactly once (the servers
// and the master agree), with no gathered copy left on disk. Then the hard
// way: servers are stopped (and shards unmounted) until 4 shards are
// unavailable, and every file reads back with its checksum through the
// remaining servers: the regenerated shards hold the right bytes.
func TestECRebuildExecutor(t *testing.T) {
	t.Parallel()
	c := startWeedCluster(t, 6)
	const collection = "ecr"
	files := c.writeFiles(t, collection, 40, 32<<10)
	vid, holder := files[0].Vid, files[0].URL
	topo := c.waitTopology(t, "the master to see the writes", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 40, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	servers := c.serverAddrs()
	var layout []*fsmpb.ShardPlacement
	for i := uint32(0); i < seaweed.EcTotalShards; i++ {
		layout = append(layout, &fsmpb.ShardPlacement{ShardId: i, Server: servers[int(i)%len(servers)]})
	}
	ctx, cancel := execCtx(t)
	defer cancel()
	if _, err := worker.NewECExecutor(c.vc).Execute(ctx, &pb.TaskSpec{
		Task:     &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: collection, Attempt: 1},
		Replicas: replicaServers(v), ShardTargets: layout, Size: v.Size,
	}, nil); err != nil {
		t.Fatalf("encode: %v", err)
	}
	waitShards(t, c, vid, seaweed.EcTotalShards)
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.HTTP)
	}
	c.deleteFiles(t, holder, files[:4])
	c.checkFiles(t, files, urls[0])

	// Lose shards 0 and 6 (server 0) and 1 (server 1) for good.
	lost := map[string][]uint32{servers[0]: {0, 6}, servers[1]: {1}}
	for s, ids := range lost {
		if err := c.vc.VolumeEcShardsUnmount(ctx, s, vid, ids); err != nil {
			t.Fatal(err)
		}
		if err := c.vc.VolumeEcShardsDelete(ctx, s, vid, collection, ids); err != nil {
			t.Fatal(err)
		}
	}
	topo = waitShards(t, c, vid, seaweed.EcTotalShards-3)
	losses := scheduler.ECLosses(topo)
	props := scheduler.ECRebuildProposals(topo, nil)
	if len(props) != 1 || props[0].VolumeID != vid {
		t.Fatalf("proposals %+v for losses %+v", props, losses)
	}
	task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: vid, Attempt: 1, Fence: 3}
	spec, err := scheduler.PlanSpec(task, topo, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	t.Logf("rebuilder %s; targets %v", spec.Rebuilder, spec.ShardTargets)
	change, _ := executeSteps(ctx, t, worker.NewECRebuildExecutor(c.vc), spec, "ec rebuild",
		[]string{worker.StepRebuildPrepare, worker.StepRebuildGather, worker.StepRebuildRebuild, worker.StepRebuildMount,
			worker.StepRebuildSpread, worker.StepRebuildVerify, worker.StepRebuildCleanup, "done"})
	if len(change.GetShards()) != 3 || change.GetOldSize() == 0 {
		t.Fatalf("change %v, want the 3 regenerated shards and the volume size", change)
	}

	// Every shard mounted exactly once, where the plan says for the
	// regenerated ones: the servers' answer, then the master's.
	mounted := map[uint32][]string{}
	for _, s := range servers {
		m, err := c.vc.MountedEcShards(ctx, s, vid)
		if err != nil {
			t.Fatal(err)
		}
		for id := range m {
			mounted[id] = append(mounted[id], s)
		}
	}
	for id := uint32(0); id < seaweed.EcTotalShards; id++ {
		if len(mounted[id]) != 1 {
			t.Fatalf("shard %d mounted on %v, want exactly one server", id, mounted[id])
		}
	}
	for _, st := range spec.ShardTargets {
		if mounted[st.ShardId][0] != st.Server {
			t.Fatalf("regenerated shard %d on %s, planned on %s", st.ShardId, mounted[st.ShardId][0], st.Server)
		}
	}
	topo = c.waitTopology(t, "the master to list 14 shards, each once", func(topo *seaweed.Topology) (bool, string) {
		e := topo.EcVolumes[vid]
		if e == nil {
			return false, "no EC volume"
		}
		for id := uint32(0); id < seaweed.EcTotalShards; id++ {
			if len(e.Shards[id]) != 1 {
				return false, fmt.Sprintf("shard %d on %v", id, e.Shards[id])
			}
		}
		return true, ""
	})
	if ls := scheduler.ECLosses(topo); len(ls) != 0 {
		t.Fatalf("losses after the rebuild: %+v", ls)
	}
	// No server keeps a shard file it does not mount (the gathered copies
	// are gone from the rebuilder).
	base := filepath.Dir(c.master.logPath)
	for i, s := range servers {
		paths, err := filepath.Glob(filepath.Join(base, fmt.Sprintf("vol%d", i), fmt.Sprintf("%s_%d.ec[0-9][0-9]", collection, vid)))
		if err != nil {
			t.Fatal(err)
		}
		var onDisk []uint32
		for _, p := range paths {
			var id uint32
			if _, err := fmt.Sscanf(p[strings.LastIndex(p, ".ec")+3:], "%d", &id); err == nil {
				onDisk = append(onDisk, id)
			}
		}
		slices.Sort(onDisk)
		var want []uint32
		for id, on := range mounted {
			if on[0] == s {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		if !slices.Equal(onDisk, want) {
			t.Errorf("%s has shard files %v on disk, mounts %v", s, onDisk, want)
		}
	}
	c.checkFiles(t, files, urls...)

	// The hard way: make 4 shards unavailable, stopping whole servers
	// where they fit (fewest shards first) and unmounting the rest, then
	// read every file through a remaining server.
	perServer := map[string][]uint32{}
	for id, on := range mounted {
		perServer[on[0]] = append(perServer[on[0]], id)
	}
	// Servers holding a regenerated shard go last: the 10 shards left then
	// include the regenerated ones, which every read must use.
	regenerated := func(s string) bool {
		return slices.ContainsFunc(spec.ShardTargets, func(st *fsmpb.ShardPlacement) bool { return st.Server == s })
	}
	order := slices.Clone(servers)
	sort.SliceStable(order, func(i, j int) bool {
		if ri, rj := regenerated(order[i]), regenerated(order[j]); ri != rj {
			return rj
		}
		return len(perServer[order[i]]) < len(perServer[order[j]])
	})
	down := 0
	var stopped []string
	for _, s := range order {
		n := len(perServer[s])
		if n == 0 || down+n > 4 {
			continue
		}
		for i, vs := range c.servers {
			if vs.Addr == s {
				c.servers[i].stop()
			}
		}
		stopped = append(stopped, s)
		down += n
	}
	for _, s := range order {
		if down == 4 {
			break
		}
		if slices.Contains(stopped, s) || len(perServer[s]) <= 1 {
			continue
		}
		var ids []uint32
		for _, id := range perServer[s] {
			if rebuilt := slices.ContainsFunc(spec.ShardTargets, func(st *fsmpb.ShardPlacement) bool { return st.ShardId == id }); !rebuilt && len(ids) < 4-down {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if err := c.vc.VolumeEcShardsUnmount(ctx, s, vid, ids); err != nil {
			t.Fatal(err)
		}
		down += len(ids)
	}
	if down != 4 {
		t.Fatalf("made %d shards unavailable, want 4", down)
	}
	t.Logf("stopped %v; 4 shards unavailable", stopped)
	for _, st := range spec.ShardTargets {
		if slices.Contains(stopped, st.Server) {
			t.Logf("regenerated shard %d is among the unavailable ones", st.ShardId)
		}
	}
	waitShards(t, c, vid, seaweed.EcTotalShards-4)
	var live []string
	for _, vs := range c.servers {
		if !slices.Contains(stopped, vs.Addr) {
			live = append(live, vs.HTTP)
		}
	}
	// A volume server caches shard locations (7 minutes while it knows of
	// 10-13 shards, as it did while 3 were lost) and looks again 11 s after
	// a read fails: a read through one that has not seen the regenerated
	// shards yet fails until then, as it would for any client.
	var last error
	testutil.EventuallyTrue(t, time.Minute, "every file to read back with its checksum through the remaining servers", func() bool {
		for _, s := range live {
			for _, f := range files {
				if last = c.checkFile(s, f); last != nil {
					return false
				}
			}
		}
		return true
	}, func() string { return fmt.Sprint(last) })
}

// waitShards waits until the master lists n distinct shards of vid.
func waitShards(t *testing.T, c *weedCluster, vid uint32, n int) *seaweed.Topology {
	t.Helper()
	return c.waitTopology(t, fmt.Sprintf("the master to list %d shards of volume %d", n, vid), func(topo *seaweed.Topology) (bool, string) {
		e := topo.EcVolumes[vid]
		if e == nil {
			return n == 0, "no EC volume"
		}
		return e.ShardCount() == n, fmt.Sprintf("%d shards: %v", e.ShardCount(), e.Shards)
	})
}
