package integration

// Helpers for TestMaintenanceOnRealSeaweedFS: admins and workers started
// with arbitrary flags (the harness's node.start knows only the raft flags),
// volume servers added to a running SeaweedFS cluster, assignments that
// ride out the master's volume growth, lookups and reads through the
// servers the master names.

import (
	"cmp"
	"context"
	"crypto/sha256"
	enc "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// startArgs is node.start with the whole command line given: it launches
// the binary with args in its own process group, appending its output to
// the node's log, and keeps the node's bookkeeping (running, signal,
// waitExit, logTail) working. An admin or a worker gets the harness PKI's
// certificate for its --id unless args name their own transport
// (harnessTLSArgs).
func (n *node) startArgs(t testing.TB, args ...string) {
	t.Helper()
	if n.running() {
		t.Fatalf("start %s: already running", n.ID)
	}
	args = withHarnessTLS(t, args)
	f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("open log of %s: %v", n.ID, err)
	}
	fmt.Fprintf(f, "===== test harness: starting %s at %s: %s\n", n.ID, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), n.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", n.ID, err)
	}
	n.failOnRace(t)
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.done, n.state, n.logFile = cmd, done, nil, f
	n.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		n.mu.Lock()
		n.state = cmd.ProcessState
		n.mu.Unlock()
		f.Close()
		close(done)
	}()
}

// startWorkers starts `groundskeeper worker` processes w1..wN against the
// given admin addresses, with extra flags if any. Their process groups are killed when the test
// ends, and their logs' tails printed if it failed.
func startWorkers(t *testing.T, n int, admins []string, extra ...string) []*node {
	t.Helper()
	dir := t.TempDir()
	var ws []*node
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("w%d", i)
		w := &node{ID: id, DataDir: filepath.Join(dir, id, "data"), LogPath: filepath.Join(dir, id+".log")}
		ws = append(ws, w)
	}
	t.Cleanup(func() {
		for _, w := range ws {
			if w.running() {
				_ = w.signal(syscall.SIGKILL)
				w.waitExit(t)
			}
		}
		if t.Failed() {
			for _, w := range ws {
				t.Logf("----- last lines of %s's log (%s) -----\n%s", w.ID, w.LogPath, w.logTail(40))
			}
		}
	})
	for _, w := range ws {
		w.startArgs(t, append([]string{"worker", "--id", w.ID, "--admin", strings.Join(admins, ","), "--data-dir", w.DataDir}, extra...)...)
	}
	return ws
}

// addVolumeServer starts one more (empty) volume server on the cluster's
// master, with the flags startWeedCluster uses, and waits until the master
// lists it.
func (c *weedCluster) addVolumeServer(t *testing.T, spec volumeSpec) *volumeServer {
	t.Helper()
	vs := c.startVolume(t, weedBinary(t), t.TempDir(), spec)
	proc, name := vs.weedProc, vs.name
	c.waitTopologyWithin(t, weedStartTimeout, "the master to list the added volume server "+vs.HTTP, func(topo *seaweed.Topology) (bool, string) {
		if proc.exited() {
			t.Fatalf("%s exited during start-up:\n%s", name, proc.logTail(25))
		}
		if _, ok := topo.Server(vs.HTTP); !ok {
			return false, fmt.Sprintf("%d servers listed", len(topo.Servers))
		}
		return true, ""
	})
	return vs
}

// assignWithin asks the master for count file ids in collection, telling it
// the expected size of each file, and retries while the master answers 503
// (volume growth still in progress) until timeout.
func (c *weedCluster) assignWithin(t *testing.T, timeout time.Duration, collection string, count, dataSize int) (assignResult, uint32) {
	t.Helper()
	return c.assignTo(t, timeout, assignTarget{Collection: collection}, count, dataSize)
}

// assignTarget is what an assignment asks the master for: a collection,
// and a replica placement and disk type ("": the master's defaults).
type assignTarget struct {
	Collection, Replication, Disk string
}

