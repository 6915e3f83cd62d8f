package integration

// Self-healing end to end on a real SeaweedFS: replicated volumes and
// erasure-coded volumes together, two volume servers lost for good one
// after the other, every copy and shard restored by the admins' own
// detection, planning and workers.

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// selfHealECCollection holds the erasure-coded volumes of the test.
const selfHealECCollection = "ecr"

// TestSelfHealOnRealSeaweedFS (issue 13's "Must show"): seven volume
// servers; files written with checksums to a 001 collection and to
// volumes then erasure coded (by groundskeeper's own erasure-coding
// executor, two shards per server). Admins run with --repair-after 5s and
// two workers. A volume server is killed for good and its data directory
// removed: every 001 volume is back at two copies off the lost server,
// every EC volume back at 14 shards each mounted exactly once off the lost
// server, by replicate and ec_rebuild tasks submitted no sooner than 5 s
// after the loss, none failed; every file reads back with its checksum;
// weed shell's volume.list agrees. Then a second server is lost and the
// same holds.
func TestSelfHealOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, three admins and two workers")
	}
	began := time.Now()
	wc := startWeedCluster(t, 7)

	// ---- Data: a 001 collection and two erasure-coded volumes.
	var repFiles []*storedFile
	repVids := map[uint32]bool{}
	for i := 0; i < 3; i++ {
		a, vid := wc.assignTo(t, 60*time.Second, assignTarget{Collection: repairCollection, Replication: "001"}, 8, 64<<10)
		repFiles = append(repFiles, wc.writeAssigned(t, a, vid, 8, 64<<10, uint64(i))...)
		repVids[vid] = true
	}
	var ecFiles []*storedFile
	ecVids := map[uint32]bool{}
	for i := 0; i < 2; i++ {
		fs := wc.writeFiles(t, selfHealECCollection, 20+i, 32<<10)
		ecFiles = append(ecFiles, fs...)
		ecVids[fs[0].Vid] = true
	}
	topo := wc.waitTopology(t, "the writes listed", func(topo *seaweed.Topology) (bool, string) {
		if msg := repairedMsg(topo, repairCollection, nil); msg != "" {
			return false, msg
		}
		for vid := range ecVids {
			if v := topo.Volumes[vid]; v == nil || v.FileCount == 0 {
				return false, fmt.Sprintf("volume %d: %+v", vid, v)
			}
		}
		return true, ""
	})
	servers := wc.serverAddrs()
	ctx, cancel := execCtx(t)
	defer cancel()
	for vid := range ecVids {
		v := topo.Volumes[vid]
		var layout []*fsmpb.ShardPlacement
		for i := uint32(0); i < seaweed.EcTotalShards; i++ {
			layout = append(layout, &fsmpb.ShardPlacement{ShardId: i, Server: servers[(int(i)+int(vid))%len(servers)]})
		}
		if _, err := worker.NewECExecutor(wc.vc).Execute(ctx, &pb.TaskSpec{
			Task:     &fsmpb.Task{Id: uint64(vid), Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: selfHealECCollection, Attempt: 1},
			Replicas: replicaServers(v), ShardTargets: layout, Size: v.Size,
		}, nil); err != nil {
			t.Fatalf("erasure code volume %d: %v", vid, err)
		}
	}
	topo = wc.waitTopology(t, "every EC volume at 14 shards", func(topo *seaweed.Topology) (bool, string) {
		msg := ecWholeMsg(topo, ecVids, nil)
		return msg == "", msg
	})
	t.Logf("data ready after %s: 001 volumes %v (%d files), EC volumes %v (%d files)", time.Since(began).Round(time.Millisecond),
		slices.Sorted(maps.Keys(repVids)), len(repFiles), slices.Sorted(maps.Keys(ecVids)), len(ecFiles))

	// ---- Admins at --repair-after 5s, two workers.
	cl := newCluster(t, 3)
	for _, nd := range cl.nodes {
		nd.startArgs(t, append(detectingArgs(nd, wc, repairThresholds), "--repair-after", "5s")...)
	}
	cl.waitStable(t, cl.nodes...)
	adminAddrs := strings.Join(cl.addrs(), ",")
	workers := startWorkers(t, 2, cl.addrs())
	waitWorkers(t, adminAddrs, workers)
	waitDetections(t, adminAddrs, 1)
	if tasks := ctlJSON[[]sysTask](t, "tasks", adminAddrs, "tasks"); len(tasks) != 0 {
		t.Fatalf("tasks before any loss:\n%s", joinTasks(tasks))
	}

	var lost []*volumeServer
	seen := 0 // tasks of earlier rounds
	for round := 1; round <= 2; round++ {
		var except *volumeServer
		if len(lost) > 0 {
			except = lost[0]
		}
		victim := holderOf(t, wc, topo, repVids, except)
		var wantRep, wantEC []uint32
		for id, v := range topo.Volumes {
			if v.Collection == repairCollection && slices.ContainsFunc(replicaServers(v), victim.is) {
				wantRep = append(wantRep, id)
			}
		}
		for id := range ecVids {
			for _, on := range topo.EcVolumes[id].Shards {
				if slices.ContainsFunc(on, victim.is) {
					wantEC = append(wantEC, id)
					break
				}
			}
		}
		slices.Sort(wantRep)
		slices.Sort(wantEC)
		lostAt := time.Now()
		victim.stop()
		if err := os.RemoveAll(victim.Dir); err != nil {
			t.Fatal(err)
		}
		lost = append(lost, victim)
		t.Logf("loss %d: %s gone for good with copies of 001 volumes %v and shards of EC volumes %v", round, victim.HTTP, wantRep, wantEC)

		var final []sysTask
		testutil.Poll(t, 3*time.Minute, systemPollEvery, fmt.Sprintf("loss %d repaired by completed tasks", round), func() (bool, string) {
			topo2, tasks, msg := quietState(t, wc, adminAddrs)
			if msg != "" {
				return false, msg
			}
			for _, l := range lost {
				if msg := repairedMsg(topo2, repairCollection, l); msg != "" {
					return false, msg
				}
			}
			if msg := ecWholeMsg(topo2, ecVids, lost); msg != "" {
				return false, msg
			}
			if len(tasks)-seen < len(wantRep)+len(wantEC) {
				return false, fmt.Sprintf("%d new tasks for %d lost copies and %d damaged EC volumes", len(tasks)-seen, len(wantRep), len(wantEC))
			}
			topo, final = topo2, tasks
			return true, ""
		})
		repairedAfter := time.Since(lostAt)
		var gotRep, gotEC []uint32
		for _, tk := range final[seen:] {
			if tk.State != "completed" {
				t.Errorf("unexpected task: %s", tk)
				continue
			}
			switch tk.Type {
			case "replicate":
				gotRep = append(gotRep, tk.VolumeID)
			case "ec_rebuild":
				gotEC = append(gotEC, tk.VolumeID)
			default:
				t.Errorf("unexpected task: %s", tk)
			}
			created, err := time.Parse(time.RFC3339Nano, tk.CreatedAt)
			if err != nil {
				t.Fatalf("task %d created_at %q: %v", tk.ID, tk.CreatedAt, err)
			}
			if d := created.Sub(lostAt); d < 5*time.Second {
				t.Errorf("%s submitted %s after the loss, within --repair-after 5s", tk, d)
			}
			t.Logf("  %s", tk)
		}
		seen = len(final)
		slices.Sort(gotRep)
		slices.Sort(gotEC)
		if !slices.Equal(gotRep, wantRep) || !slices.Equal(gotEC, wantEC) {
			t.Errorf("loss %d: replicated %v and rebuilt %v; want each damaged volume repaired once: replicate %v, ec_rebuild %v",
				round, gotRep, gotEC, wantRep, wantEC)
		}
		t.Logf("loss %d repaired %s after it (%d replicate, %d ec_rebuild); EC layout %s", round, repairedAfter.Round(time.Millisecond),
			len(gotRep), len(gotEC), shardsPerServer(topo, ecVids))

		// Every file: a 001 one through both copies, an EC one through
		// every live server (which caches shard locations for a while:
		// poll, as in TestECRebuildExecutor).
		for _, f := range repFiles {
			holders, err := wc.lookup(f.Vid)
			if err != nil {
				t.Fatal(err)
			}
			if len(holders) != 2 {
				t.Fatalf("volume %d served by %v, want 2 servers", f.Vid, holders)
			}
			for _, s := range holders {
				if err := wc.checkFile(s, f); err != nil {
					t.Fatalf("read back through %s: %v", s, err)
				}
			}
		}
		var live []string
		for _, vs := range wc.servers {
			if !slices.Contains(lost, vs) {
				live = append(live, vs.HTTP)
			}
		}
		var last error
		testutil.EventuallyTrue(t, time.Minute, "every EC file to read back with its checksum through every live server", func() bool {
			for _, s := range live {
				for _, f := range ecFiles {
					if last = wc.checkFile(s, f); last != nil {
						return false
					}
				}
			}
			return true
		}, func() string { return fmt.Sprint(last) })

		// weed shell's own volume.list agrees.
		listed, ecListed := weedShellVolumeList(t, wc)
		for id, v := range topo.Volumes {
			if v.Collection != repairCollection {
				continue
			}
			if nodes := listed[id]; len(nodes) != 2 || slices.ContainsFunc(nodes, onAny(lost)) {
				t.Errorf("weed shell volume.list: volume %d on %v, want 2 servers, none lost", id, nodes)
			}
		}
		for id := range ecVids {
			for sh := uint32(0); sh < seaweed.EcTotalShards; sh++ {
				if nodes := ecListed[id][sh]; len(nodes) != 1 || slices.ContainsFunc(nodes, onAny(lost)) {
					t.Errorf("weed shell volume.list: EC volume %d shard %d on %v, want exactly one live server", id, sh, nodes)
				}
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

// onAny reports whether a server name is one of vs.
func onAny(vs []*volumeServer) func(string) bool {
	return func(name string) bool {
		return slices.ContainsFunc(vs, func(v *volumeServer) bool { return v.is(name) })
	}
}

// ecWholeMsg says why an EC volume of vids is not at 14 shards each listed
// exactly once, off the lost servers ("" if every one is).
func ecWholeMsg(topo *seaweed.Topology, vids map[uint32]bool, lost []*volumeServer) string {
	var bad []string
	for _, id := range slices.Sorted(maps.Keys(vids)) {
		e := topo.EcVolumes[id]
		if e == nil {
			bad = append(bad, fmt.Sprintf("EC volume %d not listed", id))
			continue
		}
		for sh := uint32(0); sh < seaweed.EcTotalShards; sh++ {
			if on := e.Shards[sh]; len(on) != 1 || slices.ContainsFunc(on, onAny(lost)) {
				bad = append(bad, fmt.Sprintf("EC volume %d shard %d on %v", id, sh, on))
			}
		}
		if _, reg := topo.Volumes[id]; reg {
			bad = append(bad, fmt.Sprintf("EC volume %d also listed as a regular volume", id))
		}
	}
	return strings.Join(bad, ", ")
}

// shardsPerServer shows how many shards of each EC volume each server holds.
func shardsPerServer(topo *seaweed.Topology, vids map[uint32]bool) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(vids)) {
		per := map[string]int{}
		if e := topo.EcVolumes[id]; e != nil {
			for _, on := range e.Shards {
				for _, s := range on {
					per[s]++
				}
			}
		}
		var counts []string
		for _, s := range slices.Sorted(maps.Keys(per)) {
			counts = append(counts, strconv.Itoa(per[s]))
		}
		parts = append(parts, fmt.Sprintf("%d:[%s]", id, strings.Join(counts, " ")))
	}
	return strings.Join(parts, " ")
}

// ecShardLine is an EC volume of volume.list's output:
// "ec volume id:3 collection:c shards:[0 7] ...".
var ecShardLine = regexp.MustCompile(`^ec volume id:(\d+) collection:\S* shards:\[([0-9 ]*)\]`)

// weedShellVolumeList runs `weed shell`'s volume.list and returns, for
// each regular volume id, the data nodes it lists the volume on, and for
// each EC volume id, the data nodes it lists each shard on.
func weedShellVolumeList(t *testing.T, wc *weedCluster) (map[uint32][]string, map[uint32]map[uint32][]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weedBinary(t), "shell", "-master="+wc.masterHTTP)
	cmd.Stdin = strings.NewReader("volume.list\n")
	cmd.Dir = wc.opts.cwd
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("weed shell volume.list: %v\n%s", err, out)
	}
	listed, ec := map[uint32][]string{}, map[uint32]map[uint32][]string{}
	node := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "DataNode "); ok {
			node, _, _ = strings.Cut(rest, " ")
			continue
		}
		if node == "" {
			continue
		}
		if m := volumeLine.FindStringSubmatch(line); m != nil {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			listed[uint32(id)] = append(listed[uint32(id)], node)
		}
		if m := ecShardLine.FindStringSubmatch(line); m != nil {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			if ec[uint32(id)] == nil {
				ec[uint32(id)] = map[uint32][]string{}
			}
			for _, f := range strings.Fields(m[2]) {
				sh, _ := strconv.ParseUint(f, 10, 32)
				ec[uint32(id)][uint32(sh)] = append(ec[uint32(id)][uint32(sh)], node)
			}
		}
	}
	if len(listed) == 0 && len(ec) == 0 {
		t.Fatalf("weed shell volume.list listed no volume:\n%s", out)
	}
	return listed, ec
}
