// Package integration runs the real groundskeeper binary as separate
// processes: admin quorums started, killed (-9 and SIGTERM) and restarted,
// driven through `groundskeeper ctl` and the gRPC API.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

const (
	// waitTimeout bounds every "poll until" wait. Generous: the machine is
	// small and shared with other heavy work.
	waitTimeout = 30 * time.Second
	// pollEvery is the interval between two checks of a polled condition.
	pollEvery = 150 * time.Millisecond
	// exitTimeout bounds how long a signalled process may take to exit.
	exitTimeout = 30 * time.Second
	// cmdTimeout bounds one ctl (or failing admin) invocation.
	cmdTimeout = 60 * time.Second
)

// binary is the groundskeeper binary built once by TestMain, with the race
// detector, so the admins and workers the tests start are checked too: a
// report in a process's log fails the test that started it (node.startArgs),
// one in a ctl run's output fails that call's test (runBinWithin).
var binary string

// raceReport opens every report the race detector prints.
const raceReport = "WARNING: DATA RACE"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration: skipped in -short mode (starts real admin processes)")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

// spawnerEnv makes the test binary the stand-in harness of
// TestKilledTestBinaryLeavesNoChildren (procattr_kill_linux_test.go).
const spawnerEnv = "GK_TEST_SPAWNER"

func runMain(m *testing.M) int {
	if os.Getenv(spawnerEnv) == "1" {
		// The stand-in harness of TestKilledTestBinaryLeavesNoChildren
		// starts no groundskeeper.
		return m.Run()
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "groundskeeper-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "groundskeeper")
	build := exec.Command("go", "build", "-race", "-o", binary, "./cmd/groundskeeper")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go build -race ./cmd/groundskeeper failed: %v\n%s", err, out)
		return 1
	}
	// Every admin, worker, ctl and test client runs mutual TLS with
	// certificates of this one CA (pki_test.go).
	if harnessPKI, err = newTestPKI(filepath.Join(dir, "pki")); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	return m.Run()
}

// moduleRoot walks up from the working directory to this module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/groundskeeper-dev/groundskeeper\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the module root (go.mod of github.com/groundskeeper-dev/groundskeeper) above the working directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------
// JSON shapes of docs/architecture.md §11 (only the documented fields, plus a few
// stable extras used for comparisons).

