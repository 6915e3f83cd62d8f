package integration

// The whole system on a real SeaweedFS: three admin processes (a raft
// quorum) watch a real master's topology, detect vacuum, erasure-coding and
// balance work, and two worker processes carry it out with real
// volume-server RPCs. Every outcome is checked in the master's own
// topology and by reading every file back.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const (
	// systemCollection is the SeaweedFS collection every file goes to.
	systemCollection = "gk"
	// maintenanceTimeout bounds the whole maintenance run, from the admins'
	// start to a quiet system with every expected change in the topology.
	maintenanceTimeout = 3 * time.Minute
	// systemPollEvery spaces the checks of the maintenance run (each runs
	// the ctl binary and asks the master for its VolumeList).
	systemPollEvery = time.Second
)

// volumeRole is what the test does to one volume before maintenance starts.
type volumeRole struct {
	name string
	// ec marks a volume that must be erasure coded; the others must be vacuumed.
	ec bool
	// target is the collection (systemCollection if none), replica
	// placement and disk type of the volume.
	target  assignTarget
	files   int
	minSize int
	// deleted picks the files deleted to make garbage.
	deleted func(i int) bool

	vid    uint32
	stored []*storedFile
	// before is the master's view of the volume once it reflects the writes
	// and deletions.
	before seaweed.Volume
}