// assignTo is assignWithin for volumes of a placement and disk type.
func (c *weedCluster) assignTo(t *testing.T, timeout time.Duration, to assignTarget, count, dataSize int) (assignResult, uint32) {
	t.Helper()
	q := url.Values{"count": {fmt.Sprint(count)}, "collection": {to.Collection}, "dataSize": {fmt.Sprint(dataSize)}}
	if to.Replication != "" {
		q.Set("replication", to.Replication)
	}
	if to.Disk != "" {
		q.Set("disk", to.Disk)
	}
	collection := to.Collection
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		a, err := func() (assignResult, error) {
			var a assignResult
			resp, err := c.hc.Get("http://" + c.masterHTTP + "/dir/assign?" + q.Encode())
			if err != nil {
				return a, err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return a, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			}
			if err := json.Unmarshal(b, &a); err != nil {
				return a, fmt.Errorf("%v: %s", err, b)
			}
			if a.Error != "" || a.Fid == "" || a.Count < count {
				return a, fmt.Errorf("unusable answer %+v", a)
			}
			return a, nil
		}()
		if err == nil {
			vidStr, _, _ := strings.Cut(a.Fid, ",")
			vid, perr := strconv.ParseUint(vidStr, 10, 32)
			if perr != nil {
				t.Fatalf("assign returned fid %q: %v", a.Fid, perr)
			}
			return a, uint32(vid)
		}
		last = err.Error()
		if time.Now().After(deadline) {
			t.Fatalf("assign of %d ids in %s: no answer within %s; last: %s", count, collection, timeout, last)
		}
		time.Sleep(weedPollEvery)
	}
}

// writeAssigned uploads n files to the ids of one assignment (fid, fid_1,
// ...), each of minSize plus up to minSize/8 random bytes of deterministic
// content, and returns them with their checksums.
func (c *weedCluster) writeAssigned(t *testing.T, a assignResult, vid uint32, n, minSize int, seed uint64) []*storedFile {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(vid)))
	files := make([]*storedFile, n)
	for i := range files {
		fid := a.Fid
		if i > 0 {
			fid = fmt.Sprintf("%s_%d", a.Fid, i)
		}
		data := make([]byte, minSize+rng.IntN(minSize/8+1))
		for j := 0; j < len(data); j += 8 {
			var w [8]byte
			enc.LittleEndian.PutUint64(w[:], rng.Uint64())
			copy(data[j:], w[:])
		}
		c.upload(t, a.URL, fid, data)
		files[i] = &storedFile{Fid: fid, Vid: vid, URL: a.URL, Sum: sha256.Sum256(data), Size: len(data)}
	}
	return files
}

type lookupResult struct {
	Locations []struct {
		URL string `json:"url"`
	} `json:"locations"`
	Error string `json:"error"`
}

// lookup asks the master which servers serve volume vid (for an EC volume,
// the servers holding its shards).
func (c *weedCluster) lookup(vid uint32) ([]string, error) {
	resp, err := c.hc.Get(fmt.Sprintf("http://%s/dir/lookup?volumeId=%d", c.masterHTTP, vid))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r lookupResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("lookup %d: %s: %v: %s", vid, resp.Status, err, b)
	}
	if r.Error != "" || len(r.Locations) == 0 {
		return nil, fmt.Errorf("lookup %d: %s: %s", vid, resp.Status, strings.TrimSpace(string(b)))
	}
	var out []string
	for _, l := range r.Locations {
		out = append(out, l.URL)
	}
	return out, nil
}

// sysTask is a task as `ctl tasks --json` prints it, with the balance
// endpoints.
type sysTask struct {
	taskJSON
	Collection string `json:"collection"`
	Source     string `json:"source"`
	Target     string `json:"target"`
	RetryCount uint32 `json:"retry_count"`
	Origin     string `json:"origin"`
	UpdatedAt  string `json:"updated_at"`
}

func (tk sysTask) String() string {
	s := fmt.Sprintf("task %d %s of volume %d: %s (worker %q, attempt %d, retries %d, progress %.0f%%)", tk.ID, tk.Type, tk.VolumeID, tk.State, tk.WorkerID, tk.Attempt, tk.RetryCount, tk.Progress)
	if tk.Source != "" || tk.Target != "" {
		s += fmt.Sprintf(" %s -> %s", tk.Source, tk.Target)
	}
	if tk.Error != "" {
		s += ": error: " + tk.Error
	}
	return s
}

