package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// TestECBalanceExecutor: an erasure-coded volume (files written with
// checksums, some deleted after the encode so that the journal counts) has
// its 14 shards piled on 3 of 6 real volume servers. Detection proposes
// single-shard ec_balance moves from the master's topology; each is
// planned and executed (copy, mount, verify, remove at the source) and
// waited for in the master's topology before the next round, until
// nothing is left to improve. The volume ends with no more than 3 shards
// on a server (an even spread over 6), every shard mounted exactly once
// (the servers and the master agree), no shard file left on disk where
// it is not mounted, and every file reading back with its checksum
// through every server (once that server's cached shard map is current).
func TestECBalanceExecutor(t *testing.T) {
	t.Parallel()
	c := startWeedCluster(t, 6)
	const collection = "ecb"
	files := c.writeFiles(t, collection, 40, 32<<10)
	vid, holder := files[0].Vid, files[0].URL
	topo := c.waitTopology(t, "the master to see the writes", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 40, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	servers := c.serverAddrs()
	// The shards on the server that held the volume and the next two:
	// deletes go through the holder, which must serve the EC volume.
	h := slices.IndexFunc(c.servers, func(s *volumeServer) bool { return s.HTTP == holder })
	if h < 0 {
		t.Fatalf("no volume server serves %s", holder)
	}
	var layout []*fsmpb.ShardPlacement
	for i := uint32(0); i < seaweed.EcTotalShards; i++ {
		layout = append(layout, &fsmpb.ShardPlacement{ShardId: i, Server: servers[(h+int(i)%3)%len(servers)]})
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

	onceEach := func(topo *seaweed.Topology) (bool, string) {
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
	}
	moves := 0
	for round := 0; ; round++ {
		if round == 20 {
			t.Fatal("still moving shards after 20 rounds")
		}
		topo = c.waitTopology(t, "the master to list 14 shards, each once", onceEach)
		props := scheduler.DetectECBalance(topo, func(uint32) bool { return false }, nil, scheduler.DefaultThresholds())
		if len(props) == 0 {
			break
		}
		p := props[0]
		moves++
		task := &fsmpb.Task{Id: uint64(1 + moves), Type: p.Type, VolumeId: p.VolumeID, Collection: p.Collection, Source: p.Source, Target: p.Target,
			Params: p.Params, Attempt: 1, Fence: uint64(10 + moves)}
		spec, err := scheduler.PlanSpec(task, topo, scheduler.DefaultThresholds())
		if err != nil {
			t.Fatalf("PlanSpec of %s: %v", p.Reason, err)
		}
		change, _ := executeSteps(ctx, t, worker.NewECBalanceExecutor(c.vc), spec, "ec balance",
			[]string{worker.StepECBalancePrepare, worker.StepECBalanceCopy, worker.StepECBalanceMount, worker.StepECBalanceVerify, worker.StepECBalanceRemove, "done"})
		t.Logf("move %d: %s", moves, p.Reason)
		shard := change.GetShards()[0].GetShardId()
		c.waitTopology(t, fmt.Sprintf("the master to list shard %d on %s only", shard, p.Target), func(topo *seaweed.Topology) (bool, string) {
			e := topo.EcVolumes[vid]
			if e == nil {
				return false, "no EC volume"
			}
			return slices.Equal(e.Shards[shard], []string{p.Target}), fmt.Sprintf("shard %d on %v", shard, e.Shards[shard])
		})
	}
	if moves == 0 {
		t.Fatal("no move proposed for shards piled on 3 of 6 servers")
	}
	topo = c.waitTopology(t, "the master to list 14 shards, each once", onceEach)
	l, err := placement.NewECLayout(topo, topo.EcVolumes[vid])
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Spread(); s.Total() != 0 {
		t.Errorf("after %d moves the spread is %v; want even", moves, s)
	}
	// The servers' answer agrees, and no server keeps a shard file it does
	// not mount.
	base := filepath.Dir(c.master.logPath)
	for i, s := range servers {
		m, err := c.vc.MountedEcShards(ctx, s, vid)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint32
		for id := range m {
			want = append(want, id)
		}
		slices.Sort(want)
		if len(want) > 3 {
			t.Errorf("%s mounts shards %v, more than 3", s, want)
		}
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
		if !slices.Equal(onDisk, want) {
			t.Errorf("%s has shard files %v on disk, mounts %v", s, onDisk, want)
		}
	}
	// A volume server caches where a volume's shards are (SeaweedFS
	// trusts a complete map for 37 minutes): a read through one whose map
	// predates the moves fails, marks the map stale and, within 11 s, the
	// server asks the master again. Every file must read back with its
	// checksum once the maps are current.
	retried := 0
	for _, u := range urls {
		for _, f := range files {
			first := true
			testutil.Eventually(t, 60*time.Second, fmt.Sprintf("%s to read back through %s", f.Fid, u), func() (bool, string) {
				err := c.checkFile(u, f)
				if err != nil && first {
					retried++
				}
				first = false
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
		}
	}
	t.Logf("balanced with %d moves; %d reads through a server with a stale shard map read back only after it refreshed", moves, retried)
}