// TestMaintenanceOnRealSeaweedFS: files are written to a real SeaweedFS
// (some volumes nearly full, some with most of their files deleted), then
// three admins and two workers are started and an empty volume server is
// added. Without any manual submission, the garbage volumes must be
// vacuumed, the full quiet ones erasure coded and at least one volume moved
// onto the new server, as the master itself reports; every live file must
// read back intact and every deleted one stay deleted; no task may fail.
func TestMaintenanceOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, three admins and two workers")
	}
	testStart := time.Now()
	wc := startWeedCluster(t, 4)

	// ---- 1. Data: two nearly full volumes (erasure coding), one nearly
	// full volume with 60% of its files deleted (vacuum wins over erasure
	// coding) and a small one with half of its files deleted.
	th, roles := systemThresholds, systemRoles()
	writeBegan := time.Now()
	topo, allFiles, used, reassigns := seedRoles(t, wc, roles, th)
	t.Logf("wrote %d files to volumes %v in %s (%d re-assigns)", len(allFiles), roleVids(roles), time.Since(writeBegan).Round(time.Millisecond), reassigns)
	for _, r := range roles {
		v := topo.Volumes[r.vid]
		full := float64(v.Size) / float64(topo.VolumeSizeLimit)
		t.Logf("before: %-12s volume %d on %v: %d bytes (%.0f%% full), %d files, %d deleted, garbage %.0f%%",
			r.name, r.vid, holders(topo, r.vid), v.Size, full*100, v.FileCount, v.DeleteCount, v.GarbageRatio()*100)
	}
	// No other volume qualifies: the roles are the whole expected work
	// (besides balance).
	for vid, v := range topo.Volumes {
		full := float64(v.Size) / float64(topo.VolumeSizeLimit)
		if used[vid] || (v.GarbageRatio() < th.VacuumGarbage && full < th.ECFullness) {
			continue
		}
		t.Fatalf("set-up: volume %d, written by nobody, is %.2f full with garbage %.2f", vid, full, v.GarbageRatio())
	}
	t.Logf("before: %d volumes in %s on %d servers: %s", countCollection(topo, systemCollection), systemCollection, len(topo.Servers), slotUsage(topo))

	// ---- 2. Three admins with detection on, two workers, then one more
	// (empty) volume server so that balance has a target.
	maintBegan := time.Now()
	m := startMaintenance(t, wc, th)
	admins, adminAddrs, workers, added, isAdded := m.cl, m.adminAddrs, m.workers, m.added, m.isAdded

	// ---- 3. Wait for the maintenance to happen and the system to go quiet.
	firstDone := map[string]time.Duration{}
	lastSummary := ""
	var final []sysTask
	var finalTopo *seaweed.Topology
	testutil.Poll(t, maintenanceTimeout, systemPollEvery, "vacuum, erasure coding and balance to complete and the system to go quiet", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		if failed := tasksIn(tasks, "failed"); len(failed) > 0 {
			t.Fatalf("tasks failed:\n%s", joinTasks(failed))
		}
		for _, tk := range tasks {
			if tk.State == "completed" {
				if _, ok := firstDone[tk.Type]; !ok {
					firstDone[tk.Type] = time.Since(maintBegan)
					t.Logf("first %s completed after %s: %s", tk.Type, firstDone[tk.Type].Round(time.Millisecond), tk)
				}
			}
		}
		if s := stateSummary(tasks); s != lastSummary {
			t.Logf("%5.1fs tasks: %s", time.Since(maintBegan).Seconds(), s)
			lastSummary = s
		}
		topo, err := wc.topology(context.Background())
		if err != nil {
			return false, "VolumeList: " + err.Error()
		}
		if msg := maintenanceDone(tasks, topo, roles, added, isAdded); msg != "" {
			return false, msg
		}
		// Quiet: the master's topology calls for no more work.
		if msg := pendingWork(topo, tasks, th); msg != "" {
			return false, msg
		}
		final, finalTopo = tasks, topo
		return true, ""
	})
	quietAfter := time.Since(maintBegan)
	t.Logf("maintenance complete and quiet %s after the admins started", quietAfter.Round(time.Millisecond))

	// ---- 4. What was done, exactly once each.
	for _, r := range roles {
		if r.ec {
			if n := len(tasksFor(final, "erasure_coding", r.vid, "completed")); n != 1 {
				t.Errorf("%s volume %d was erasure coded %d times, want once", r.name, r.vid, n)
			}
			if v := tasksFor(final, "vacuum", r.vid, ""); len(v) > 0 {
				t.Errorf("%s volume %d (garbage %.2f) got vacuum tasks:\n%s", r.name, r.vid, r.before.GarbageRatio(), joinTasks(v))
			}
		} else {
			if n := len(tasksFor(final, "vacuum", r.vid, "completed")); n != 1 {
				t.Errorf("%s volume %d was vacuumed %d times, want once", r.name, r.vid, n)
			}
			// vacuum-full was also full enough for erasure coding: vacuum
			// wins, and afterwards it is too small to encode.
			if ec := tasksFor(final, "erasure_coding", r.vid, ""); len(ec) > 0 {
				t.Errorf("%s volume %d was also given erasure coding:\n%s", r.name, r.vid, joinTasks(ec))
			}
		}
	}
	for _, tk := range final {
		if tk.State == "cancelled" {
			t.Errorf("unexpected cancelled task: %s", tk)
		}
		if tk.State == "completed" && tk.WorkerID != "w1" && tk.WorkerID != "w2" {
			t.Errorf("completed task not run by a worker: %s", tk)
		}
	}
	for _, r := range roles {
		if r.ec {
			e := finalTopo.EcVolumes[r.vid]
			t.Logf("after:  %-12s volume %d: erasure coded, 14 shards on %d servers %v", r.name, r.vid, len(shardHolders(e)), shardHolders(e))
		} else {
			v := finalTopo.Volumes[r.vid]
			t.Logf("after:  %-12s volume %d on %v: %d bytes (was %d), %d deleted bytes (was %d)", r.name, r.vid, holders(finalTopo, r.vid), v.Size, r.before.Size, v.DeletedBytes, r.before.DeletedBytes)
		}
	}
	moved := movedToAdded(final, finalTopo, isAdded)
	for _, tk := range moved {
		t.Logf("after:  volume %d moved %s -> %s (the added server): %s", tk.VolumeID, tk.Source, tk.Target, tk)
	}
	t.Logf("after:  slot usage %s", slotUsage(finalTopo))

	// The same outcome, read straight from master_pb (not through the
	// product's topology parser).
	raw, err := wc.rawView(context.Background())
	if err != nil {
		t.Fatalf("VolumeList: %v", err)
	}
	for _, r := range roles {
		if r.ec {
			if msg := raw.erasureCoded(r.vid, systemCollection, placement.MinECServers); msg != "" {
				t.Errorf("master_pb: %s volume %d: %s", r.name, r.vid, msg)
			}
			continue
		}
		reps := raw.replicas[r.vid]
		if len(reps) == 0 {
			t.Errorf("master_pb: vacuumed %s volume %d is not listed", r.name, r.vid)
		}
		for node, vi := range reps {
			if vi.GetDeletedByteCount() != 0 || vi.GetSize() >= r.before.Size || vi.GetReadOnly() {
				t.Errorf("master_pb: vacuumed %s volume %d on %s: size %d (was %d), deleted bytes %d, read-only %v",
					r.name, r.vid, node, vi.GetSize(), r.before.Size, vi.GetDeletedByteCount(), vi.GetReadOnly())
			}
		}
	}
	if len(moved) == 0 {
		t.Errorf("no reflected move onto %s", added.HTTP)
	}
	for _, tk := range moved {
		reps := raw.replicas[tk.VolumeID]
		_, onAdded := reps[added.HTTP]
		_, onSource := reps[tk.Source]
		if !onAdded || onSource || len(reps) != 1 || reps[added.HTTP].GetReadOnly() {
			t.Errorf("master_pb: volume %d moved %s -> %s is listed on %v (read-only %v)", tk.VolumeID, tk.Source, tk.Target,
				slices.Sorted(maps.Keys(reps)), reps[added.HTTP].GetReadOnly())
		}
	}

	// ---- 5. Every file: live ones intact, deleted ones gone. EC volumes
	// are read through every volume server (each reconstructs from the
	// shards), the others through every server the master names.
	readBegan := time.Now()
	ecVids := map[uint32]bool{}
	for _, r := range roles {
		if r.ec {
			ecVids[r.vid] = true
		}
	}
	var everyServer []string
	for _, s := range wc.servers {
		everyServer = append(everyServer, s.HTTP)
	}
	reads := readBack(t, wc, roles, everyServer, func(r *volumeRole) bool { return ecVids[r.vid] })
	live := len(allFiles) - countDeleted(allFiles)
	t.Logf("read back %d live files intact and %d deleted ones as 404 (%d reads) in %s",
		live, countDeleted(allFiles), reads, time.Since(readBegan).Round(time.Millisecond))

	// ---- 6. The control plane: both workers connected, three healthy admins.
	testutil.Poll(t, waitTimeout, systemPollEvery, "both workers to be listed as connected", func() (bool, string) {
		ws, res, err := ctlJSONErr[[]sysWorker](t, "", adminAddrs, "workers")
		if err != nil {
			return false, err.Error()
		}
		if err := checkWorkerKeys([]byte(res.Stdout)); err != nil {
			t.Fatalf("ctl workers --json: %v: %s", err, res.Stdout)
		}
		connected := map[string]bool{}
		for _, w := range ws {
			connected[w.ID] = w.Connected
		}
		for _, w := range workers {
			if !connected[w.ID] {
				return false, fmt.Sprintf("worker %s not connected: %s", w.ID, res.Stdout)
			}
		}
		// A connected worker says when the leader last heard from it: a
		// heartbeat interval ago at most (with slack for a slow machine).
		for _, w := range ws {
			heard, err := time.Parse(time.RFC3339Nano, w.LastHeardAt)
			if err != nil {
				return false, fmt.Sprintf("worker %s: last_heard_at %q: %v", w.ID, w.LastHeardAt, err)
			}
			if ago := time.Since(heard); ago < -time.Second || ago > 30*time.Second {
				t.Fatalf("worker %s: the leader last heard from it %s ago, but it is connected with a heartbeat every few seconds: %s", w.ID, ago, res.Stdout)
			}
		}
		return true, ""
	})
	st := admins.waitStable(t, admins.nodes...)
	if len(st.Members) != 3 {
		t.Fatalf("status lists %d members, want 3: %+v", len(st.Members), st.Members)
	}
	// docs/architecture.md §8.3: the leader holds the master's admin lock.
	testutil.Poll(t, waitTimeout, systemPollEvery, "the master's admin lock to name the groundskeeper leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := wc.mc.GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: seaweed.AdminLockName})
		if err != nil {
			return false, err.Error()
		}
		if want := "groundskeeper " + st.LeaderID; !resp.GetIsLocked() || resp.GetClientName() != want {
			return false, fmt.Sprintf("lock %q: locked %v by %q, want %q", seaweed.AdminLockName, resp.GetIsLocked(), resp.GetClientName(), want)
		}
		return true, ""
	})
	for _, nd := range append(slices.Clone(admins.nodes), workers...) {
		if !nd.running() {
			t.Errorf("%s is not running any more:\n%s", nd.ID, nd.logTail(20))
		}
	}
	final, _, err = ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if failed := tasksIn(final, "failed"); len(failed) > 0 {
		t.Fatalf("tasks failed:\n%s", joinTasks(failed))
	}

	// ---- Summary.
	perWorker := map[string]int{}
	for _, tk := range final {
		if tk.State == "completed" {
			perWorker[tk.WorkerID]++
		}
	}
	var firsts []string
	for _, typ := range []string{"vacuum", "erasure_coding", "balance"} {
		firsts = append(firsts, fmt.Sprintf("%s %s", typ, firstDone[typ].Round(100*time.Millisecond)))
	}
	t.Logf("SUMMARY: %d tasks: %s; completed per worker %v; first completion after the admins started: %s; "+
		"maintenance done and quiet after %s; leader %s (term %d); whole test %s",
		len(final), typeSummary(final), perWorker, strings.Join(firsts, ", "),
		quietAfter.Round(100*time.Millisecond), st.LeaderID, st.Term, time.Since(testStart).Round(100*time.Millisecond))
	for _, tk := range final {
		t.Logf("  %s", tk)
	}
}

