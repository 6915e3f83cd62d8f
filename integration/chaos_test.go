package integration

// The maintenance run of TestMaintenanceOnRealSeaweedFS, with failures
// injected while it runs: five leader kills (each restarted), one worker
// killed in the middle of a task (and restarted with its journal) and one
// restart of the SeaweedFS master.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const (
	// chaosTimeout bounds the maintenance run under failures, from the
	// admins' start to every expected change in the topology.
	chaosTimeout = 4 * time.Minute
	// chaosLeaderKills is how many times the current leader is killed.
	chaosLeaderKills = 5
	// chaosRawTimeout bounds the wait for the master's VolumeList to list
	// each EC shard exactly once: a stale duplicate lasts until the volume
	// server's next full EC heartbeat (17 pulses of 5 s).
	chaosRawTimeout = 2 * time.Minute
	// chaosKillSpacing separates two deliberate kills (part of the
	// scenario, not a wait for a condition).
	chaosKillSpacing = 2 * time.Second
	// chaosMasterRestartAfter is the leader kill after which the SeaweedFS
	// master is restarted.
	chaosMasterRestartAfter = 2
)

// chaosAdmin is one admin with the whole command line it was started with,
// so a restart uses the same flags and data dir.
type chaosAdmin struct {
	*node
	argv []string
}

// chaosLeader asks the admins for their status and returns the leader's id
// and the term it was seen in.
func chaosLeader(t *testing.T, admins string) (string, uint64, error) {
	st, _, err := ctlJSONErr[statusJSON](t, "status", admins, "status", "--timeout", "5s")
	if err != nil {
		return "", 0, err
	}
	if st.LeaderID == "" {
		return "", st.Term, fmt.Errorf("%s knows no leader (term %d)", st.NodeID, st.Term)
	}
	return st.LeaderID, st.Term, nil
}

// restartWeedMaster kills the master's process group and starts it again
// with the same command line (same port and -mdir); it returns once the
// master lists every volume server again.
func (c *weedCluster) restartWeedMaster(t *testing.T) time.Duration {
	t.Helper()
	bin := weedBinary(t)
	old := c.master
	args := append([]string(nil), old.cmd.Args[1:]...)
	if len(args) > 0 && args[0] == "-logtostderr" {
		args = args[1:]
	}
	began := time.Now()
	old.stop()
	if !old.exited() {
		t.Fatalf("the weed master did not exit after SIGKILL")
	}
	logPath := strings.TrimSuffix(old.logPath, ".log") + fmt.Sprintf("-restart-%d.log", time.Now().UnixNano())
	c.master = startWeed(t, bin, "master", logPath, args...)
	c.waitTopologyWithin(t, weedStartTimeout, "the restarted master to list every volume server again", func(topo *seaweed.Topology) (bool, string) {
		if c.master.exited() {
			t.Fatalf("the restarted master exited:\n%s", c.master.logTail(25))
		}
		for _, s := range c.servers {
			if _, ok := topo.Server(s.HTTP); !ok {
				return false, fmt.Sprintf("%d servers listed, %s missing", len(topo.Servers), s.HTTP)
			}
		}
		return true, ""
	})
	return time.Since(began)
}

