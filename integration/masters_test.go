package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// weedMasters is a SeaweedFS cluster of several masters (`-peers`) in one
// raft, and its volume servers. Its weedCluster's master fields name the
// master leader as last found (see lead).
type weedMasters struct {
	*weedCluster
	bin   string
	dir   string
	procs []*weedProc
	args  [][]string
	http  []string // host:port of each master
	mcs   []master_pb.SeaweedClient
}

// startWeedMasters starts n masters in one raft and servers volume servers
// that know all of them, and waits until a master leads and lists them all.
func startWeedMasters(t *testing.T, n, servers int) *weedMasters {
	t.Helper()
	return startWeedMastersWith(t, n, make([]volumeSpec, servers), weedOptions{})
}

// startWeedMastersWith is startWeedMasters with a volume server placed by
// each of specs and the cluster's security opts (every weed process runs
// in opts.cwd).
func startWeedMastersWith(t *testing.T, n int, specs []volumeSpec, opts weedOptions) *weedMasters {
	t.Helper()
	servers := len(specs)
	bin := weedBinary(t)
	dir := t.TempDir()
	c := &weedMasters{weedCluster: &weedCluster{vc: seaweed.NewVolumeClient(opts.dial...), hc: &http.Client{Timeout: httpTimeout}, opts: opts}, bin: bin, dir: dir}
	for i := 0; i < n; i++ {
		c.http = append(c.http, fmt.Sprintf("127.0.0.1:%d", testutil.FreePortPair(t, 10000)))
	}
	peers := strings.Join(c.http, ",")
	c.masterPeers = peers
	c.refind = func() {
		if i, _ := c.leader(); i >= 0 {
			c.point(i)
		}
	}
	for i, addr := range c.http {
		mdir := filepath.Join(dir, fmt.Sprintf("master%d", i))
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, port, _ := strings.Cut(addr, ":")
		// A short election timeout (SeaweedFS's default is 10 s) keeps the
		// test's wait for a new master leader short.
		args := []string{"master", "-ip=127.0.0.1", "-port=" + port, "-mdir=" + mdir, "-volumeSizeLimitMB=8", "-peers=" + peers, "-electionTimeout=3s"}
		c.args = append(c.args, args)
		c.procs = append(c.procs, startWeedIn(t, bin, fmt.Sprintf("master%d", i), filepath.Join(dir, fmt.Sprintf("master%d.log", i)), opts.cwd, args...))
		var grpcPort int
		fmt.Sscan(port, &grpcPort)
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort+10000), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts.dial...)...)
		if err != nil {
			t.Fatalf("dial master %s: %v", addr, err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c.mcs = append(c.mcs, master_pb.NewSeaweedClient(conn))
	}
	for _, spec := range specs {
		c.startVolume(t, bin, dir, spec)
	}
	t.Cleanup(func() {
		_ = c.vc.Close()
		if t.Failed() {
			for _, p := range append(append([]*weedProc(nil), c.procs...), procs(c.servers)...) {
				t.Logf("--- last lines of %s (%s):\n%s", p.name, p.logPath, p.logTail(25))
			}
		}
	})
	c.lead(t, -1)
	c.waitTopologyWithin(t, weedStartTimeout, fmt.Sprintf("the master leader to list %d volume servers", servers), func(topo *seaweed.Topology) (bool, string) {
		for _, s := range c.servers {
			if _, ok := topo.Server(s.HTTP); !ok {
				return false, fmt.Sprintf("%d servers listed, %s missing", len(topo.Servers), s.HTTP)
			}
		}
		return true, ""
	})
	return c
}

// restart starts master i again (after stop), on its ports and data
// directory, and waits until it names a master leader.
func (c *weedMasters) restart(t *testing.T, i int) {
	t.Helper()
	c.procs[i] = startWeedIn(t, c.bin, fmt.Sprintf("master%d (restarted)", i), filepath.Join(c.dir, fmt.Sprintf("master%d-restarted.log", i)), c.opts.cwd, c.args[i]...)
	testutil.Poll(t, weedStartTimeout, weedPollEvery, fmt.Sprintf("restarted master %s to name a leader", c.http[i]), func() (bool, string) {
		if c.procs[i].exited() {
			t.Fatalf("%s exited:\n%s", c.procs[i].name, c.procs[i].logTail(25))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := c.mcs[i].GetMasterConfiguration(ctx, &master_pb.GetMasterConfigurationRequest{})
		if err != nil {
			return false, err.Error()
		}
		return resp.Leader != "", fmt.Sprintf("leader %q", resp.Leader)
	})
}

// leader is the master answering VolumeList (-1: none does).
func (c *weedMasters) leader() (int, string) {
	var why []string
	for i, mc := range c.mcs {
		if c.procs[i].exited() {
			why = append(why, c.http[i]+" dead")
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := mc.VolumeList(ctx, &master_pb.VolumeListRequest{})
		cancel()
		if err == nil {
			return i, ""
		}
		why = append(why, fmt.Sprintf("%s: %v", c.http[i], err))
	}
	return -1, strings.Join(why, "; ")
}

// lead waits for a master other than not to lead, points the weedCluster
// at it and returns it.
func (c *weedMasters) lead(t *testing.T, not int) int {
	t.Helper()
	var i int
	testutil.Poll(t, weedStartTimeout, weedPollEvery, "a SeaweedFS master leader", func() (bool, string) {
		for j, p := range c.procs {
			if j != not && p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, p.logTail(25))
			}
		}
		var why string
		i, why = c.leader()
		return i >= 0 && i != not, why
	})
	c.point(i)
	return i
}