// ---------------------------------------------------------------------------

// pendingWork says what work the topology still calls for ("" if none),
// as the admin's detection sees it: the volumes the tasks moved stay where
// they went (the admin's cooldown), so a quiet system is not judged by
// moves it will never make.
func pendingWork(topo *seaweed.Topology, tasks []sysTask, th scheduler.Thresholds) string {
	var done []scheduler.ActiveMove
	for _, tk := range tasksFor(tasks, "balance", 0, "completed") {
		done = append(done, scheduler.ActiveMove{VolumeID: tk.VolumeID, Source: tk.Source, Target: tk.Target, Done: true})
	}
	props := scheduler.Detect(topo, func(uint32) bool { return false }, done, th, time.Now())
	if len(props) == 0 {
		return ""
	}
	var s []string
	for _, p := range props {
		s = append(s, fmt.Sprintf("type %v volume %d (%s)", p.Type, p.VolumeID, p.Reason))
	}
	return "the topology still calls for work: " + strings.Join(s, "; ")
}

func roleVids(roles []*volumeRole) string {
	var s []string
	for _, r := range roles {
		s = append(s, fmt.Sprintf("%s=%d", r.name, r.vid))
	}
	return strings.Join(s, " ")
}

func countDeleted(files []*storedFile) int {
	n := 0
	for _, f := range files {
		if f.Deleted {
			n++
		}
	}
	return n
}

