package integration

// Helpers for the executor tests: a real SeaweedFS cluster (one master and
// several volume servers, each its own process group), files written and
// read through the HTTP API, and polling of the master's topology.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const (
	// weedStartTimeout bounds the start of a whole cluster.
	weedStartTimeout = 90 * time.Second
	// topologyTimeout bounds a wait for the master to reflect a change; the
	// master learns sizes and counts from heartbeats every 5 s.
	topologyTimeout = 60 * time.Second
	// weedPollEvery spaces the polls of the master.
	weedPollEvery = 250 * time.Millisecond
	// httpTimeout bounds one HTTP request to SeaweedFS.
	httpTimeout = 30 * time.Second
)

// weedTool is the weed binary: $WEED_BIN, else (also when $WEED_BIN is
// bad) scripts/weed.sh.
var weedTool = &tool{env: "WEED_BIN", script: "weed.sh", timeout: 15 * time.Minute, scriptAfterBadEnv: true}

// weedBinary finds the weed binary. The test is skipped when there is
// none, and fails under CI=true.
func weedBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a real SeaweedFS cluster")
	}
	weedPath, weedErr := weedTool.find()
	if weedPath == "" {
		skipOrFailInCI(t, os.Getenv("CI") == "true", fmt.Sprintf("no SeaweedFS weed binary (set WEED_BIN or make scripts/weed.sh work): %v", weedErr))
	}
	return weedPath
}

// skipOrFailInCI skips the test for a missing tool on a developer's machine,
// and fails it in CI, where a skip would pass the real-SeaweedFS tests
// without running them.
func skipOrFailInCI(t testing.TB, ci bool, why string) {
	t.Helper()
	if ci {
		t.Fatalf("CI=true but this test cannot run: %s", why)
		return
	}
	t.Skip(why)
}

// tool is a binary the tests need, found once per run: $env when it names
// an executable, else the path scripts/<script> prints.
type tool struct {
	env, script string
	timeout     time.Duration // for the script
	// scriptAfterBadEnv runs the script also when $env is set but not an
	// executable (the errors of both are reported).
	scriptAfterBadEnv bool

	once sync.Once
	path string
	err  error
}

func (x *tool) find() (string, error) {
	x.once.Do(func() {
		if p := os.Getenv(x.env); p != "" {
			if isExecutable(p) {
				x.path = p
				return
			}
			x.err = fmt.Errorf("%s=%q is not an executable file", x.env, p)
			if !x.scriptAfterBadEnv {
				return
			}
		}
		p, err := toolFromScript(x.script, x.env, x.timeout)
		if err != nil {
			x.err = errors.Join(x.err, err)
			return
		}
		x.path, x.err = p, nil
	})
	return x.path, x.err
}