// TestMaintenanceSurvivesFailures: the maintenance of
// TestMaintenanceOnRealSeaweedFS, during which a worker is killed in the
// middle of a task (and restarted with the same id and data dir), the
// current leader is killed five times a few seconds apart (each restarted
// with the same flags and data dir) and the SeaweedFS master is restarted.
// Afterwards all the work must be done as the master reports it, every live
// file must read back with its checksum and every deleted one stay deleted,
// no task may have failed, and the three admins must be healthy members.
func TestMaintenanceSurvivesFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, three admins and two workers")
	}
	testStart := time.Now()
	wc := startWeedCluster(t, 4)

	// ---- 1. Data, as in TestMaintenanceOnRealSeaweedFS (more volumes to
	// erasure code would leave too few regular ones for a balance).
	th, roles := systemThresholds, systemRoles()
	_, allFiles, _, reassigns := seedRoles(t, wc, roles, th)
	t.Logf("wrote %d files (%d deleted) to volumes %v; %d re-assigns", len(allFiles), countDeleted(allFiles), roleVids(roles), reassigns)

	// ---- 2. Three admins, two workers, one added volume server.
	maintBegan := time.Now()
	m := startMaintenance(t, wc, th)
	cl, adminAddrs, workers, added, isAdded := m.cl, m.adminAddrs, m.workers, m.added, m.isAdded
	var admins []*chaosAdmin
	for i, nd := range cl.nodes {
		admins = append(admins, &chaosAdmin{node: nd, argv: m.argv[i]})
	}
	adminByID := func(id string) *chaosAdmin {
		for _, a := range admins {
			if a.ID == id {
				return a
			}
		}
		t.Fatalf("no admin %q", id)
		return nil
	}
	workerByID := map[string]*node{}
	for _, w := range workers {
		workerByID[w.ID] = w
	}

	var chaosLog []string
	note := func(format string, args ...any) {
		msg := fmt.Sprintf("%6.1fs ", time.Since(maintBegan).Seconds()) + fmt.Sprintf(format, args...)
		chaosLog = append(chaosLog, msg)
		t.Log("CHAOS " + msg)
	}
	checkNoFailed := func(tasks []sysTask) {
		t.Helper()
		if failed := tasksIn(tasks, "failed"); len(failed) > 0 {
			t.Fatalf("tasks failed:\n%s", joinTasks(failed))
		}
	}

	// ---- 3a. Kill a worker while it runs a task, then restart it with the
	// same id and data dir.
	var victimTask sysTask
	var victim *node
	testutil.Poll(t, 90*time.Second, 100*time.Millisecond, "a task running on a worker", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		checkNoFailed(tasks)
		for _, tk := range tasks {
			if tk.State == "running" && workerByID[tk.WorkerID] != nil {
				victimTask, victim = tk, workerByID[tk.WorkerID]
				return true, ""
			}
		}
		return false, stateSummary(tasks)
	})
	victim.kill9(t)
	note("kill -9 worker %s while it runs %s", victim.ID, victimTask)
	time.Sleep(time.Second) // the worker stays down briefly: part of the scenario
	victim.startArgs(t, "worker", "--id", victim.ID, "--admin", adminAddrs, "--data-dir", victim.DataDir)
	note("restarted worker %s with the same id and data dir", victim.ID)

	// ---- 3b. Five leader kills (with the master restart among them) a few seconds apart, each restarted at once
	// with the same flags and data dir.
	killedLeaders := []string{}
	for i := 1; i <= chaosLeaderKills; i++ {
		var leader string
		var term uint64
		testutil.Poll(t, waitTimeout, pollEvery, "a leader to kill", func() (bool, string) {
			id, tm, err := chaosLeader(t, adminAddrs)
			if err != nil {
				return false, err.Error()
			}
			if !adminByID(id).running() {
				return false, fmt.Sprintf("leader %s is reported but not running", id)
			}
			leader, term = id, tm
			return true, ""
		})
		a := adminByID(leader)
		a.kill9(t)
		killedAt := time.Now()
		a.startArgs(t, a.argv...)
		killedLeaders = append(killedLeaders, leader)
		var next string
		var nextTerm uint64
		testutil.Poll(t, waitTimeout, pollEvery, "a new leader after the kill", func() (bool, string) {
			id, tm, err := chaosLeader(t, adminAddrs)
			if err != nil {
				return false, err.Error()
			}
			if tm <= term {
				return false, fmt.Sprintf("still term %d (leader %s)", tm, id)
			}
			next, nextTerm = id, tm
			return true, ""
		})
		note("leader kill %d: kill -9 %s (term %d), restarted; new leader %s in term %d after %s",
			i, leader, term, next, nextTerm, time.Since(killedAt).Round(time.Millisecond))
		if tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks"); err == nil {
			checkNoFailed(tasks)
			note("tasks: %s", stateSummary(tasks))
		}
		if i < chaosLeaderKills {
			time.Sleep(chaosKillSpacing) // spacing between deliberate kills
		}
		if i == chaosMasterRestartAfter {
			// ---- 3c. Restart the SeaweedFS master (same port and -mdir).
			took := wc.restartWeedMaster(t)
			note("restarted the weed master; it listed all %d volume servers again after %s", len(wc.servers), took.Round(time.Millisecond))
			time.Sleep(chaosKillSpacing) // spacing between deliberate kills
		}
	}

	// ---- 4. Wait for all the work to be done, as the master reports it.
	lastSummary := ""
	var final []sysTask
	var finalTopo *seaweed.Topology
	remaining := chaosTimeout - time.Since(maintBegan)
	if remaining < time.Minute {
		remaining = time.Minute
	}
	testutil.Poll(t, remaining, systemPollEvery, "vacuum, erasure coding and balance to complete after the failures", func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		checkNoFailed(tasks)
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
		final, finalTopo = tasks, topo
		return true, ""
	})
	doneAfter := time.Since(maintBegan)
	t.Logf("all the work seen done %s after the admins started (checked from the last kill on)", doneAfter.Round(time.Millisecond))
	for _, r := range roles {
		if r.ec {
			e := finalTopo.EcVolumes[r.vid]
			t.Logf("after:  %-12s volume %d: erasure coded, 14 shards on %v", r.name, r.vid, shardHolders(e))
		} else {
			v := finalTopo.Volumes[r.vid]
			t.Logf("after:  %-12s volume %d on %v: %d bytes (was %d), %d deleted bytes (was %d)", r.name, r.vid, holders(finalTopo, r.vid), v.Size, r.before.Size, v.DeletedBytes, r.before.DeletedBytes)
		}
	}
	for _, tk := range movedToAdded(final, finalTopo, isAdded) {
		t.Logf("after:  volume %d moved %s -> %s (the added server)", tk.VolumeID, tk.Source, tk.Target)
	}
	// The master's own view, without the product's parser. After a master
	// restart a volume server replays EC shard deltas queued while it was
	// disconnected after its full heartbeat, and the master may list a
	// shard twice until the next full EC heartbeat (17 pulses): poll.
	rawLag := testutil.Poll(t, chaosRawTimeout, systemPollEvery, "the master's own VolumeList to show the outcome exactly", func() (bool, string) {
		raw, err := wc.rawView(context.Background())
		if err != nil {
			return false, "VolumeList: " + err.Error()
		}
		for _, r := range roles {
			if r.ec {
				if msg := raw.erasureCoded(r.vid, systemCollection, placement.MinECServers); msg != "" {
					return false, fmt.Sprintf("%s volume %d: %s", r.name, r.vid, msg)
				}
				continue
			}
			reps := raw.replicas[r.vid]
			if len(reps) == 0 {
				return false, fmt.Sprintf("vacuumed %s volume %d is not listed", r.name, r.vid)
			}
			for node, vi := range reps {
				if vi.GetDeletedByteCount() != 0 || vi.GetSize() >= r.before.Size || vi.GetReadOnly() {
					return false, fmt.Sprintf("vacuumed %s volume %d on %s: size %d (was %d), deleted bytes %d, read-only %v",
						r.name, r.vid, node, vi.GetSize(), r.before.Size, vi.GetDeletedByteCount(), vi.GetReadOnly())
				}
			}
		}
		for _, tk := range movedToAdded(final, finalTopo, isAdded) {
			reps := raw.replicas[tk.VolumeID]
			_, onAdded := reps[added.HTTP]
			_, onSource := reps[tk.Source]
			if !onAdded || onSource || len(reps) != 1 || reps[added.HTTP].GetReadOnly() {
				return false, fmt.Sprintf("volume %d moved %s -> %s is listed on %d servers (on the added one: %v, on the source: %v)",
					tk.VolumeID, tk.Source, tk.Target, len(reps), onAdded, onSource)
			}
		}
		return true, ""
	})
	t.Logf("the master's own VolumeList showed the exact outcome %s after the work was done", rawLag.Round(time.Millisecond))

	// ---- 5. Every file: live ones intact, deleted ones 404.
	var everyServer []string
	for _, s := range wc.servers {
		everyServer = append(everyServer, s.HTTP)
	}
	readBegan := time.Now()
	reads := readBack(t, wc, roles, everyServer, func(r *volumeRole) bool { return r.ec })
	t.Logf("read back %d live files intact and %d deleted ones as 404 (%d reads) in %s",
		len(allFiles)-countDeleted(allFiles), countDeleted(allFiles), reads, time.Since(readBegan).Round(time.Millisecond))

	// ---- 6. Three healthy admins, every process still up, no failed task.
	st := cl.waitStable(t, cl.nodes...)
	followers, unreachable := 0, 0
	for _, m := range st.Members {
		switch m.State {
		case "follower":
			followers++
		case "leader":
		default:
			unreachable++
		}
	}
	if len(st.Members) != 3 || followers != 2 || unreachable != 0 {
		t.Fatalf("status: %d members, %d followers, %d neither leader nor follower: %+v", len(st.Members), followers, unreachable, st.Members)
	}
	for _, nd := range append(append([]*node(nil), cl.nodes...), workers...) {
		if !nd.running() {
			t.Errorf("%s is not running any more:\n%s", nd.ID, nd.logTail(20))
		}
	}
	var err error
	final, _, err = ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	checkNoFailed(final)

	// ---- Summary.
	var retried []string
	for _, tk := range final {
		if tk.Attempt > 1 || tk.RetryCount > 0 {
			retried = append(retried, tk.String())
		}
		if tk.ID == victimTask.ID {
			t.Logf("the task running when %s was killed ended as: %s", victim.ID, tk)
		}
	}
	t.Logf("SUMMARY: %d worker kill mid-task (%s, task %d), %d leader kills (%s), 1 master restart; %d tasks: %s; "+
		"%d with more than one attempt; cancelled %d; work seen done %s after the admins started; final leader %s (term %d); whole test %s",
		1, victim.ID, victimTask.ID, len(killedLeaders), strings.Join(killedLeaders, ","), len(final), typeSummary(final),
		len(retried), len(tasksIn(final, "cancelled")), doneAfter.Round(100*time.Millisecond), st.LeaderID, st.Term,
		time.Since(testStart).Round(100*time.Millisecond))
	for _, s := range chaosLog {
		t.Logf("  chaos %s", s)
	}
	for _, s := range retried {
		t.Logf("  retried: %s", s)
	}
	for _, tk := range final {
		t.Logf("  %s", tk)
	}
}