type statusJSON struct {
	NodeID       string       `json:"node_id"`
	LeaderID     string       `json:"leader_id"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Members      []memberJSON `json:"members"`
	// TLS: the answering node runs mutual TLS; Insecure: plaintext on a
	// non-loopback address.
	TLS      bool `json:"tls"`
	Insecure bool `json:"insecure"`
}

type memberJSON struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	GRPCAddr     string `json:"grpc_addr"`
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
}

func (s statusJSON) member(id string) (memberJSON, bool) {
	for _, m := range s.Members {
		if m.ID == id {
			return m, true
		}
	}
	return memberJSON{}, false
}

type taskJSON struct {
	ID        uint64  `json:"id"`
	Type      string  `json:"type"`
	VolumeID  uint32  `json:"volume_id"`
	State     string  `json:"state"`
	WorkerID  string  `json:"worker_id"`
	Attempt   uint32  `json:"attempt"`
	Progress  float64 `json:"progress"`
	Error     string  `json:"error"`
	CreatedAt string  `json:"created_at"`
}

type submitJSON struct {
	taskJSON
	Existing *bool `json:"existing"`
}

var (
	statusKeys = []string{"leader_id", "term", "commit_index", "applied_index", "members"}
	memberKeys = []string{"id", "raft_addr", "grpc_addr", "state"}
	// The leader's maintenance view (README, ctl status): the master and
	// every master given.
	maintenanceKeys = []string{"master", "master_state", "masters"}
	taskKeys        = []string{"id", "type", "volume_id", "state", "worker_id", "attempt", "progress", "error"}
)

// checkKeys reports a documented key missing from a JSON object.
func checkKeys(obj map[string]json.RawMessage, keys []string) error {
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			return fmt.Errorf("JSON object lacks the documented key %q", k)
		}
	}
	return nil
}

// checkDocumentedKeys verifies that the raw output of a --json command has the
// keys docs/architecture.md §11 promises; typed decoding alone would zero-fill them.
func checkDocumentedKeys(kind string, raw []byte) error {
	switch kind {
	case "status":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		if err := checkKeys(obj, statusKeys); err != nil {
			return err
		}
		var members []map[string]json.RawMessage
		if err := json.Unmarshal(obj["members"], &members); err != nil {
			return err
		}
		if raw, ok := obj["maintenance"]; ok {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			if err := checkKeys(m, maintenanceKeys); err != nil {
				return fmt.Errorf("maintenance: %w", err)
			}
		}
		for _, m := range members {
			if err := checkKeys(m, memberKeys); err != nil {
				return err
			}
		}
	case "tasks":
		var arr []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return err
		}
		for _, o := range arr {
			if err := checkKeys(o, taskKeys); err != nil {
				return err
			}
		}
	case "submit":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return err
		}
		if err := checkKeys(obj, append(taskKeys, "existing")); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Running the binary.

type cmdResult struct {
	Stdout, Stderr string
	Code           int
	Elapsed        time.Duration
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout: %s\nstderr: %s", r.Code, r.Elapsed.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// cleanEnv is the environment without GROUNDSKEEPER_ADMIN and
// GROUNDSKEEPER_TLS_*, so no test picks up an operator's default admin
// address or certificates (the harness gives its own, see pki_test.go).
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GROUNDSKEEPER_ADMIN=") && !strings.HasPrefix(e, "GROUNDSKEEPER_TLS_") {
			env = append(env, e)
		}
	}
	return env
}

// runBin runs the binary to completion (killing its process group after
// cmdTimeout) and returns its output and exit code.
func runBin(t testing.TB, args ...string) cmdResult {
	t.Helper()
	return runBinWithin(t, cmdTimeout, args...)
}

// runBinWithin is runBin with its own time limit. A ctl command line gets
// the harness operator's certificate unless it names its own transport
// (harnessTLSArgs); runBinExact runs args as given.
func runBinWithin(t testing.TB, timeout time.Duration, args ...string) cmdResult {
	t.Helper()
	if len(args) > 0 && args[0] == "ctl" {
		args = withHarnessTLS(t, args)
	}
	return runBinExact(t, timeout, args...)
}

// runBinExact is runBinWithin without the harness's TLS flags: for a ctl
// that must connect without a certificate.
func runBinExact(t testing.TB, timeout time.Duration, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := cmdResult{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	if report, ok := raceReportIn(res.Stderr); ok {
		t.Errorf("groundskeeper %s: the race detector reported a data race:\n%s", strings.Join(args, " "), report)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
		if ctx.Err() != nil {
			// Errorf, not Fatalf: runBin may run on a helper goroutine.
			t.Errorf("groundskeeper %s did not finish within %s (killed)\n%s", strings.Join(args, " "), timeout, res)
			res.Code = -1
		}
	default:
		t.Errorf("run groundskeeper %s: %v", strings.Join(args, " "), err)
		res.Code = -1
	}
	return res
}

// ctl runs `groundskeeper ctl --admin ADMIN ARGS...`.
func ctl(t testing.TB, admin string, args ...string) cmdResult {
	t.Helper()
	return runBin(t, append([]string{"ctl", "--admin", admin}, args...)...)
}

// ctlJSONErr runs a ctl command with --json and decodes its output into T,
// checking the documented keys of kind ("status", "tasks", "submit" or "").
func ctlJSONErr[T any](t testing.TB, kind, admin string, args ...string) (T, cmdResult, error) {
	t.Helper()
	var v T
	res := ctl(t, admin, append(args, "--json")...)
	if res.Code != 0 {
		return v, res, fmt.Errorf("ctl %s via %s: %s", strings.Join(args, " "), admin, res)
	}
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		return v, res, fmt.Errorf("ctl %s --json printed invalid JSON (%v): %s", strings.Join(args, " "), err, res.Stdout)
	}
	if err := checkDocumentedKeys(kind, []byte(res.Stdout)); err != nil {
		return v, res, fmt.Errorf("ctl %s --json: %v: %s", strings.Join(args, " "), err, res.Stdout)
	}
	return v, res, nil
}

// ctlJSON is ctlJSONErr that fails the test on any error.
func ctlJSON[T any](t testing.TB, kind, admin string, args ...string) T {
	t.Helper()
	v, _, err := ctlJSONErr[T](t, kind, admin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// nonEmptyLines returns the non-blank lines of s.
func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// requireOneSentenceError asserts the shape of a user-facing failure:
// non-zero exit, nothing on stdout, exactly one non-empty line on stderr and
// no trace of a panic or goroutine dump.
func requireOneSentenceError(t testing.TB, what string, res cmdResult) {
	t.Helper()
	if res.Code == 0 {
		t.Errorf("%s: exit code 0, want non-zero\n%s", what, res)
		return
	}
	lines := nonEmptyLines(res.Stderr)
	if len(lines) != 1 {
		t.Errorf("%s: stderr has %d non-empty lines, want exactly 1\n%s", what, len(lines), res)
	}
	if strings.Contains(res.Stderr, "goroutine ") || strings.Contains(strings.ToLower(res.Stderr), "panic") {
		t.Errorf("%s: stderr looks like a crash\n%s", what, res)
	}
	if strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("%s: unexpected stdout on failure\n%s", what, res)
	}
}

// ---------------------------------------------------------------------------
// Polling.

// eventually polls cond until it returns true or waitTimeout passes; the
// message of the last failed check is reported on timeout.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.Poll(t, waitTimeout, pollEvery, what, cond)
}

// ---------------------------------------------------------------------------
// Admin processes.

type node struct {
	ID       string
	RaftAddr string
	GRPCAddr string
	DataDir  string
	LogPath  string
	// Peers is the --peers value: the cluster's members (an empty data dir
	// asks them whether it may start).
	Peers string
	// Bootstrap adds --bootstrap: Peers form a new cluster.
	Bootstrap bool
	// Env is added to the environment of the node's next starts.
	Env []string

	mu sync.Mutex
	// raceChecked holds the tests that check this node's log for race
	// reports when they end.
	raceChecked map[testing.TB]bool
	cmd         *exec.Cmd
	done        chan struct{}
	state       *os.ProcessState
	logFile     *os.File
}

func (n *node) args() []string {
	a := []string{"admin", "--id", n.ID, "--data-dir", n.DataDir, "--raft-addr", n.RaftAddr, "--grpc-addr", n.GRPCAddr}
	if n.Peers != "" {
		a = append(a, "--peers", n.Peers)
	}
	if n.Bootstrap {
		a = append(a, "--bootstrap")
	}
	return a
}

// running reports whether the process is started and has not exited.
func (n *node) running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// start launches the admin in its own process group with its usual flags,
// appending its output to the node's log file.
func (n *node) start(t testing.TB) {
	t.Helper()
	n.startArgs(t, n.args()...)
}

// signal sends sig to the node's process group (SIGKILL) or process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return errors.New("not started")
	}
	if sig == syscall.SIGKILL {
		return syscall.Kill(-cmd.Process.Pid, sig)
	}
	return syscall.Kill(cmd.Process.Pid, sig)
}

// waitExit waits for the process to exit and returns its state.
func (n *node) waitExit(t testing.TB) *os.ProcessState {
	t.Helper()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		t.Fatalf("%s was never started", n.ID)
	}
	select {
	case <-done:
	case <-time.After(exitTimeout):
		// SIGQUIT makes the Go runtime write every goroutine's stack to
		// the log and exit: the hang is then readable in the failure.
		_ = n.signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("%s did not exit within %s; its goroutines at SIGQUIT:\n%s", n.ID, exitTimeout, n.stackDump())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// stackDump is the runtime's SIGQUIT dump from the node's log, kept to
// the goroutines with a frame of ours (the rest are gRPC and raft
// plumbing), at most 600 lines; the whole log stays in the node's dir.
func (n *node) stackDump() string {
	log := n.log()
	i := strings.LastIndex(log, "SIGQUIT")
	if i < 0 {
		return n.logTail(50)
	}
	var ours []string
	for _, g := range strings.Split(log[i:], "\n\n") {
		// Ours, and raft's (its Shutdown waits for goroutines that may
		// never call into ours).
		if strings.Contains(g, "groundskeeper-dev/groundskeeper/") || strings.Contains(g, "hashicorp/raft") {
			ours = append(ours, g)
		}
	}
	lines := strings.Split(strings.Join(ours, "\n\n"), "\n")
	if len(lines) > 600 {
		lines = lines[:600]
	}
	return strings.Join(lines, "\n")
}

// kill9 SIGKILLs the node's process group and waits for it to be gone.
func (n *node) kill9(t testing.TB) {
	t.Helper()
	if !n.running() {
		t.Fatalf("kill -9 %s: not running", n.ID)
	}
	if err := n.signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", n.ID, err)
	}
	n.waitExit(t)
}

// term sends SIGTERM and requires a clean exit with code 0.
func (n *node) term(t testing.TB) {
	t.Helper()
	if !n.running() {
		t.Fatalf("SIGTERM %s: not running", n.ID)
	}
	if err := n.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", n.ID, err)
	}
	st := n.waitExit(t)
	if st == nil || st.ExitCode() != 0 {
		t.Fatalf("%s exited with %v after SIGTERM, want exit code 0\n%s", n.ID, st, n.logTail(30))
	}
}

// restart starts a stopped node again with the same flags and data dir.
func (n *node) restart(t testing.TB) {
	t.Helper()
	if n.running() {
		t.Fatalf("restart %s: still running", n.ID)
	}
	n.start(t)
}

// log returns the whole log of the node (all its runs).
func (n *node) log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// logTail returns the last lines of the node's log.
func (n *node) logTail(lines int) string {
	f, err := os.Open(n.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// ---------------------------------------------------------------------------
// Clusters.

type cluster struct {
	t     *testing.T
	dir   string
	nodes []*node
}

// newCluster prepares n admins a1..aN sharing one --peers list and
// --bootstrap (the README's recipe for a new cluster); nothing is
// started. Every process left running is killed when the test ends, and the
// tail of every log is printed if it failed.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	var peers []string
	for i := 1; i <= n; i++ {
		nd := c.newNode(fmt.Sprintf("a%d", i))
		peers = append(peers, nd.ID+"="+nd.RaftAddr)
	}
	for _, nd := range c.nodes {
		nd.Peers, nd.Bootstrap = strings.Join(peers, ","), true
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.running() {
				_ = nd.signal(syscall.SIGKILL)
				nd.waitExit(t)
			}
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("----- last lines of %s's log (%s) -----\n%s", nd.ID, nd.LogPath, nd.logTail(40))
			}
		}
	})
	return c
}

// newNode adds a node (not started, no --peers yet) to the cluster's bookkeeping.
func (c *cluster) newNode(id string) *node {
	nd := &node{
		ID:       id,
		RaftAddr: testutil.FreeAddr(c.t),
		GRPCAddr: testutil.FreeAddr(c.t),
		DataDir:  filepath.Join(c.dir, id, "data"),
		LogPath:  filepath.Join(c.dir, id+".log"),
	}
	c.nodes = append(c.nodes, nd)
	return nd
}

// startCluster starts n admins with the documented flags and waits for a
// stable quorum.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := newCluster(t, n)
	for _, nd := range c.nodes {
		nd.start(t)
	}
	c.waitStable(t, c.nodes...)
	return c
}

func (c *cluster) node(id string) *node {
	for _, nd := range c.nodes {
		if nd.ID == id {
			return nd
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// addrs returns the gRPC addresses of the given nodes (all if none given).
func (c *cluster) addrs(nodes ...*node) []string {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.GRPCAddr)
	}
	return out
}

// stableCheck asks every given member for its status and reports whether
// each runs mutual TLS, they agree on one leader, know exactly the given members (each with the
// right addresses), and see one leader plus followers with the same applied
// index. It returns the leader's status.
func (c *cluster) stableCheck(t testing.TB, members []*node) (statusJSON, bool, string) {
	var leaderID string
	var leaderStatus statusJSON
	for _, nd := range members {
		st, _, err := ctlJSONErr[statusJSON](t, "status", nd.GRPCAddr, "status", "--timeout", "5s")
		if err != nil {
			return st, false, err.Error()
		}
		// The package runs mutual TLS (pki_test.go): a node in plaintext
		// is a harness mistake that would hide what TLS breaks.
		if !st.TLS || st.Insecure {
			return st, false, fmt.Sprintf("%s does not run mutual TLS (ctl status --json: tls %v, insecure %v)", nd.ID, st.TLS, st.Insecure)
		}
		if st.LeaderID == "" {
			return st, false, fmt.Sprintf("%s knows no leader", nd.ID)
		}
		if leaderID == "" {
			leaderID = st.LeaderID
		} else if st.LeaderID != leaderID {
			return st, false, fmt.Sprintf("%s says leader %s, another node says %s", nd.ID, st.LeaderID, leaderID)
		}
		if len(st.Members) != len(members) {
			return st, false, fmt.Sprintf("%s lists %d members, want %d: %+v", nd.ID, len(st.Members), len(members), st.Members)
		}
		leaders := 0
		for _, want := range members {
			m, ok := st.member(want.ID)
			if !ok {
				return st, false, fmt.Sprintf("%s does not list member %s: %+v", nd.ID, want.ID, st.Members)
			}
			if m.RaftAddr != want.RaftAddr || m.GRPCAddr != want.GRPCAddr {
				return st, false, fmt.Sprintf("%s lists %s at raft %q grpc %q, want %q and %q", nd.ID, m.ID, m.RaftAddr, m.GRPCAddr, want.RaftAddr, want.GRPCAddr)
			}
			switch m.State {
			case "leader":
				leaders++
				if m.ID != st.LeaderID {
					return st, false, fmt.Sprintf("%s: member %s is in state leader but leader_id is %s", nd.ID, m.ID, st.LeaderID)
				}
			case "follower":
			default:
				return st, false, fmt.Sprintf("%s sees member %s in state %q", nd.ID, m.ID, m.State)
			}
		}
		if leaders != 1 {
			return st, false, fmt.Sprintf("%s sees %d leaders: %+v", nd.ID, leaders, st.Members)
		}
		if nd.ID == leaderID {
			leaderStatus = st
		}
	}
	if leaderStatus.NodeID == "" {
		// The leader is not among the given members.
		return leaderStatus, false, fmt.Sprintf("leader %s is not one of the nodes asked", leaderID)
	}
	lm, _ := leaderStatus.member(leaderID)
	for _, m := range leaderStatus.Members {
		if m.AppliedIndex != lm.AppliedIndex {
			return leaderStatus, false, fmt.Sprintf("member %s applied %d, leader %s applied %d", m.ID, m.AppliedIndex, leaderID, lm.AppliedIndex)
		}
	}
	return leaderStatus, true, ""
}

// waitStable polls until the given members form a stable, caught-up quorum
// (see stableCheck) and returns the leader's status.
func (c *cluster) waitStable(t testing.TB, members ...*node) statusJSON {
	t.Helper()
	var out statusJSON
	eventually(t, "a stable quorum of "+ids(members), func() (bool, string) {
		st, ok, msg := c.stableCheck(t, members)
		out = st
		return ok, msg
	})
	return out
}

func ids(nodes []*node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.ID)
	}
	return strings.Join(s, ",")
}

// ---------------------------------------------------------------------------
// gRPC.

var typeNames = map[fsmpb.TaskType]string{
	fsmpb.TaskType_TASK_TYPE_VACUUM:         "vacuum",
	fsmpb.TaskType_TASK_TYPE_ERASURE_CODING: "erasure_coding",
	fsmpb.TaskType_TASK_TYPE_BALANCE:        "balance",
	fsmpb.TaskType_TASK_TYPE_REPLICATE:      "replicate",
	fsmpb.TaskType_TASK_TYPE_EC_REBUILD:     "ec_rebuild",
	fsmpb.TaskType_TASK_TYPE_EC_BALANCE:     "ec_balance",
	fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:   "remove_extra",
	fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:   "delete_empty",
}

var allTypes = []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE}

// grpcClient is a plain round-robin client over several admin addresses,
// independent of the product's retrying client.
type grpcClient struct {
	conns []*grpc.ClientConn
	next  int
}

func dialAdmins(t testing.TB, addrs []string) *grpcClient {
	t.Helper()
	c := &grpcClient{}
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, operatorDial(t))
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		c.conns = append(c.conns, conn)
	}
	t.Cleanup(func() {
		for _, conn := range c.conns {
			conn.Close()
		}
	})
	return c
}

// submitOnce tries one address (the next in turn) with a timeout.
func (c *grpcClient) submitOnce(ctx context.Context, timeout time.Duration, typ fsmpb.TaskType, vol uint32) (*pb.SubmitTaskResponse, error) {
	conn := c.conns[c.next%len(c.conns)]
	c.next++
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pb.NewAdminClient(conn).SubmitTask(cctx, &pb.SubmitTaskRequest{Type: typ, VolumeId: vol})
}

// submit retries across addresses until the submission is acknowledged or
// waitTimeout passes.
func (c *grpcClient) submit(t testing.TB, typ fsmpb.TaskType, vol uint32) *pb.SubmitTaskResponse {
	t.Helper()
	var resp *pb.SubmitTaskResponse
	eventually(t, fmt.Sprintf("submission of %s of volume %d", typeNames[typ], vol), func() (bool, string) {
		r, err := c.submitOnce(context.Background(), 5*time.Second, typ, vol)
		if err != nil {
			return false, err.Error()
		}
		resp = r
		return true, ""
	})
	return resp
}

// ---------------------------------------------------------------------------
// Task helpers.

// tasksByID indexes a task list, failing on duplicate ids.
func tasksByID(t testing.TB, tasks []taskJSON) map[uint64]taskJSON {
	t.Helper()
	m := map[uint64]taskJSON{}
	for _, tk := range tasks {
		if _, dup := m[tk.ID]; dup {
			t.Fatalf("task id %d is listed twice", tk.ID)
		}
		m[tk.ID] = tk
	}
	return m
}

// sameTasks compares two task lists on the fields that must survive restarts.
func sameTasks(want, got []taskJSON) string {
	wm, gm := map[uint64]taskJSON{}, map[uint64]taskJSON{}
	for _, tk := range want {
		wm[tk.ID] = tk
	}
	for _, tk := range got {
		gm[tk.ID] = tk
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d tasks listed, want %d", len(got), len(want))
	}
	for id, w := range wm {
		g, ok := gm[id]
		if !ok {
			return fmt.Sprintf("task %d (%s of volume %d) is missing", id, w.Type, w.VolumeID)
		}
		if g.Type != w.Type || g.VolumeID != w.VolumeID || g.State != w.State || g.CreatedAt != w.CreatedAt || g.Attempt != w.Attempt {
			return fmt.Sprintf("task %d is %+v, want %+v", id, g, w)
		}
	}
	return ""
}