// point makes master i the one the weedCluster asks.
func (c *weedMasters) point(i int) {
	c.master, c.masterHTTP, c.mc = c.procs[i], c.http[i], c.mcs[i]
}

// lockHolder asks master i who holds the admin lock.
func (c *weedMasters) lockHolder(i int) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.mcs[i].GetAdminLockStatus(ctx, &master_pb.GetAdminLockStatusRequest{LockName: seaweed.AdminLockName})
	return resp.GetClientName(), resp.GetIsLocked(), err
}

type mastersStatus struct {
	LeaderID    string `json:"leader_id"`
	Maintenance *struct {
		Master      string `json:"master"`
		MasterState string `json:"master_state"`
		MasterError string `json:"master_error"`
		AdminLock   string `json:"admin_lock"`
		Paused      string `json:"paused"`
		Masters     []struct {
			Address string `json:"address"`
			State   string `json:"state"`
			Leader  string `json:"leader"`
			Error   string `json:"error"`
		} `json:"masters"`
	} `json:"maintenance"`
}

// states is the masters' states as status lists them, keyed by HTTP address.
func (s mastersStatus) states() map[string]string {
	out := map[string]string{}
	if s.Maintenance != nil {
		for _, m := range s.Maintenance.Masters {
			a, _ := seaweed.ParseAddress(m.Address)
			out[a.HTTP] = m.State
		}
	}
	return out
}

// TestMasterLeaderKilled: SeaweedFS runs three masters in one raft; the
// admin is given all three (a follower first, or in -peers order). It finds the master leader,
// holds the admin lock there, and `ctl status` lists the three with the
// leader. The master leader is killed (SIGKILL): once the survivors elect
// a new one, the admin follows it, takes the admin lock on it, status
// shows the dead master unreachable, and a vacuum of garbage made after
// the kill is detected and completes; every file reads back. Then the
// killed master comes back, the second master leader is killed, and the
// same holds on the third.
func TestMasterLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three SeaweedFS masters, two volume servers, an admin and a worker")
	}
	t.Run("follower first", func(t *testing.T) { testMasterLeaderKilled(t, true) })
	t.Run("in order", func(t *testing.T) { testMasterLeaderKilled(t, false) })
}