// toolFromScript runs scripts/NAME (which installs a tool once into the
// cache) with env cleared, so it does not just echo a bad setting back, and
// returns the executable path it prints last.
func toolFromScript(name, env string, timeout time.Duration) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", name))
	cmd.Env = append(os.Environ(), env+"=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	lines := nonEmptyLines(string(out))
	if len(lines) == 0 || !isExecutable(lines[len(lines)-1]) {
		return "", fmt.Errorf("scripts/%s printed no executable path (%q)", name, out)
	}
	return lines[len(lines)-1], nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// weedProc is one weed process in its own process group.
type weedProc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startWeed(t *testing.T, bin, name, logPath string, args ...string) *weedProc {
	t.Helper()
	return startWeedIn(t, bin, name, logPath, "", args...)
}

// startWeedIn is startWeed in working directory cwd ("": the test's),
// where weed looks for its security.toml first.
func startWeedIn(t *testing.T, bin, name, logPath, cwd string, args ...string) *weedProc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create %s: %v", logPath, err)
	}
	defer f.Close()
	cmd := exec.Command(bin, append([]string{"-logtostderr"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = cwd
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &weedProc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop kills the process group and waits for the process.
func (p *weedProc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
	}
}

func (p *weedProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *weedProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// volumeServer is one running volume server.
type volumeServer struct {
	*weedProc
	// Addr in SeaweedFS's "host:port.grpcPort" form, as a TaskSpec names it.
	Addr string
	HTTP string
	// Dir is its data directory; args its command line (restartVolume).
	Dir  string
	args []string
	cwd  string
}

// weedCluster is a master and its volume servers.
type weedCluster struct {
	master     *weedProc
	masterHTTP string
	// masterPeers is every master, comma-separated, when the cluster has
	// several (weedMasters); "" with one.
	masterPeers string
	// refind, with several masters, points the cluster at the master
	// leader again after a VolumeList failed (leadership moves even
	// without a kill on a loaded machine).
	refind  func()
	mc      master_pb.SeaweedClient
	servers []*volumeServer
	vc      *seaweed.VolumeClient
	hc      *http.Client
	opts    weedOptions
}

// weedOptions are a weedCluster's security: the working directory of its
// weed processes (holding their security.toml) and the dial options of
// the test's own gRPC clients. The zero value is plaintext.
type weedOptions struct {
	cwd  string
	dial []grpc.DialOption
	// specs, if set, places the volume servers (startWeedClusterWith's n
	// is then len(specs)).
	specs []volumeSpec
}

// startWeedCluster starts a master and n volume servers and waits until the
// master lists all of them.
func startWeedCluster(t *testing.T, n int) *weedCluster {
	t.Helper()
	return startWeedClusterWith(t, n, weedOptions{})
}

// startWeedClusterWith is startWeedCluster with opts.
func startWeedClusterWith(t *testing.T, n int, opts weedOptions) *weedCluster {
	t.Helper()
	bin := weedBinary(t)
	dir := t.TempDir()
	mp := testutil.FreePortPair(t, 10000)
	c := &weedCluster{masterHTTP: fmt.Sprintf("127.0.0.1:%d", mp), vc: seaweed.NewVolumeClient(opts.dial...), hc: &http.Client{Timeout: httpTimeout}, opts: opts}
	mdir := filepath.Join(dir, "master")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.master = startWeedIn(t, bin, "master", filepath.Join(dir, "master.log"), opts.cwd, "master",
		"-ip=127.0.0.1", fmt.Sprintf("-port=%d", mp), "-mdir="+mdir, "-volumeSizeLimitMB=8", "-peers=none")
	if opts.specs != nil {
		n = len(opts.specs)
	}
	for i := 0; i < n; i++ {
		var spec volumeSpec
		if opts.specs != nil {
			spec = opts.specs[i]
		}
		c.startVolume(t, bin, dir, spec)
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", mp+10000), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts.dial...)...)
	if err != nil {
		t.Fatalf("dial master: %v", err)
	}
	c.mc = master_pb.NewSeaweedClient(conn)
	// Cleanups run last-in first-out: the client closes before the processes die.
	t.Cleanup(func() {
		_ = c.vc.Close()
		_ = conn.Close()
		if t.Failed() {
			for _, p := range append([]*weedProc{c.master}, procs(c.servers)...) {
				t.Logf("--- last lines of %s (%s):\n%s", p.name, p.logPath, p.logTail(25))
			}
		}
	})
	start := time.Now()
	c.waitTopologyWithin(t, weedStartTimeout, fmt.Sprintf("the master to list %d volume servers", n), func(topo *seaweed.Topology) (bool, string) {
		for _, p := range append([]*weedProc{c.master}, procs(c.servers)...) {
			if p.exited() {
				t.Fatalf("%s exited during start-up:\n%s", p.name, p.logTail(25))
			}
		}
		for _, s := range c.servers {
			if _, ok := topo.Server(s.HTTP); !ok {
				return false, fmt.Sprintf("%d servers listed, %s missing", len(topo.Servers), s.HTTP)
			}
		}
		return true, ""
	})
	t.Logf("SeaweedFS master %s and %d volume servers up in %s", c.masterHTTP, n, time.Since(start).Round(time.Millisecond))
	return c
}

// volumeSpec is where a volume server stands: its own loopback IP
// ("": 127.0.0.1; SeaweedFS treats servers sharing a host as one machine,
// so servers meant as separate machines need IPs of their own, and Linux
// routes all of 127.0.0.0/8 to lo), data centre, rack, disk type and
// volume slots ("": SeaweedFS's defaults, 0: 10 slots). Disks, if set,
// gives the server one data directory per entry, of that disk type, in
// that order (location i is disk id i), each with Max slots; Disk is then
// unused.
type volumeSpec struct {
	IP, DC, Rack, Disk string
	Max                int
	Disks              []string
}

// masterFlag is the -master (and --master) value naming the cluster's
// masters: all of them when it has several.
func (c *weedCluster) masterFlag() string {
	if c.masterPeers != "" {
		return c.masterPeers
	}
	return c.masterHTTP
}

// startVolume starts one volume server as spec places it, on the
// cluster's masters, in the cluster's working directory, with its data
// and log under dir, and adds it to c.servers (it does not wait for the
// master to list it).
func (c *weedCluster) startVolume(t *testing.T, bin, dir string, spec volumeSpec) *volumeServer {
	t.Helper()
	i := len(c.servers)
	ip := cmp.Or(spec.IP, "127.0.0.1")
	p := testutil.FreePortPair(t, 10000)
	vdir := filepath.Join(dir, fmt.Sprintf("vol%d", i))
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	dirs, maxes := vdir, fmt.Sprint(cmp.Or(spec.Max, 10))
	if len(spec.Disks) > 0 {
		var ds, ms []string
		for j := range spec.Disks {
			d := filepath.Join(vdir, fmt.Sprintf("disk%d", j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			ds, ms = append(ds, d), append(ms, fmt.Sprint(cmp.Or(spec.Max, 10)))
		}
		dirs, maxes = strings.Join(ds, ","), strings.Join(ms, ",")
		spec.Disk = strings.Join(spec.Disks, ",")
	}
	args := []string{"volume", "-ip=" + ip, fmt.Sprintf("-port=%d", p), "-dir=" + dirs, "-max=" + maxes,
		"-master=" + c.masterFlag(), "-preStopSeconds=0", "-volume.allowUntrustedRemoteEndpoints"}
	if spec.DC != "" {
		args = append(args, "-dataCenter="+spec.DC)
	}
	if spec.Rack != "" {
		args = append(args, "-rack="+spec.Rack)
	}
	if spec.Disk != "" {
		args = append(args, "-disk="+spec.Disk)
	}
	proc := startWeedIn(t, bin, fmt.Sprintf("volume%d", i), filepath.Join(dir, fmt.Sprintf("volume%d.log", i)), c.opts.cwd, args...)
	vs := &volumeServer{weedProc: proc, Addr: fmt.Sprintf("%s:%d.%d", ip, p, p+10000), HTTP: fmt.Sprintf("%s:%d", ip, p), Dir: vdir, args: args, cwd: c.opts.cwd}
	c.servers = append(c.servers, vs)
	return vs
}

func procs(vs []*volumeServer) []*weedProc {
	out := make([]*weedProc, len(vs))
	for i, v := range vs {
		out[i] = v.weedProc
	}
	return out
}

// topology asks the master for its VolumeList.
func (c *weedCluster) topology(ctx context.Context) (*seaweed.Topology, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.mc.VolumeList(ctx, &master_pb.VolumeListRequest{})
	if err != nil {
		return nil, err
	}
	return seaweed.FromVolumeList(resp), nil
}

// waitTopology polls the master until cond holds and returns that topology.
func (c *weedCluster) waitTopology(t *testing.T, what string, cond func(*seaweed.Topology) (bool, string)) *seaweed.Topology {
	t.Helper()
	return c.waitTopologyWithin(t, topologyTimeout, what, cond)
}

func (c *weedCluster) waitTopologyWithin(t *testing.T, timeout time.Duration, what string, cond func(*seaweed.Topology) (bool, string)) *seaweed.Topology {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	last := ""
	for {
		topo, err := c.topology(context.Background())
		if err == nil {
			ok, msg := cond(topo)
			if ok {
				if d := time.Since(began); d > time.Second {
					t.Logf("waited %s for %s", d.Round(time.Millisecond), what)
				}
				return topo
			}
			last = msg
		} else {
			last = "VolumeList: " + err.Error()
			if c.refind != nil {
				c.refind()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last check: %s", timeout, what, last)
		}
		time.Sleep(weedPollEvery)
	}
}

// replicaServers gives the TaskSpec form of every server holding vid.
func replicaServers(v *seaweed.Volume) []string {
	var out []string
	for _, r := range v.Replicas {
		out = append(out, r.Server.Addr.String())
	}
	return out
}

// holders lists the ids of the servers holding vid as a regular volume.
func holders(topo *seaweed.Topology, vid uint32) []string {
	v := topo.Volumes[vid]
	if v == nil {
		return nil
	}
	var out []string
	for _, r := range v.Replicas {
		out = append(out, r.Server.ID)
	}
	return out
}

// ---------------------------------------------------------------------------
// Files.

// storedFile is a file written through SeaweedFS with known content.
type storedFile struct {
	Fid string
	Vid uint32
	// URL is the volume server the file was written to.
	URL     string
	Sum     [32]byte
	Size    int
	Deleted bool
}

type assignResult struct {
	Fid   string `json:"fid"`
	URL   string `json:"url"`
	Count int    `json:"count"`
	Error string `json:"error"`
}

// writeFiles assigns n file ids at once (one volume) in collection and
// uploads n files of about size bytes with deterministic content. On a
// fresh master the first assign takes about 10 s: the master defers volume
// id allocation for two heartbeat periods after start-up.
func (c *weedCluster) writeFiles(t *testing.T, collection string, n, size int) []*storedFile {
	t.Helper()
	began := time.Now()
	defer func() { t.Logf("wrote %d files in %s", n, time.Since(began).Round(time.Millisecond)) }()
	var a assignResult
	c.getJSON(t, fmt.Sprintf("http://%s/dir/assign?count=%d&collection=%s", c.masterHTTP, n, collection), &a)
	if a.Error != "" || a.Fid == "" || a.Count < n {
		t.Fatalf("assign %d ids in %s: %+v", n, collection, a)
	}
	vidStr, _, _ := strings.Cut(a.Fid, ",")
	vid, err := strconv.ParseUint(vidStr, 10, 32)
	if err != nil {
		t.Fatalf("assign returned fid %q: %v", a.Fid, err)
	}
	rng := rand.New(rand.NewPCG(vid, uint64(n)))
	files := make([]*storedFile, n)
	for i := range files {
		fid := a.Fid
		if i > 0 {
			fid = fmt.Sprintf("%s_%d", a.Fid, i)
		}
		data := make([]byte, size+rng.IntN(size/4+1))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		c.upload(t, a.URL, fid, data)
		files[i] = &storedFile{Fid: fid, Vid: uint32(vid), URL: a.URL, Sum: sha256.Sum256(data), Size: len(data)}
	}
	return files
}

func (c *weedCluster) upload(t *testing.T, server, fid string, data []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", strings.ReplaceAll(fid, ",", "_")+".bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/%s", server, fid), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("upload %s to %s: %v", fid, server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s to %s: %s: %s", fid, server, resp.Status, b)
	}
}

// deleteFiles deletes files through the server holding their volume.
func (c *weedCluster) deleteFiles(t *testing.T, server string, files []*storedFile) {
	t.Helper()
	for _, f := range files {
		req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("http://%s/%s", server, f.Fid), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatalf("delete %s: %v", f.Fid, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
			t.Fatalf("delete %s on %s: %s: %s", f.Fid, server, resp.Status, b)
		}
		f.Deleted = true
	}
}

// checkFiles reads every file through each of the given volume servers: a
// live file must come back with its checksum, a deleted one must be 404.
func (c *weedCluster) checkFiles(t *testing.T, files []*storedFile, servers ...string) {
	t.Helper()
	for _, s := range servers {
		for _, f := range files {
			if err := c.checkFile(s, f); err != nil {
				t.Fatalf("read back through %s: %v", s, err)
			}
		}
	}
}

func (c *weedCluster) checkFile(server string, f *storedFile) error {
	resp, err := c.hc.Get(fmt.Sprintf("http://%s/%s", server, f.Fid))
	if err != nil {
		return fmt.Errorf("GET %s: %w", f.Fid, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", f.Fid, err)
	}
	if f.Deleted {
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("GET deleted %s: %s, want 404 Not Found", f.Fid, resp.Status)
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", f.Fid, resp.Status, b)
	}
	if sha256.Sum256(b) != f.Sum {
		return fmt.Errorf("GET %s: %d bytes with the wrong checksum (wrote %d bytes)", f.Fid, len(b), f.Size)
	}
	return nil
}

func (c *weedCluster) getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := c.hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

// serverAddrs lists every volume server in TaskSpec form.
func (c *weedCluster) serverAddrs() []string {
	out := make([]string, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.Addr
	}
	return out
}

// httpOf turns a TaskSpec address into the HTTP host:port.
func httpOf(t *testing.T, addr string) string {
	t.Helper()
	a, err := seaweed.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.HTTP
}

// ---------------------------------------------------------------------------
// Progress recording.

type progressEvent struct {
	Step       string
	Progress   float64
	Checkpoint bool
}

// recorder records an executor's progress and can run a hook when a step
// begins (its first checkpoint).
type recorder struct {
	mu      sync.Mutex
	events  []progressEvent
	onBegin map[string]func()
}

func (r *recorder) report(step string, progress float64, checkpoint bool) {
	r.mu.Lock()
	r.events = append(r.events, progressEvent{step, progress, checkpoint})
	hook := r.onBegin[step]
	if checkpoint {
		delete(r.onBegin, step)
	} else {
		hook = nil
	}
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// checkpoints lists the steps that began, in order.
func (r *recorder) checkpoints() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Checkpoint {
			out = append(out, e.Step)
		}
	}
	return out
}

// monotonic reports whether progress never went down.
func (r *recorder) monotonic() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.events); i++ {
		if r.events[i].Progress < r.events[i-1].Progress {
			return false
		}
	}
	return true
}