// sysWorker is a worker as `ctl workers --json` prints it.
type sysWorker struct {
	ID           string   `json:"id"`
	Capabilities []string `json:"capabilities"`
	Connected    bool     `json:"connected"`
	Running      []uint64 `json:"running"`
	LastHeardAt  string   `json:"last_heard_at"`
}

var workerKeys = []string{"id", "capabilities", "connected", "running"}

// checkWorkerKeys verifies the documented keys of `ctl workers --json`.
func checkWorkerKeys(raw []byte) error {
	var arr []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return err
	}
	for _, o := range arr {
		if err := checkKeys(o, workerKeys); err != nil {
			return err
		}
	}
	return nil
}

// rawView is the master's VolumeList read directly from master_pb, without
// the product's seaweed.FromVolumeList, so the final assertions do not share
// a parser with the scheduler they check.
type rawView struct {
	// replicas: volume id -> node id -> its volume information.
	replicas map[uint32]map[string]*master_pb.VolumeInformationMessage
	// ecBits: volume id -> node id -> the shard bits it holds.
	ecBits map[uint32]map[string]uint32
	// ecCollection: volume id -> collection of its shards.
	ecCollection map[uint32]string
	// ecDisks: volume id -> the disk types (placement.DiskTypeKey) holding its shards.
	ecDisks map[uint32]map[string]bool
}

func (c *weedCluster) rawView(ctx context.Context) (*rawView, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.mc.VolumeList(ctx, &master_pb.VolumeListRequest{})
	if err != nil {
		return nil, err
	}
	r := &rawView{replicas: map[uint32]map[string]*master_pb.VolumeInformationMessage{}, ecBits: map[uint32]map[string]uint32{}, ecCollection: map[uint32]string{}, ecDisks: map[uint32]map[string]bool{}}
	for _, dc := range resp.GetTopologyInfo().GetDataCenterInfos() {
		for _, rack := range dc.GetRackInfos() {
			for _, dn := range rack.GetDataNodeInfos() {
				for _, disk := range dn.GetDiskInfos() {
					for _, vi := range disk.GetVolumeInfos() {
						if r.replicas[vi.GetId()] == nil {
							r.replicas[vi.GetId()] = map[string]*master_pb.VolumeInformationMessage{}
						}
						r.replicas[vi.GetId()][dn.GetId()] = vi
					}
					for _, ec := range disk.GetEcShardInfos() {
						if r.ecBits[ec.GetId()] == nil {
							r.ecBits[ec.GetId()] = map[string]uint32{}
						}
						r.ecBits[ec.GetId()][dn.GetId()] |= ec.GetEcIndexBits()
						r.ecCollection[ec.GetId()] = ec.GetCollection()
						if r.ecDisks[ec.GetId()] == nil {
							r.ecDisks[ec.GetId()] = map[string]bool{}
						}
						r.ecDisks[ec.GetId()][placement.DiskTypeKey(disk.GetType())] = true
					}
				}
			}
		}
	}
	return r, nil
}

// erasureCoded says what keeps vid from being a complete EC volume spread
// over at least minServers servers, with no regular replica left ("" if it is).
func (r *rawView) erasureCoded(vid uint32, collection string, minServers int) string {
	if reps := r.replicas[vid]; len(reps) > 0 {
		return fmt.Sprintf("volume %d still has regular replicas on %v", vid, slices.Sorted(maps.Keys(reps)))
	}
	var union uint32
	shards := 0
	for _, b := range r.ecBits[vid] {
		union |= b
		shards += bits.OnesCount32(b)
	}
	const all = 1<<14 - 1
	switch {
	case union != all || shards != 14:
		return fmt.Sprintf("volume %d: shard bits %014b over %d shards on %v, want all 14 once", vid, union, shards, r.ecBits[vid])
	case len(r.ecBits[vid]) < minServers:
		return fmt.Sprintf("volume %d: shards on %d servers, want at least %d", vid, len(r.ecBits[vid]), minServers)
	case r.ecCollection[vid] != collection:
		return fmt.Sprintf("volume %d: shards in collection %q, want %q", vid, r.ecCollection[vid], collection)
	}
	return ""
}

