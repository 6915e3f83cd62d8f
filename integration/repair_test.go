package integration

// Self-healing on a real SeaweedFS: a volume server lost for good (killed,
// its data directory removed) has its copies restored by replicate tasks
// once --repair-after has passed; a server restarted within it causes none.

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

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// repairCollection holds the 001 volumes of the repair test.
const repairCollection = "rep"

// repairThresholds find no routine work: only repairs are detected.
var repairThresholds = scheduler.Thresholds{VacuumGarbage: 1, ECFullness: 1, ECQuietFor: time.Hour, ECMinSizeMB: 1 << 20, BalanceImbalance: 1e9, ECBalanceSkew: -1}

// TestReplicateOnRealSeaweedFS: files are written with checksums to a 001
// collection on five volume servers. A server restarted within
// --repair-after (30 s) causes no replicate task. Then, with the admins
// restarted at --repair-after 5s, a server is killed for good and its data
// directory removed: every volume it held a copy of is back at two copies
// (none on the lost server), by replicate tasks submitted no sooner than
// 5 s after the loss, none failed; every file reads back with its checksum
// through every server holding its volume; and weed shell's volume.list
// agrees.
func TestReplicateOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, three admins and two workers")
	}
	wc := startWeedCluster(t, 5)
	var files []*storedFile
	vids := map[uint32]bool{}
	for i := 0; i < 4; i++ {
		a, vid := wc.assignTo(t, 60*time.Second, assignTarget{Collection: repairCollection, Replication: "001"}, 8, 64<<10)
		files = append(files, wc.writeAssigned(t, a, vid, 8, 64<<10, uint64(i))...)
		vids[vid] = true
	}
	topo := wc.waitTopology(t, "every written volume listed with 2 copies", func(topo *seaweed.Topology) (bool, string) {
		return repairedMsg(topo, repairCollection, nil) == "", repairedMsg(topo, repairCollection, nil)
	})
	t.Logf("wrote %d files to volumes %v; %d volumes in %s", len(files), slices.Sorted(maps.Keys(vids)), countCollection(topo, repairCollection), repairCollection)

	// ---- 1. A restart within --repair-after: no replicate task.
	cl := newCluster(t, 3)
	startAdmins := func(repairAfter string) string {
		for _, nd := range cl.nodes {
			nd.startArgs(t, append(detectingArgs(nd, wc, repairThresholds), "--repair-after", repairAfter)...)
		}
		cl.waitStable(t, cl.nodes...)
		return strings.Join(cl.addrs(), ",")
	}
	adminAddrs := startAdmins("30s")
	workers := startWorkers(t, 2, cl.addrs())
	waitWorkers(t, adminAddrs, workers)
	restarted := holderOf(t, wc, topo, vids, nil)
	began := time.Now()
	restarted.stop()
	wc.waitTopology(t, "the master to drop the stopped server", func(topo *seaweed.Topology) (bool, string) {
		_, ok := topo.Server(restarted.HTTP)
		return !ok, "still listed"
	})
	waitDetections(t, adminAddrs, 2)
	wc.restartVolume(t, restarted)
	wc.waitTopology(t, "the restarted server's volumes listed again", func(topo *seaweed.Topology) (bool, string) {
		msg := repairedMsg(topo, repairCollection, nil)
		return msg == "", msg
	})
	waitDetections(t, adminAddrs, 2)
	if tasks := ctlJSON[[]sysTask](t, "tasks", adminAddrs, "tasks"); len(tasks) != 0 {
		t.Fatalf("a server restarted within --repair-after (back after %s) led to tasks:\n%s", time.Since(began).Round(time.Millisecond), joinTasks(tasks))
	}
	t.Logf("server %s restarted and back within %s: no task", restarted.HTTP, time.Since(began).Round(time.Millisecond))

	// ---- 2. Admins at --repair-after 5s; a server lost for good.
	for _, nd := range cl.nodes {
		nd.term(t)
	}
	adminAddrs = startAdmins("5s")
	waitWorkers(t, adminAddrs, workers)
	topo = wc.waitTopology(t, "every volume whole", func(topo *seaweed.Topology) (bool, string) {
		msg := repairedMsg(topo, repairCollection, nil)
		return msg == "", msg
	})
	lost := holderOf(t, wc, topo, vids, restarted)
	var lostVols []uint32
	for id, v := range topo.Volumes {
		if v.Collection == repairCollection && slices.ContainsFunc(replicaServers(v), lost.is) {
			lostVols = append(lostVols, id)
		}
	}
	slices.Sort(lostVols)
	lostAt := time.Now()
	lost.stop()
	if err := os.RemoveAll(lost.Dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("lost %s for good with copies of volumes %v", lost.HTTP, lostVols)

	var final []sysTask
	testutil.Poll(t, 3*time.Minute, systemPollEvery, "every volume back at 2 copies, off the lost server, by completed replicate tasks", func() (bool, string) {
		topo, tasks, msg := quietState(t, wc, adminAddrs)
		if msg != "" {
			return false, msg
		}
		if msg := repairedMsg(topo, repairCollection, lost); msg != "" {
			return false, msg
		}
		if len(tasks) < len(lostVols) {
			return false, fmt.Sprintf("%d tasks for %d lost copies", len(tasks), len(lostVols))
		}
		final = tasks
		return true, ""
	})
	repairedAfter := time.Since(lostAt)
	var repaired []uint32
	for _, tk := range final {
		if tk.Type != "replicate" || tk.State != "completed" {
			t.Errorf("unexpected task: %s", tk)
			continue
		}
		created, err := time.Parse(time.RFC3339Nano, tk.CreatedAt)
		if err != nil {
			t.Fatalf("task %d created_at %q: %v", tk.ID, tk.CreatedAt, err)
		}
		if d := created.Sub(lostAt); d < 5*time.Second {
			t.Errorf("replicate %d submitted %s after the loss, within --repair-after 5s", tk.ID, d)
		}
		repaired = append(repaired, tk.VolumeID)
		t.Logf("  %s", tk)
	}
	slices.Sort(repaired)
	if !slices.Equal(repaired, lostVols) {
		t.Errorf("replicated volumes %v, want each volume the lost server held exactly once: %v", repaired, lostVols)
	}
	t.Logf("every volume back at 2 copies %s after the loss (%d replicate tasks)", repairedAfter.Round(time.Millisecond), len(repaired))

	// ---- 3. Every file, through every server holding its volume.
	for _, f := range files {
		servers, err := wc.lookup(f.Vid)
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 2 || slices.ContainsFunc(servers, lost.is) {
			t.Fatalf("volume %d served by %v, want 2 servers, not the lost %s", f.Vid, servers, lost.HTTP)
		}
		for _, s := range servers {
			if err := wc.checkFile(s, f); err != nil {
				t.Fatalf("read back through %s: %v", s, err)
			}
		}
	}
	t.Logf("read back %d files through both copies of their volume", len(files))

	// ---- 4. weed shell's own volume.list agrees.
	listed := weedVolumeList(t, wc)
	for id, v := range topo.Volumes {
		if v.Collection != repairCollection {
			continue
		}
		if nodes := listed[id]; len(nodes) != 2 || slices.ContainsFunc(nodes, lost.is) {
			t.Errorf("weed shell volume.list: volume %d on %v, want 2 servers, not the lost %s", id, nodes, lost.HTTP)
		}
	}
	st := ctlJSON[repairStatus](t, "", adminAddrs, "status")
	if m := st.Maintenance; m == nil || m.VolumesUnderreplicated != 0 {
		t.Errorf("ctl status after the repair: %+v, want no volume under-replicated", st.Maintenance)
	}
}

