package integration

// The capacity oracle (docs/architecture.md §7) on a real SeaweedFS, across a
// master outage: a vacuum detected but not run, then completed by a worker
// while the master is dead, then seen by the restarted master. Every figure
// the oracle gives is checked against what SeaweedFS itself reports — the
// master's VolumeList and the volume server's own file status, read with
// SeaweedFS's generated clients, not with the product's parser — and asked
// twice: through `groundskeeper ctl capacity --json` and through a stock
// grpcurl using the admins' gRPC server reflection.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	// oracleCollection is the SeaweedFS collection of the oracle test's files.
	oracleCollection = "oracle"
	// oracleWait bounds each phase's wait for the oracle, a task or the
	// master to reach the expected state.
	oracleWait = 90 * time.Second
	// grpcurlVersion is the version scripts/grpcurl.sh installs.
	grpcurlVersion = "v1.9.3"
)

// ---------------------------------------------------------------------------
// grpcurl.

// grpcurlTool is grpcurl: $GRPCURL_BIN (a bad one is an error), else
// scripts/grpcurl.sh, which installs it once into the cache.
var grpcurlTool = &tool{env: "GRPCURL_BIN", script: "grpcurl.sh", timeout: 10 * time.Minute}

// grpcurlBinary finds grpcurl. Unlike the weed binary, a missing grpcurl
// fails the test: CI's test script always provides one.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	grpcurlPath, grpcurlErr := grpcurlTool.find()
	if grpcurlPath == "" {
		t.Fatalf("this test needs grpcurl and found none: %v.\nInstall it with ./scripts/grpcurl.sh (it runs `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@%s` into ~/.cache/groundskeeper and prints the path), or set GRPCURL_BIN to a grpcurl binary; ./scripts/test.sh does the former", grpcurlErr, grpcurlVersion)
	}
	return grpcurlPath
}