// testMasterLeaderKilled is TestMasterLeaderKilled with the masters given
// a follower first, or in the order of -peers (whichever leads).
func testMasterLeaderKilled(t *testing.T, followerFirst bool) {
	wc := startWeedMasters(t, 3, 2)
	old := wc.lead(t, -1)
	follower := (old + 1) % 3
	order := wc.http
	if followerFirst {
		order = []string{wc.http[follower], wc.http[old], wc.http[(old+2)%3]}
	}

	// A volume of files, half of which are deleted after the kill: vacuum
	// work only the new master leader shows.
	a, vid := wc.assignWithin(t, 60*time.Second, "masters", 20, 64<<10+4<<10)
	files := wc.writeAssigned(t, a, vid, 20, 64<<10, 7)

	admins := newCluster(t, 1)
	nd := admins.nodes[0]
	nd.startArgs(t, append(nd.args(), "--master", strings.Join(order, ","), "--detect-interval", "1s",
		"--vacuum-garbage-threshold", "0.3", "--balance-imbalance-threshold", "1000")...)
	admins.waitStable(t, admins.nodes...)
	addr := nd.GRPCAddr
	startWorkers(t, 1, []string{addr})

	waitStatus := func(what string, cond func(s mastersStatus) (bool, string)) mastersStatus {
		t.Helper()
		var st mastersStatus
		testutil.Poll(t, 90*time.Second, pollEvery, what, func() (bool, string) {
			var err error
			if st, _, err = ctlJSONErr[mastersStatus](t, "status", addr, "status"); err != nil {
				return false, err.Error()
			}
			if st.Maintenance == nil {
				return false, "no maintenance view"
			}
			return cond(st)
		})
		return st
	}
	st := waitStatus("the admin to find the master leader and hold the admin lock", func(s mastersStatus) (bool, string) {
		m := s.Maintenance
		ss := s.states()
		return m.MasterState == "ok" && m.AdminLock == "ours" && strings.HasPrefix(m.Master, wc.http[old]+".") &&
				ss[wc.http[old]] == "leader" && ss[wc.http[follower]] == "follower" && ss[wc.http[(old+2)%3]] == "follower",
			fmt.Sprintf("%+v", *m)
	})
	if len(st.Maintenance.Masters) != 3 {
		t.Errorf("status lists %d masters, want 3", len(st.Maintenance.Masters))
	}
	if h, held, err := wc.lockHolder(old); err != nil || !held || h != "groundskeeper "+nd.ID {
		t.Errorf("master leader %s says the admin lock is held %v by %q (%v); want groundskeeper %s", wc.http[old], held, h, err, nd.ID)
	}
	text := ctl(t, addr, "status")
	for _, want := range []string{"SeaweedFS master leader " + wc.http[old], "master " + wc.http[old] + ".", ": leader"} {
		if !strings.Contains(text.Stdout, want) {
			t.Errorf("ctl status lacks %q:\n%s", want, text.Stdout)
		}
	}

	// Kill the master leader.
	killed := time.Now()
	wc.procs[old].stop()
	next := wc.lead(t, old)
	elected := time.Now()
	t.Logf("master %s killed; %s leads %s later", wc.http[old], wc.http[next], elected.Sub(killed).Round(10*time.Millisecond))

	waitStatus("the admin to follow the new master leader and take the admin lock there", func(s mastersStatus) (bool, string) {
		m := s.Maintenance
		ss := s.states()
		return m.AdminLock == "ours" && strings.HasPrefix(m.Master, wc.http[next]+".") &&
			ss[wc.http[next]] == "leader" && ss[wc.http[old]] == "unreachable", fmt.Sprintf("%+v", *m)
	})
	t.Logf("admin lock ours on the new master leader %s after its election", time.Since(elected).Round(10*time.Millisecond))
	if h, held, err := wc.lockHolder(next); err != nil || !held || h != "groundskeeper "+nd.ID {
		t.Errorf("new master leader %s says the admin lock is held %v by %q (%v); want groundskeeper %s", wc.http[next], held, h, err, nd.ID)
	}

	// Garbage made now: detection on the new master leader's topology
	// finds it and a worker vacuums it.
	wc.deleteFiles(t, a.URL, files[:10])
	waitVacuums(t, addr, vid, 1, "a vacuum detected after the kill to complete")
	t.Logf("vacuum detected and completed %s after the new master leader's election", time.Since(elected).Round(10*time.Millisecond))
	wc.waitTopology(t, "the new master leader to show the vacuumed volume", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.GarbageRatio() < 0.1, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	wc.checkFiles(t, files[10:])

	// Twice: the killed master comes back as a follower, and the second
	// master leader is killed.
	wc.restart(t, old)
	killed = time.Now()
	wc.procs[next].stop()
	third := wc.lead(t, next)
	elected = time.Now()
	t.Logf("master %s killed; %s leads %s later", wc.http[next], wc.http[third], elected.Sub(killed).Round(10*time.Millisecond))
	waitStatus("the admin to follow the third master leader and take the admin lock there", func(s mastersStatus) (bool, string) {
		m := s.Maintenance
		ss := s.states()
		return m.AdminLock == "ours" && strings.HasPrefix(m.Master, wc.http[third]+".") &&
			ss[wc.http[third]] == "leader" && ss[wc.http[next]] == "unreachable", fmt.Sprintf("%+v", *m)
	})
	if h, held, err := wc.lockHolder(third); err != nil || !held || h != "groundskeeper "+nd.ID {
		t.Errorf("third master leader %s says the admin lock is held %v by %q (%v); want groundskeeper %s", wc.http[third], held, h, err, nd.ID)
	}
	wc.deleteFiles(t, a.URL, files[10:15])
	waitVacuums(t, addr, vid, 2, "a second vacuum, detected after the second kill, to complete")
	t.Logf("second vacuum detected and completed %s after the third master leader's election", time.Since(elected).Round(10*time.Millisecond))
	wc.checkFiles(t, files[15:])
}

// waitVacuums waits, through ctl tasks on addr, until n vacuums of volume
// vid have completed; a failed one fails the test.
func waitVacuums(t *testing.T, addr string, vid uint32, n int, what string) {
	t.Helper()
	testutil.Poll(t, 120*time.Second, pollEvery, what, func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", addr, "tasks")
		if err != nil {
			return false, err.Error()
		}
		done := 0
		for _, tk := range tasks {
			if tk.VolumeID == vid && tk.Type == "vacuum" {
				if tk.State == "failed" {
					t.Fatalf("a vacuum failed: %s", tk.String())
				}
				if tk.State == "completed" {
					done++
				}
			}
		}
		return done >= n, joinTasks(tasks)
	})
}