// repairedMsg says why the collection's volumes are not all at their
// placement's copies, or one sits on the server named lost ("" if all
// are, and none does).
// quietState reads the master's topology, then the admins' tasks (so a
// copy the topology lists was made by a task the list shows), fails the
// test on a failed task, and says what is not done yet: a read that
// failed, or tasks still active ("" when every task is terminal).
func quietState(t *testing.T, wc *weedCluster, adminAddrs string) (*seaweed.Topology, []sysTask, string) {
	topo, err := wc.topology(context.Background())
	if err != nil {
		return nil, nil, err.Error()
	}
	tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
	if err != nil {
		return nil, nil, err.Error()
	}
	if failed := tasksIn(tasks, "failed"); len(failed) > 0 {
		t.Fatalf("tasks failed:\n%s", joinTasks(failed))
	}
	if active := tasksIn(tasks, "pending", "assigned", "running"); len(active) > 0 {
		return nil, nil, "active: " + joinTasks(active)
	}
	return topo, tasks, ""
}

func repairedMsg(topo *seaweed.Topology, collection string, lost *volumeServer) string {
	var bad []string
	for id, v := range topo.Volumes {
		if v.Collection != collection {
			continue
		}
		hs := replicaServers(v)
		if len(hs) != 2 || lost != nil && slices.ContainsFunc(hs, lost.is) {
			bad = append(bad, fmt.Sprintf("volume %d on %v", id, hs))
		}
	}
	slices.Sort(bad)
	return strings.Join(bad, ", ")
}

