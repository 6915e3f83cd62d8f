package integration

// Empty volumes on a real SeaweedFS: the collection's growth leaves
// volumes no file went to; with --delete-empty-quiet set, delete_empty
// tasks delete them on both copies, and the volume holding files stays.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestDeleteEmptyOnRealSeaweedFS: files are written to one volume of a
// 001 collection on two volume servers; the master grew the collection
// with more volumes, which stay empty. An admin with
// --delete-empty-quiet 2s deletes every empty one (delete_empty tasks,
// none failed) on both servers, never the one holding files, whose files
// read back through both copies.
func TestDeleteEmptyOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, an admin and a worker")
	}
	const collection = "de"
	wc := startWeedCluster(t, 2)
	a, vid := wc.assignTo(t, 60*time.Second, assignTarget{Collection: collection, Replication: "001"}, 8, 64<<10)
	files := wc.writeAssigned(t, a, vid, 8, 64<<10, 1)
	empty := map[uint32]bool{}
	wc.waitTopology(t, "the collection's volumes listed with 2 copies, one holding files", func(topo *seaweed.Topology) (bool, string) {
		if msg := repairedMsg(topo, collection, nil); msg != "" {
			return false, msg
		}
		v, ok := topo.Volumes[vid]
		if !ok || v.FileCount == 0 {
			return false, fmt.Sprintf("volume %d not listed with files yet", vid)
		}
		clear(empty)
		for id, v := range topo.Volumes {
			if v.Collection == collection && id != vid && v.FileCount == 0 {
				empty[id] = true
			}
		}
		return len(empty) > 0, "no empty volume in the collection"
	})
	t.Logf("volume %d holds %d files; empty volumes %v", vid, len(files), slices.Sorted(maps.Keys(empty)))
	cl := newCluster(t, 1)
	for _, nd := range cl.nodes {
		nd.startArgs(t, append(detectingArgs(nd, wc, repairThresholds), "--delete-empty-quiet", "2s")...)
	}
	cl.waitStable(t, cl.nodes...)
	adminAddrs := strings.Join(cl.addrs(), ",")
	workers := startWorkers(t, 1, cl.addrs())
	waitWorkers(t, adminAddrs, workers)

	var final []sysTask
	testutil.Poll(t, 3*time.Minute, systemPollEvery, "every empty volume deleted by delete_empty tasks", func() (bool, string) {
		topo, tasks, msg := quietState(t, wc, adminAddrs)
		if msg != "" {
			return false, msg
		}
		var left []string
		for id := range empty {
			if v, ok := topo.Volumes[id]; ok {
				left = append(left, fmt.Sprintf("volume %d on %v", id, replicaServers(v)))
			}
		}
		if len(left) > 0 {
			slices.Sort(left)
			return false, "still listed: " + strings.Join(left, ", ")
		}
		final = tasks
		return true, ""
	})
	for _, tk := range final {
		t.Logf("  %s", tk)
		if tk.Type != "delete_empty" || tk.State != "completed" || !empty[tk.VolumeID] {
			t.Errorf("unexpected task: %s", tk)
		}
	}
	if n := len(tasksOfType(final, "delete_empty")); n != len(empty) {
		t.Errorf("%d delete_empty tasks for %d empty volumes", n, len(empty))
	}
	servers, err := wc.lookup(vid)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 {
		t.Fatalf("volume %d served by %v, want 2 servers", vid, servers)
	}
	for _, f := range files {
		for _, s := range servers {
			if err := wc.checkFile(s, f); err != nil {
				t.Fatalf("read back through %s: %v", s, err)
			}
		}
	}
	t.Logf("read back %d files through both copies of volume %d", len(files), vid)
}