// seedRoles writes each role's files to a volume of its own and deletes
// the ones it picks, waits until the master reflects that, records each
// role's volume as the master then reports it (before) and fails the test
// unless the set-up makes erasure-coding roles full but clean and the
// others garbage-heavy by th. It returns that topology, every file
// written, the volumes written and how often the master had to be asked
// again for a volume not yet taken.
func seedRoles(t *testing.T, wc *weedCluster, roles []*volumeRole, th scheduler.Thresholds) (*seaweed.Topology, []*storedFile, map[uint32]bool, int) {
	t.Helper()
	used := map[uint32]bool{}
	reassigns := 0
	for ri, r := range roles {
		// The master picks the volume; a role needs one of its own.
		var a assignResult
		for {
			// The first assign on a fresh master waits for its volume growth.
			var vid uint32
			to := r.target
			to.Collection = cmp.Or(to.Collection, systemCollection)
			a, vid = wc.assignTo(t, 60*time.Second, to, r.files, r.minSize+r.minSize/16)
			if !used[vid] {
				r.vid = vid
				used[vid] = true
				break
			}
			if reassigns++; reassigns > 40 {
				t.Fatalf("the master keeps assigning volumes already written (%v)", used)
			}
		}
		r.stored = wc.writeAssigned(t, a, r.vid, r.files, r.minSize, uint64(ri+1))
		var del []*storedFile
		for i, f := range r.stored {
			if r.deleted(i) {
				del = append(del, f)
			}
		}
		wc.deleteFiles(t, a.URL, del)
	}
	var allFiles []*storedFile
	for _, r := range roles {
		allFiles = append(allFiles, r.stored...)
	}
	topo := wc.waitTopology(t, "the master to reflect the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		for _, r := range roles {
			v := topo.Volumes[r.vid]
			ndel := countDeleted(r.stored)
			if v == nil || v.FileCount < uint64(r.files) || v.DeleteCount < uint64(ndel) {
				return false, fmt.Sprintf("%s volume %d: %+v (want %d files, %d deletions)", r.name, r.vid, v, r.files, ndel)
			}
		}
		return true, ""
	})
	for _, r := range roles {
		v := topo.Volumes[r.vid]
		r.before = *v
		full := float64(v.Size) / float64(topo.VolumeSizeLimit)
		// The set-up itself must produce what the thresholds look for.
		if r.ec && (full < th.ECFullness || v.GarbageRatio() >= th.VacuumGarbage) {
			t.Fatalf("set-up: %s volume %d is %.2f full with garbage %.2f; want >= %.2f full, garbage < %.2f", r.name, r.vid, full, v.GarbageRatio(), th.ECFullness, th.VacuumGarbage)
		}
		if !r.ec && v.GarbageRatio() < th.VacuumGarbage {
			t.Fatalf("set-up: %s volume %d has garbage %.2f < %.2f", r.name, r.vid, v.GarbageRatio(), th.VacuumGarbage)
		}
	}
	return topo, allFiles, used, reassigns
}

// detectingArgs are nd's admin arguments with detection on against wc's
// master at thresholds th.
func detectingArgs(nd *node, wc *weedCluster, th scheduler.Thresholds) []string {
	return append(nd.args(),
		"--master", wc.masterFlag(),
		"--detect-interval", "2s",
		"--vacuum-garbage-threshold", fmt.Sprint(th.VacuumGarbage),
		"--ec-fullness-ratio", fmt.Sprint(th.ECFullness),
		"--ec-quiet-for", th.ECQuietFor.String(),
		"--ec-min-size-mb", fmt.Sprint(th.ECMinSizeMB),
		"--balance-imbalance-threshold", fmt.Sprint(th.BalanceImbalance),
		"--ec-balance-skew", fmt.Sprint(th.ECBalanceSkew))
}

// systemThresholds are the detection thresholds of the real-SeaweedFS
// system and chaos tests.
var systemThresholds = scheduler.Thresholds{VacuumGarbage: 0.3, ECFullness: 0.8, ECQuietFor: time.Second, ECMinSizeMB: 1, BalanceImbalance: 0.2, ECBalanceSkew: -1}

