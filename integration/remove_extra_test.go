package integration

// Extra copies on a real SeaweedFS: a volume server down past
// --repair-after has its volumes repaired elsewhere, then comes back with
// its old copies; remove_extra tasks bring every volume back to its
// placement's copies, and every file still reads back.

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

// extraCollection holds the 001 volumes of the remove_extra test.
const extraCollection = "rx"

// TestRemoveExtraOnRealSeaweedFS: files are written with checksums to a
// 001 collection on four volume servers; one server holding copies is
// stopped (its data directory kept) until replicate tasks have restored
// every volume's second copy elsewhere, files of those volumes are deleted
// meanwhile, then the server is started again: its volumes have three
// copies, its own stale where files were deleted (it still holds them).
// remove_extra tasks (no failure) bring every volume back to two copies,
// and no stale copy stays; every live file reads back with its checksum
// and every deleted one is 404 through both.
func TestRemoveExtraOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, an admin and a worker")
	}
	wc := startWeedCluster(t, 4)
	var files []*storedFile
	vids := map[uint32]bool{}
	for i := 0; i < 3; i++ {
		a, vid := wc.assignTo(t, 60*time.Second, assignTarget{Collection: extraCollection, Replication: "001"}, 8, 64<<10)
		files = append(files, wc.writeAssigned(t, a, vid, 8, 64<<10, uint64(i))...)
		vids[vid] = true
	}
	topo := wc.waitTopology(t, "every written volume listed with 2 copies", func(topo *seaweed.Topology) (bool, string) {
		msg := repairedMsg(topo, extraCollection, nil)
		return msg == "", msg
	})
	cl := newCluster(t, 1)
	for _, nd := range cl.nodes {
		nd.startArgs(t, append(detectingArgs(nd, wc, repairThresholds), "--repair-after", "3s")...)
	}
	cl.waitStable(t, cl.nodes...)
	adminAddrs := strings.Join(cl.addrs(), ",")
	workers := startWorkers(t, 1, cl.addrs())
	waitWorkers(t, adminAddrs, workers)

	away := holderOf(t, wc, topo, vids, nil)
	awayVols := map[uint32]bool{}
	for id, v := range topo.Volumes {
		if v.Collection == extraCollection && slices.ContainsFunc(replicaServers(v), away.is) {
			awayVols[id] = true
		}
	}
	away.stop()
	t.Logf("stopped %s, holding copies of volumes %v", away.HTTP, slices.Sorted(maps.Keys(awayVols)))
	testutil.Poll(t, 3*time.Minute, systemPollEvery, "every volume back at 2 copies off the stopped server", func() (bool, string) {
		topo, _, msg := quietState(t, wc, adminAddrs)
		if msg != "" {
			return false, msg
		}
		return repairedMsg(topo, extraCollection, away) == "", repairedMsg(topo, extraCollection, away)
	})
	// Deletes while the server is away: its copies miss them, and come
	// back stale (they still hold the deleted files).
	deleted := 0
	staleVols := map[uint32]bool{}
	for vid := range awayVols {
		servers, err := wc.lookup(vid)
		if err != nil {
			t.Fatal(err)
		}
		var some []*storedFile
		for _, f := range files {
			if f.Vid == vid && len(some) < 2 {
				some = append(some, f)
			}
		}
		if len(some) == 0 {
			continue // a volume with no file of ours: its copies stay identical
		}
		wc.deleteFiles(t, servers[0], some)
		deleted += len(some)
		staleVols[vid] = true
	}
	t.Logf("deleted %d files from volumes %v while %s was away", deleted, slices.Sorted(maps.Keys(staleVols)), away.HTTP)
	wc.restartVolume(t, away)
	var final []sysTask
	testutil.Poll(t, 3*time.Minute, systemPollEvery, "every volume back at 2 copies after the server's return, by remove_extra tasks", func() (bool, string) {
		topo, tasks, msg := quietState(t, wc, adminAddrs)
		if msg != "" {
			return false, msg
		}
		if msg := repairedMsg(topo, extraCollection, nil); msg != "" {
			return false, msg
		}
		for vid := range staleVols {
			if v, ok := topo.Volumes[vid]; ok && slices.ContainsFunc(replicaServers(v), away.is) {
				return false, fmt.Sprintf("the stale copy of volume %d still on %s", vid, away.HTTP)
			}
		}
		if n := len(tasksOfType(tasks, "remove_extra")); n == 0 {
			return false, "no remove_extra task yet"
		}
		final = tasks
		return true, ""
	})
	for _, tk := range final {
		t.Logf("  %s", tk)
		if tk.State != "completed" {
			t.Errorf("task not completed: %s", tk)
		}
	}
	if r, x := len(tasksOfType(final, "replicate")), len(tasksOfType(final, "remove_extra")); r != x {
		t.Errorf("%d replicate and %d remove_extra tasks; want one removal per repaired volume", r, x)
	}
	for _, f := range files {
		servers, err := wc.lookup(f.Vid)
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 2 {
			t.Fatalf("volume %d served by %v, want 2 servers", f.Vid, servers)
		}
		for _, s := range servers {
			if err := wc.checkFile(s, f); err != nil {
				t.Fatalf("read back through %s: %v", s, err)
			}
		}
	}
	t.Logf("read back %d files through both copies of their volume", len(files))
}

func tasksOfType(tasks []sysTask, typ string) []sysTask {
	var out []sysTask
	for _, tk := range tasks {
		if tk.Type == typ {
			out = append(out, tk)
		}
	}
	return out
}