// holderOf is the volume server holding copies of the most volumes
// written (ties: the lowest address), other than except: losing it tests
// the repair of real data.
func holderOf(t *testing.T, wc *weedCluster, topo *seaweed.Topology, written map[uint32]bool, except *volumeServer) *volumeServer {
	t.Helper()
	var best *volumeServer
	bestN := 0
	for _, s := range wc.servers {
		if s == except {
			continue
		}
		n := 0
		for id, v := range topo.Volumes {
			if written[id] && slices.ContainsFunc(replicaServers(v), s.is) {
				n++
			}
		}
		if n > bestN || n == bestN && best != nil && n > 0 && s.HTTP < best.HTTP {
			best, bestN = s, n
		}
	}
	if best == nil {
		t.Fatalf("no server holds a written volume %v", written)
	}
	return best
}

// is reports whether name (an id, HTTP or SeaweedFS address) is vs.
func (vs *volumeServer) is(name string) bool {
	return name == vs.HTTP || name == vs.Addr || strings.HasPrefix(name, vs.HTTP+".")
}

// repairStatus is the part of `ctl status --json` the repair test reads.
type repairStatus struct {
	Maintenance *struct {
		LastPoll               string `json:"last_poll"`
		VolumesUnderreplicated uint32 `json:"volumes_underreplicated"`
	} `json:"maintenance"`
}

// waitWorkers waits until the leader lists every worker connected.
func waitWorkers(t *testing.T, adminAddrs string, workers []*node) {
	t.Helper()
	testutil.Poll(t, waitTimeout, systemPollEvery, "the workers to connect", func() (bool, string) {
		ws, res, err := ctlJSONErr[[]sysWorker](t, "", adminAddrs, "workers")
		if err != nil {
			return false, err.Error()
		}
		for _, w := range workers {
			if !slices.ContainsFunc(ws, func(x sysWorker) bool { return x.ID == w.ID && x.Connected }) {
				return false, res.Stdout
			}
		}
		return true, ""
	})
}

// waitDetections waits until the leader has polled the master n more times.
func waitDetections(t *testing.T, adminAddrs string, n int) {
	t.Helper()
	var last string
	seen := -1
	testutil.Poll(t, waitTimeout, 200*time.Millisecond, fmt.Sprintf("%d more detection rounds", n), func() (bool, string) {
		st, _, err := ctlJSONErr[repairStatus](t, "", adminAddrs, "status")
		if err != nil || st.Maintenance == nil {
			return false, fmt.Sprint(err)
		}
		if p := st.Maintenance.LastPoll; p != last {
			last = p
			seen++
		}
		return seen >= n, "last poll " + last
	})
}

// restartVolume starts a stopped volume server again with its data
// directory and flags, and waits until the master lists it.
func (c *weedCluster) restartVolume(t *testing.T, vs *volumeServer) {
	t.Helper()
	vs.weedProc = startWeedIn(t, weedBinary(t), vs.name, vs.logPath+".restarted", vs.cwd, vs.args...)
	c.waitTopologyWithin(t, weedStartTimeout, "the master to list the restarted volume server "+vs.HTTP, func(topo *seaweed.Topology) (bool, string) {
		if vs.exited() {
			t.Fatalf("%s exited during start-up:\n%s", vs.name, vs.logTail(25))
		}
		_, ok := topo.Server(vs.HTTP)
		return ok, "not listed yet"
	})
}

// volumeLine is a volume of volume.list's output: "volume Id:3, Size:...".
var volumeLine = regexp.MustCompile(`^volume Id:(\d+),`)

// weedVolumeList runs `weed shell`'s volume.list and returns, for each
// volume id, the data nodes it lists the volume on.
func weedVolumeList(t *testing.T, wc *weedCluster) map[uint32][]string {
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
	listed := map[uint32][]string{}
	node := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "DataNode "); ok {
			node, _, _ = strings.Cut(rest, " ")
			continue
		}
		if m := volumeLine.FindStringSubmatch(line); m != nil && node != "" {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			listed[uint32(id)] = append(listed[uint32(id)], node)
		}
	}
	if len(listed) == 0 {
		t.Fatalf("weed shell volume.list listed no volume:\n%s", out)
	}
	return listed
}