// systemRoles are the volumes those tests write: two nearly full ones
// (erasure coding), one nearly full with 60% of its files deleted (vacuum
// wins over erasure coding) and a small one with half of its files
// deleted. 60 files of 112-126 KiB: 6.9-7.7 MB of an 8 MiB volume
// (0.82-0.92 full).
func systemRoles() []*volumeRole {
	return []*volumeRole{
		{name: "ec-a", ec: true, files: 60, minSize: 112 << 10, deleted: func(i int) bool { return i%20 == 7 }},
		{name: "ec-b", ec: true, files: 60, minSize: 112 << 10, deleted: func(i int) bool { return i%20 == 13 }},
		{name: "vacuum-full", files: 60, minSize: 112 << 10, deleted: func(i int) bool { return i%5 >= 2 }},
		{name: "vacuum-small", files: 40, minSize: 64 << 10, deleted: func(i int) bool { return i%2 == 1 }},
	}
}

// readBack polls until every role's files read back as they should (live
// ones intact, deleted ones 404) through every server holding them (all
// of everyServer for an erasure-coded role, which any server may serve)
// and returns how many reads the last, successful pass took.
func readBack(t *testing.T, wc *weedCluster, roles []*volumeRole, everyServer []string, erasureCoded func(*volumeRole) bool) int {
	t.Helper()
	reads := 0
	testutil.Poll(t, topologyTimeout, systemPollEvery, "every file to read back (live intact, deleted 404)", func() (bool, string) {
		reads = 0
		for _, r := range roles {
			servers := everyServer
			if !erasureCoded(r) {
				locs, err := wc.lookup(r.vid)
				if err != nil {
					return false, err.Error()
				}
				servers = locs
			}
			for _, s := range servers {
				for _, f := range r.stored {
					if err := wc.checkFile(s, f); err != nil {
						return false, fmt.Sprintf("%s volume %d through %s: %v", r.name, r.vid, s, err)
					}
					reads++
				}
			}
		}
		return true, ""
	})
	return reads
}

// maintenance is the control plane the real-SeaweedFS system and chaos
// tests start against their seeded cluster: three admins with detection
// on, two workers, then one more (empty) volume server so that balance has
// a target.
type maintenance struct {
	cl         *cluster
	argv       [][]string // each admin's command line, as cl.nodes
	adminAddrs string     // comma-separated, for ctl
	workers    []*node
	added      *volumeServer
}

// startMaintenance starts the admins, waits for a stable leader, starts
// the workers and adds the volume server.
func startMaintenance(t *testing.T, wc *weedCluster, th scheduler.Thresholds) *maintenance {
	t.Helper()
	return startMaintenanceWith(t, wc, th, volumeSpec{})
}

// startMaintenanceWith is startMaintenance with the added volume server
// placed by added and extra flags given to every admin and worker.
func startMaintenanceWith(t *testing.T, wc *weedCluster, th scheduler.Thresholds, added volumeSpec, extra ...string) *maintenance {
	t.Helper()
	began := time.Now()
	m := &maintenance{cl: newCluster(t, 3)}
	for _, nd := range m.cl.nodes {
		argv := append(detectingArgs(nd, wc, th), extra...)
		nd.startArgs(t, argv...)
		m.argv = append(m.argv, argv)
	}
	m.cl.waitStable(t, m.cl.nodes...)
	m.adminAddrs = strings.Join(m.cl.addrs(), ",")
	m.workers = startWorkers(t, 2, m.cl.addrs(), extra...)
	m.added = wc.addVolumeServer(t, added)
	t.Logf("admins %s, workers %s and the added volume server %s up %s after the admins started",
		m.adminAddrs, ids(m.workers), m.added.HTTP, time.Since(began).Round(time.Millisecond))
	return m
}

// isAdded reports whether name (a topology's server name) is the added
// volume server.
func (m *maintenance) isAdded(name string) bool {
	return name != "" && (name == m.added.HTTP || name == m.added.Addr)
}