// grpcurl runs grpcurl with args and returns its stdout; an error carries
// its exit code and stderr. It connects with mutual TLS as the harness's
// reader (grpcurlTLS): the admins run the harness PKI (pki_test.go).
func grpcurl(bin string, args ...string) (string, error) {
	tlsArgs, err := grpcurlTLS()
	if err != nil {
		return "", err
	}
	args = append(tlsArgs, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("grpcurl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ---------------------------------------------------------------------------
// The oracle's answer, in the documented `ctl capacity --json` shape.

type capAdjustment struct {
	TaskID     uint64 `json:"task_id"`
	Type       string `json:"type"`
	Kind       string `json:"kind"`
	DeltaBytes int64  `json:"delta_bytes"`
}

type capVolume struct {
	VolumeID      uint32          `json:"volume_id"`
	Collection    string          `json:"collection"`
	MasterSize    uint64          `json:"master_size"`
	ProjectedSize uint64          `json:"projected_size"`
	DeletedBytes  uint64          `json:"deleted_bytes"`
	Adjustments   []capAdjustment `json:"adjustments"`
}

func (v capVolume) String() string {
	b, _ := json.Marshal(v)
	return string(b)
}

var (
	capVolumeKeys     = []string{"volume_id", "collection", "master_size", "projected_size", "deleted_bytes", "adjustments"}
	capAdjustmentKeys = []string{"task_id", "type", "kind", "delta_bytes"}
)

// ctlCapacity asks `ctl capacity --volume vid --json` (a linearizable read)
// through any of the admins, checking the documented keys.
func ctlCapacity(t *testing.T, admins string, vid uint32) (capVolume, error) {
	var out struct {
		Volumes []json.RawMessage `json:"volumes"`
	}
	res := ctl(t, admins, "capacity", "--volume", fmt.Sprint(vid), "--json")
	if res.Code != 0 {
		return capVolume{}, fmt.Errorf("ctl capacity: %s", res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil || len(out.Volumes) != 1 {
		return capVolume{}, fmt.Errorf("ctl capacity --json: want one volume (%v): %s", err, res.Stdout)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(out.Volumes[0], &keys); err != nil {
		return capVolume{}, err
	}
	if err := checkKeys(keys, capVolumeKeys); err != nil {
		return capVolume{}, fmt.Errorf("ctl capacity --json: %v: %s", err, res.Stdout)
	}
	var adj []map[string]json.RawMessage
	if err := json.Unmarshal(keys["adjustments"], &adj); err != nil {
		return capVolume{}, fmt.Errorf("ctl capacity --json: adjustments: %v: %s", err, res.Stdout)
	}
	for _, a := range adj {
		if err := checkKeys(a, capAdjustmentKeys); err != nil {
			return capVolume{}, fmt.Errorf("ctl capacity --json: adjustment: %v: %s", err, res.Stdout)
		}
	}
	var v capVolume
	if err := json.Unmarshal(out.Volumes[0], &v); err != nil {
		return capVolume{}, err
	}
	if v.Adjustments == nil {
		v.Adjustments = []capAdjustment{}
	}
	return v, nil
}

// grpcurlCapacity calls CapacityOracle/GetVolumeCapacity with the given
// consistency ("CONSISTENCY_LINEARIZABLE": answered by the leader;
// "CONSISTENCY_STALE": by the admin asked, from its own state and its own
// copy of the master's topology) through one admin with grpcurl, which learns the schema from the admin's
// server reflection, and converts the answer to the ctl shape. grpcurl
// prints protobuf's JSON mapping (camelCase, 64-bit numbers as strings,
// zero values left out), which protojson reads back exactly.
func grpcurlCapacity(bin, admin, consistency string, vid uint32) (capVolume, error) {
	req := fmt.Sprintf(`{"volume_ids":[%d],"consistency":%q}`, vid, consistency)
	out, err := grpcurl(bin, "-max-time", "20", "-d", req, admin, "groundskeeper.v1.CapacityOracle/GetVolumeCapacity")
	if err != nil {
		return capVolume{}, err
	}
	var resp pb.GetVolumeCapacityResponse
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		return capVolume{}, fmt.Errorf("grpcurl via %s printed what is not a GetVolumeCapacityResponse (%v): %s", admin, err, out)
	}
	if len(resp.Volumes) != 1 {
		return capVolume{}, fmt.Errorf("grpcurl via %s: %d volumes in the answer, want 1: %s", admin, len(resp.Volumes), out)
	}
	pv := resp.Volumes[0]
	v := capVolume{VolumeID: pv.VolumeId, Collection: pv.Collection, MasterSize: pv.MasterSize, ProjectedSize: pv.ProjectedSize,
		DeletedBytes: pv.DeletedBytes, Adjustments: []capAdjustment{}}
	for _, a := range pv.Adjustments {
		kind := map[pb.Adjustment_Kind]string{pb.Adjustment_IN_PROGRESS: "in_progress", pb.Adjustment_COMMITTED_UNREPORTED: "committed_unreported"}[a.Kind]
		if kind == "" {
			kind = a.Kind.String()
		}
		typ := typeNames[a.Type]
		if typ == "" {
			typ = a.Type.String()
		}
		v.Adjustments = append(v.Adjustments, capAdjustment{TaskID: a.TaskId, Type: typ, Kind: kind, DeltaBytes: a.DeltaBytes})
	}
	return v, nil
}

// oracleAgrees asks the oracle about vid through ctl (any admin) and
// through grpcurl via every admin, linearizable and stale, requires all the
// answers to be the same and to equal want, and returns the ctl answer.
func oracleAgrees(t *testing.T, grpcurlBin string, admins []string, vid uint32, want capVolume) (capVolume, string) {
	got, err := ctlCapacity(t, strings.Join(admins, ","), vid)
	if err != nil {
		return got, err.Error()
	}
	if !reflect.DeepEqual(got, want) {
		return got, fmt.Sprintf("ctl capacity answers %s, want %s", got, want)
	}
	for _, a := range admins {
		for _, cons := range []string{"CONSISTENCY_LINEARIZABLE", "CONSISTENCY_STALE"} {
			g, err := grpcurlCapacity(grpcurlBin, a, cons, vid)
			if err != nil {
				return got, err.Error()
			}
			if !reflect.DeepEqual(g, got) {
				return got, fmt.Sprintf("grpcurl %s via %s answers %s, ctl answered %s", cons, a, g, got)
			}
		}
	}
	return got, ""
}

// ---------------------------------------------------------------------------
// SeaweedFS's own view, through its generated clients.

// masterVolume reads vid's only replica from the master's VolumeList
// (master_pb directly, not the product's topology parser) and the node it
// is on.
func (c *weedCluster) masterVolume(vid uint32) (*master_pb.VolumeInformationMessage, string, error) {
	raw, err := c.rawView(context.Background())
	if err != nil {
		return nil, "", fmt.Errorf("VolumeList: %w", err)
	}
	reps := raw.replicas[vid]
	if len(reps) != 1 {
		return nil, "", fmt.Errorf("the master lists volume %d on %d servers, want exactly 1", vid, len(reps))
	}
	var node string
	for n := range reps {
		node = n
	}
	return reps[node], node, nil
}

// onServer is one volume's files as the volume server holding it reports
// them: ReadVolumeFileStatus (the .dat size the server also puts into its
// heartbeat's `size`, and the compaction revision) and VolumeStatus (the
// same .dat size through another handler).
type onServer struct {
	DatSize    uint64
	StatusSize uint64
	Revision   uint32
	FileCount  uint64
	Deleted    uint64
}

// volumeOnServer asks a volume server (volume_server_pb directly, not the
// product's volume client) about vid.
func volumeOnServer(grpcAddr string, vid uint32) (onServer, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return onServer{}, err
	}
	defer conn.Close()
	c := volume_server_pb.NewVolumeServerClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs, err := c.ReadVolumeFileStatus(ctx, &volume_server_pb.ReadVolumeFileStatusRequest{VolumeId: vid})
	if err != nil {
		return onServer{}, fmt.Errorf("ReadVolumeFileStatus of %d on %s: %w", vid, grpcAddr, err)
	}
	st, err := c.VolumeStatus(ctx, &volume_server_pb.VolumeStatusRequest{VolumeId: vid})
	if err != nil {
		return onServer{}, fmt.Errorf("VolumeStatus of %d on %s: %w", vid, grpcAddr, err)
	}
	return onServer{DatSize: fs.GetDatFileSize(), StatusSize: st.GetVolumeSize(), Revision: fs.GetCompactionRevision(),
		FileCount: st.GetFileCount(), Deleted: st.GetFileDeletedCount()}, nil
}

// grpcAddrOf gives the gRPC address of the volume server whose HTTP address
// (its id in the master's topology) is httpAddr.
func (c *weedCluster) grpcAddrOf(t *testing.T, httpAddr string) string {
	t.Helper()
	for _, s := range c.servers {
		if s.HTTP == httpAddr {
			host, _, _ := strings.Cut(s.HTTP, ":")
			_, grpcPort, _ := strings.Cut(strings.TrimPrefix(s.Addr, s.HTTP), ".")
			return host + ":" + grpcPort
		}
	}
	t.Fatalf("no volume server %s in the cluster", httpAddr)
	return ""
}

// maintenanceStatus is the part of `ctl status --json` about the master
// and the admin lock.
type maintenanceStatus struct {
	LeaderID    string `json:"leader_id"`
	Maintenance *struct {
		MasterState      string `json:"master_state"`
		Servers          uint32 `json:"servers"`
		LastPoll         string `json:"last_poll"`
		AdminLockHeld    bool   `json:"admin_lock_held"`
		AdminLock        string `json:"admin_lock"`
		AdminLockHolder  string `json:"admin_lock_holder"`
		AdminLockSince   string `json:"admin_lock_since"`
		ShellLockHolder  string `json:"shell_lock_holder"`
		ShellLockOurs    bool   `json:"shell_lock_ours"`
		Paused           string `json:"paused"`
		DetectionPaused  bool   `json:"detection_paused"`
		AssignmentPaused bool   `json:"assignment_paused"`
	} `json:"maintenance"`
}

// ---------------------------------------------------------------------------

// TestOracleAcrossMasterOutageOnRealSeaweedFS: a volume with half
// its files deleted gets a pending vacuum from three admins with no worker;
// the oracle projects its size minus its garbage. The master is killed, a
// worker vacuums the volume with volume-server RPCs alone, and the oracle
// keeps the master's last size and projects the compacted size as a
// committed-but-unreported change. The master comes back, reports the new
// size, and the change retires. Each step is asked through ctl and through
// grpcurl and checked against SeaweedFS's own figures.
func TestOracleAcrossMasterOutageOnRealSeaweedFS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster, three admins and a worker")
	}
	testStart := time.Now()
	gcurl := grpcurlBinary(t)
	wc := startWeedCluster(t, 2)

	// ---- 1a. Files with known checksums in one volume; every other one
	// deleted, so about half of the volume is garbage.
	const (
		nFiles           = 24
		minSize          = 48 << 10
		garbageThreshold = 0.3
	)
	a, vid := wc.assignWithin(t, 60*time.Second, oracleCollection, nFiles, minSize+minSize/8)
	files := wc.writeAssigned(t, a, vid, nFiles, minSize, 5)
	var del []*storedFile
	var liveBytes uint64
	for i, f := range files {
		if i%2 == 1 {
			del = append(del, f)
		} else {
			liveBytes += uint64(f.Size)
		}
	}
	wc.deleteFiles(t, a.URL, del)
	t.Logf("wrote %d files (%d live bytes after deleting %d) to volume %d on %s", nFiles, liveBytes, len(del), vid, a.URL)

	// The master's figures once its heartbeats carry the writes and the
	// deletions: its size must be the .dat size the volume server itself
	// reports, so the detected task's size is the real one.
	var before *master_pb.VolumeInformationMessage
	var holder, holderGRPC string
	var onBefore onServer
	testutil.Poll(t, topologyTimeout, weedPollEvery, "the master to report volume "+fmt.Sprint(vid)+" as the volume server has it", func() (bool, string) {
		vi, node, err := wc.masterVolume(vid)
		if err != nil {
			return false, err.Error()
		}
		if holderGRPC == "" {
			holder, holderGRPC = node, wc.grpcAddrOf(t, node)
		}
		vs, err := volumeOnServer(holderGRPC, vid)
		if err != nil {
			return false, err.Error()
		}
		if vi.GetFileCount() != nFiles || vi.GetDeleteCount() != uint64(len(del)) || vi.GetSize() != vs.DatSize || vs.StatusSize != vs.DatSize {
			return false, fmt.Sprintf("master: size %d, %d files, %d deleted; volume server: .dat %d (VolumeStatus %d); want %d files, %d deleted, equal sizes",
				vi.GetSize(), vi.GetFileCount(), vi.GetDeleteCount(), vs.DatSize, vs.StatusSize, nFiles, len(del))
		}
		before, onBefore = vi, vs
		return true, ""
	})
	garbage := float64(before.GetDeletedByteCount()) / float64(before.GetSize())
	t.Logf("master: volume %d on %s: size %d, deleted bytes %d (garbage %.2f), compact revision %d; volume server .dat %d, revision %d",
		vid, holder, before.GetSize(), before.GetDeletedByteCount(), garbage, before.GetCompactRevision(), onBefore.DatSize, onBefore.Revision)
	if garbage < garbageThreshold+0.05 {
		t.Fatalf("set-up: volume %d has garbage %.2f, want clearly above the threshold %.2f", vid, garbage, garbageThreshold)
	}

	// ---- 1b. Three admins, detecting every second, and no worker. (With no
	// vacuum worker connected the admins leave the master's own vacuum on;
	// it sweeps when the master starts and then every 14 minutes or more,
	// far beyond this test, and finds nothing to do after a restart: the
	// volume is vacuumed by then.)
	admins := newCluster(t, 3)
	for _, nd := range admins.nodes {
		nd.startArgs(t, append(nd.args(),
			"--master", wc.masterHTTP,
			"--detect-interval", "1s",
			"--vacuum-garbage-threshold", fmt.Sprint(garbageThreshold),
			// Nothing but the vacuum: no balance between the two servers.
			"--balance-imbalance-threshold", "1000")...)
	}
	admins.waitStable(t, admins.nodes...)
	adminList := admins.addrs()
	adminAddrs := strings.Join(adminList, ",")

	// Server reflection: a stock grpcurl lists and describes the oracle.
	if out, err := grpcurl(gcurl, adminList[0], "list"); err != nil || !strings.Contains(out, "groundskeeper.v1.CapacityOracle\n") {
		t.Fatalf("grpcurl list via %s does not show groundskeeper.v1.CapacityOracle (%v):\n%s", adminList[0], err, out)
	}
	if out, err := grpcurl(gcurl, adminList[1], "describe", "groundskeeper.v1.CapacityOracle"); err != nil || !strings.Contains(out, "rpc GetVolumeCapacity") {
		t.Fatalf("grpcurl describe via %s does not show GetVolumeCapacity (%v):\n%s", adminList[1], err, out)
	}

	var vacuum sysTask
	detected := testutil.Poll(t, oracleWait, systemPollEvery, fmt.Sprintf("a pending vacuum of volume %d", vid), func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
		if err != nil {
			return false, err.Error()
		}
		if len(tasks) > 1 || (len(tasks) == 1 && (tasks[0].Type != "vacuum" || tasks[0].VolumeID != vid)) {
			t.Fatalf("want one vacuum of volume %d and nothing else, got:\n%s", vid, joinTasks(tasks))
		}
		if len(tasks) == 0 {
			return false, "no task yet"
		}
		if tasks[0].State != "pending" {
			t.Fatalf("with no worker the vacuum must stay pending: %s", tasks[0])
		}
		vacuum = tasks[0]
		return true, ""
	})
	t.Logf("detected %s %s after the quorum was stable", vacuum, detected.Round(time.Millisecond))

	// The oracle: the master's size, its garbage, and size − garbage once
	// the task in flight lands, agreed by ctl and grpcurl via every admin.
	size0, deleted0 := before.GetSize(), before.GetDeletedByteCount()
	wantPending := capVolume{VolumeID: vid, Collection: oracleCollection, MasterSize: size0, ProjectedSize: size0 - deleted0, DeletedBytes: deleted0,
		Adjustments: []capAdjustment{{TaskID: vacuum.ID, Type: "vacuum", Kind: "in_progress", DeltaBytes: -int64(deleted0)}}}
	testutil.Poll(t, oracleWait, systemPollEvery, "the oracle to project size − garbage for the pending vacuum", func() (bool, string) {
		_, msg := oracleAgrees(t, gcurl, adminList, vid, wantPending)
		return msg == "", msg
	})
	t.Logf("phase 1 (pending, master up): oracle %s", wantPending)

	// ---- 2. kill -9 the master; a worker vacuums the volume without it.
	wc.master.stop()
	if !wc.master.exited() {
		t.Fatal("the weed master did not exit after SIGKILL")
	}
	testutil.Poll(t, oracleWait, systemPollEvery, "the leader to see the master unreachable", func() (bool, string) {
		st, _, err := ctlJSONErr[maintenanceStatus](t, "", adminAddrs, "status")
		if err != nil {
			return false, err.Error()
		}
		if st.Maintenance == nil || st.Maintenance.MasterState != "unreachable" {
			return false, fmt.Sprintf("leader %s reports the master as %+v", st.LeaderID, st.Maintenance)
		}
		return true, ""
	})
	// The master's last report is kept: the same answer as with it up.
	if got, msg := oracleAgrees(t, gcurl, adminList, vid, wantPending); msg != "" {
		t.Fatalf("with the master down and nothing run, the oracle changed: %s (got %s)", msg, got)
	}

	workerDir := t.TempDir()
	w := &node{ID: "w1", DataDir: filepath.Join(workerDir, "data"), LogPath: filepath.Join(workerDir, "w1.log")}
	t.Cleanup(func() {
		if w.running() {
			_ = w.signal(syscall.SIGKILL)
			w.waitExit(t)
		}
		if t.Failed() {
			t.Logf("----- last lines of w1's log (%s) -----\n%s", w.LogPath, w.logTail(40))
		}
	})
	workerStart := time.Now()
	w.startArgs(t, "worker", "--id", w.ID, "--admin", adminAddrs, "--data-dir", w.DataDir, "--capabilities", "vacuum")
	testutil.Poll(t, oracleWait, systemPollEvery, fmt.Sprintf("the vacuum of volume %d to complete with the master down", vid), func() (bool, string) {
		tasks, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks", "--volume", fmt.Sprint(vid))
		if err != nil {
			return false, err.Error()
		}
		if len(tasks) != 1 || tasks[0].ID != vacuum.ID {
			t.Fatalf("want only task %d on volume %d, got:\n%s", vacuum.ID, vid, joinTasks(tasks))
		}
		switch tasks[0].State {
		case "completed":
			vacuum = tasks[0]
			return true, ""
		case "failed", "cancelled":
			t.Fatalf("the vacuum ended %s: %s", tasks[0].State, tasks[0])
		}
		return false, tasks[0].String()
	})
	t.Logf("%s, %s after the worker started", vacuum, time.Since(workerStart).Round(time.Millisecond))
	if !wc.master.exited() {
		t.Fatal("the master is running again; the vacuum must have run without it")
	}

	// What the vacuum did, as the volume server reports it: one more
	// compaction revision and a smaller .dat.
	onAfter, err := volumeOnServer(holderGRPC, vid)
	if err != nil {
		t.Fatal(err)
	}
	if onAfter.Revision != onBefore.Revision+1 || onAfter.DatSize != onAfter.StatusSize || onAfter.DatSize >= size0 || onAfter.DatSize < liveBytes {
		t.Fatalf("volume server after the vacuum: %+v; want revision %d, .dat (in both calls) below the old %d and at least the %d live bytes",
			onAfter, onBefore.Revision+1, size0, liveBytes)
	}
	// The oracle now: master_size is still the master's last report (size0);
	// the completed vacuum is a committed-but-unreported change of new − old
	// size, where the worker measured the new size as the .dat size after
	// its commit and the old one is the size the master reported when the
	// task was detected (size0, stable since). So projected_size must be
	// exactly the .dat size the volume server reports now — the figure the
	// master will learn from the server's next heartbeat.
	wantCommitted := capVolume{VolumeID: vid, Collection: oracleCollection, MasterSize: size0, ProjectedSize: onAfter.DatSize, DeletedBytes: deleted0,
		Adjustments: []capAdjustment{{TaskID: vacuum.ID, Type: "vacuum", Kind: "committed_unreported", DeltaBytes: int64(onAfter.DatSize) - int64(size0)}}}
	testutil.Poll(t, oracleWait, systemPollEvery, "the oracle to project the compacted size as committed but unreported", func() (bool, string) {
		_, msg := oracleAgrees(t, gcurl, adminList, vid, wantCommitted)
		return msg == "", msg
	})
	t.Logf("phase 2 (vacuumed, master down): oracle %s; volume server .dat %d, revision %d", wantCommitted, onAfter.DatSize, onAfter.Revision)
	// The in-progress estimate (size − deleted bytes) is close but not exact:
	// deleted_byte_count counts the deleted needles' data, while compaction
	// also drops their headers and the tombstones the deletions appended.
	t.Logf("in-progress estimate vs outcome: size − garbage = %d, compacted .dat = %d (%+d bytes over %d deletions)",
		size0-deleted0, onAfter.DatSize, int64(onAfter.DatSize)-int64(size0-deleted0), len(del))
	// The volume server serves the compacted volume on its own.
	wc.checkFiles(t, files, holder)

	// ---- 3. The master comes back; once it reports the new size the
	// change retires and all three figures are the same number.
	took := wc.restartWeedMaster(t)
	t.Logf("restarted the weed master; it listed both volume servers after %s", took.Round(time.Millisecond))
	var after *master_pb.VolumeInformationMessage
	testutil.Poll(t, oracleWait, weedPollEvery, "the restarted master to report the compacted volume", func() (bool, string) {
		vi, node, err := wc.masterVolume(vid)
		if err != nil {
			return false, err.Error()
		}
		if node != holder || vi.GetSize() != onAfter.DatSize || vi.GetDeletedByteCount() != 0 || vi.GetCompactRevision() != onAfter.Revision {
			return false, fmt.Sprintf("master: volume %d on %s: size %d, deleted bytes %d, revision %d; want on %s, %d, 0, %d",
				vid, node, vi.GetSize(), vi.GetDeletedByteCount(), vi.GetCompactRevision(), holder, onAfter.DatSize, onAfter.Revision)
		}
		after = vi
		return true, ""
	})
	wantRetired := capVolume{VolumeID: vid, Collection: oracleCollection, MasterSize: after.GetSize(), ProjectedSize: after.GetSize(), DeletedBytes: 0, Adjustments: []capAdjustment{}}
	testutil.Poll(t, oracleWait, systemPollEvery, "the adjustment to retire once the master reports the new size", func() (bool, string) {
		_, msg := oracleAgrees(t, gcurl, adminList, vid, wantRetired)
		return msg == "", msg
	})
	t.Logf("phase 3 (master back): oracle %s", wantRetired)

	// Every file through the servers the master names: live ones with their
	// checksums, deleted ones 404 (the master refuses lookups while it warms up).
	testutil.Poll(t, topologyTimeout, systemPollEvery, "every file to read back through the master's lookup", func() (bool, string) {
		locs, err := wc.lookup(vid)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range locs {
			for _, f := range files {
				if err := wc.checkFile(s, f); err != nil {
					return false, fmt.Sprintf("through %s: %v", s, err)
				}
			}
		}
		return true, ""
	})
	final, _, err := ctlJSONErr[[]sysTask](t, "tasks", adminAddrs, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if len(final) != 1 || final[0].ID != vacuum.ID || final[0].State != "completed" || final[0].WorkerID != w.ID {
		t.Fatalf("want exactly task %d, completed by %s; tasks:\n%s", vacuum.ID, w.ID, joinTasks(final))
	}
	for _, nd := range append(append([]*node(nil), admins.nodes...), w) {
		if !nd.running() {
			t.Errorf("%s is not running any more:\n%s", nd.ID, nd.logTail(20))
		}
	}
	t.Logf("SUMMARY: volume %d: size %d with %d garbage bytes -> projected %d while pending; compacted to %d with the master down "+
		"(projected %d, committed_unreported %+d); master reports %d after its restart, adjustment retired; %d live files intact, %d deleted 404; whole test %s",
		vid, size0, deleted0, size0-deleted0, onAfter.DatSize, wantCommitted.ProjectedSize, wantCommitted.Adjustments[0].DeltaBytes,
		after.GetSize(), nFiles-len(del), len(del), time.Since(testStart).Round(100*time.Millisecond))
}