func countCollection(topo *seaweed.Topology, collection string) int {
	n := 0
	for _, v := range topo.Volumes {
		if v.Collection == collection {
			n++
		}
	}
	return n
}

// slotUsage prints each server's used/max volume slots (and EC shards).
func slotUsage(topo *seaweed.Topology) string {
	var s []string
	for _, srv := range topo.Servers {
		var used, max int64
		shards := 0
		for _, d := range srv.Disks {
			used, max, shards = used+d.VolumeCount, max+d.MaxVolumes, shards+d.EcShards
		}
		s = append(s, fmt.Sprintf("%s %d/%d+%dsh", srv.ID, used, max, shards))
	}
	return strings.Join(s, ", ")
}

// ecDone says what is missing for vid to count as erasure coded in the
// master's topology ("" when it is).
// maintenanceDone says what is still missing (or "" once nothing is) of the
// maintenance run both real-SeaweedFS system tests wait for: every role
// volume erasure coded or vacuumed as the master shows it, a completed move
// onto the added server, and no task active.
func maintenanceDone(tasks []sysTask, topo *seaweed.Topology, roles []*volumeRole, added *volumeServer, isAdded func(string) bool) string {
	for _, r := range roles {
		if r.ec {
			if !hasTask(tasks, "erasure_coding", r.vid, "completed") {
				return fmt.Sprintf("no completed erasure coding of %s volume %d yet", r.name, r.vid)
			}
			if msg := ecDone(topo, r.vid); msg != "" {
				return msg
			}
			continue
		}
		if !hasTask(tasks, "vacuum", r.vid, "completed") {
			return fmt.Sprintf("no completed vacuum of %s volume %d yet", r.name, r.vid)
		}
		v := topo.Volumes[r.vid]
		if v == nil {
			return fmt.Sprintf("vacuumed volume %d is not in the master's topology", r.vid)
		}
		if v.GarbageRatio() >= 0.05 || v.Size >= r.before.Size {
			return fmt.Sprintf("master still shows vacuumed volume %d at %d bytes with %d deleted bytes (was %d, %d)", r.vid, v.Size, v.DeletedBytes, r.before.Size, r.before.DeletedBytes)
		}
	}
	if moved := movedToAdded(tasks, topo, isAdded); len(moved) == 0 {
		return "no completed balance onto the added server " + added.HTTP + " that the master reflects; slot usage: " + slotUsage(topo)
	}
	if active := tasksIn(tasks, "pending", "assigned", "running"); len(active) > 0 {
		return fmt.Sprintf("%d tasks still active:\n%s", len(active), joinTasks(active))
	}
	return ""
}

func ecDone(topo *seaweed.Topology, vid uint32) string {
	if _, ok := topo.Volumes[vid]; ok {
		return fmt.Sprintf("erasure coded volume %d is still listed as a regular volume on %v", vid, holders(topo, vid))
	}
	e := topo.EcVolumes[vid]
	if e == nil {
		return fmt.Sprintf("master lists no EC shards of volume %d", vid)
	}
	if e.ShardCount() != placement.TotalShards {
		return fmt.Sprintf("master lists %d EC shards of volume %d: %v", e.ShardCount(), vid, e.Shards)
	}
	if n := len(shardHolders(e)); n < placement.MinECServers {
		return fmt.Sprintf("EC shards of volume %d on only %d servers: %v", vid, n, e.Shards)
	}
	return ""
}

func shardHolders(e *seaweed.EcVolume) []string {
	if e == nil {
		return nil
	}
	set := map[string]bool{}
	for _, hs := range e.Shards {
		for _, h := range hs {
			set[h] = true
		}
	}
	var out []string
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// movedToAdded lists the completed balance tasks onto the added server that
// the master reflects: the volume on the target, not on the source.
func movedToAdded(tasks []sysTask, topo *seaweed.Topology, isAdded func(string) bool) []sysTask {
	var out []sysTask
	for _, tk := range tasksFor(tasks, "balance", 0, "completed") {
		if !isAdded(tk.Target) {
			continue
		}
		hs := holders(topo, tk.VolumeID)
		onTarget, onSource := false, false
		for _, h := range hs {
			onTarget = onTarget || isAdded(h)
			onSource = onSource || h == tk.Source || strings.HasPrefix(tk.Source, h+".")
		}
		if onTarget && !onSource {
			out = append(out, tk)
		}
	}
	return out
}

// tasksFor filters by type, volume (0: any) and state ("": any).
func tasksFor(tasks []sysTask, typ string, vid uint32, state string) []sysTask {
	var out []sysTask
	for _, tk := range tasks {
		if tk.Type == typ && (vid == 0 || tk.VolumeID == vid) && (state == "" || tk.State == state) {
			out = append(out, tk)
		}
	}
	return out
}

func hasTask(tasks []sysTask, typ string, vid uint32, state string) bool {
	return len(tasksFor(tasks, typ, vid, state)) > 0
}

func tasksIn(tasks []sysTask, states ...string) []sysTask {
	var out []sysTask
	for _, tk := range tasks {
		if slices.Contains(states, tk.State) {
			out = append(out, tk)
		}
	}
	return out
}

func joinTasks(tasks []sysTask) string {
	var s []string
	for _, tk := range tasks {
		s = append(s, "  "+tk.String())
	}
	return strings.Join(s, "\n")
}

// stateSummary is "type:state=n ..." in a stable order.
func stateSummary(tasks []sysTask) string {
	m := map[string]int{}
	for _, tk := range tasks {
		m[tk.Type+":"+tk.State]++
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// typeSummary counts tasks per type (with how many completed).
func typeSummary(tasks []sysTask) string {
	var s []string
	for _, typ := range []string{"vacuum", "erasure_coding", "balance"} {
		all := tasksFor(tasks, typ, 0, "")
		done := tasksFor(tasks, typ, 0, "completed")
		s = append(s, fmt.Sprintf("%s %d (%d completed)", typ, len(all), len(done)))
	}
	return strings.Join(s, ", ")
}
