package main

// The harness of the in-process system tests (system_test.go): a simulated
// SeaweedFS, three admin nodes started with startNode exactly as `dev` and
// `admin` start them, and real workers running the real executors.

import (
	"context"
	"fmt"
	"github.com/groundskeeper-dev/groundskeeper/internal/testaddr"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// sysWait bounds every poll. The machine may be small and busy (race
// detector, two cores); a healthy run needs a fraction of it.
const sysWait = 30 * time.Second

var allCaps = []pb.TaskType{pb.TaskType_TASK_TYPE_VACUUM, pb.TaskType_TASK_TYPE_ERASURE_CODING, pb.TaskType_TASK_TYPE_BALANCE}

// sysLogger is silent unless GK_TEST_LOG names a level (debug, info, ...).
func sysLogger(name string) hclog.Logger {
	lvl := os.Getenv("GK_TEST_LOG")
	if lvl == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(lvl), Output: os.Stderr, TimeFormat: "15:04:05.000"})
}

// sysSchedConfig is the scheduler configuration of the system tests: short
// timings, and thresholds that find no balance work unless a test asks.
func sysSchedConfig() scheduler.Config {
	return scheduler.Config{
		Thresholds: scheduler.Thresholds{VacuumGarbage: 0.3, ECFullness: 0.95, ECQuietFor: time.Hour, ECMinSizeMB: 5,
			BalanceImbalance: 1e9},
		DetectInterval: time.Second,
		Lease:          2 * time.Second,
		Grace:          time.Second,
		Heartbeat:      300 * time.Millisecond,
		MaxRetries:     2,
	}
}

// sysSimConfig is a small simulated SeaweedFS: 10 MB volumes, quick heartbeats.
func sysSimConfig(servers int) sim.Config {
	return sim.Config{Servers: servers, MaxVolumesPerServer: 10, VolumeSizeLimitMB: 10, HeartbeatDelay: 20 * time.Millisecond,
		CompactDuration: 50 * time.Millisecond, CopyDuration: 50 * time.Millisecond, EcGenerateDuration: 50 * time.Millisecond,
		EcCopyDuration: 10 * time.Millisecond, MasterRefillDelay: 500 * time.Millisecond}
}

type system struct {
	t    testing.TB
	sim  *sim.Cluster
	dir  string
	cfgs []nodeConfig

	mu      sync.Mutex
	nodes   []*adminNode // nil while stopped
	workers []*sysWorker
	conns   []*grpc.ClientConn
}

type sysWorker struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// newSystem starts the simulated SeaweedFS; seed volumes, then startAdmins.
func newSystem(t testing.TB, simCfg sim.Config) *system {
	t.Helper()
	c, err := sim.New(simCfg)
	if err != nil {
		t.Fatalf("start simulated SeaweedFS: %v", err)
	}
	s := &system{t: t, sim: c, dir: t.TempDir()}
	t.Cleanup(s.close)
	return s
}

// close stops workers, then admins, then SeaweedFS; on failure it dumps the tasks.
func (s *system) close() {
	if s.t.Failed() {
		s.dump()
	}
	s.mu.Lock()
	workers, conns := s.workers, s.conns
	s.mu.Unlock()
	for _, w := range workers {
		w.stop()
	}
	for _, c := range conns {
		c.Close()
	}
	for i := range s.cfgs {
		s.stopNode(i)
	}
	s.sim.Close()
}

func (s *system) dump() {
	n := s.anyNode()
	if n == nil {
		return
	}
	n.fsm.Read(func(st *fsm.State) {
		for _, t := range st.Tasks(fsm.TaskFilter{}) {
			s.t.Logf("task %d %s vol %d %s attempt %d retries %d worker %s fence %d step %q err %q created %s",
				t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State), t.Attempt, t.RetryCount, t.WorkerId, t.Fence,
				t.Step, t.LastError, time.Unix(0, t.CreatedAt).Format("15:04:05.000"))
		}
		for _, c := range st.CapacityChanges() {
			s.t.Logf("unretired change: task %d %s vol %d %d -> %d", c.TaskId, fsm.TypeName(c.Type), c.VolumeId, c.OldSize, c.NewSize)
		}
	})
	for _, o := range s.sim.Overlaps() {
		s.t.Logf("overlap: %s", o)
	}
}

// startAdmins starts three admin nodes on free loopback ports and waits for a leader.
func (s *system) startAdmins(sc scheduler.Config) {
	s.t.Helper()
	var peers []cluster.Peer
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("a%d", i+1)
		raftAddr := sysFreeAddr(s.t)
		peers = append(peers, cluster.Peer{ID: id, RaftAddr: raftAddr})
		s.cfgs = append(s.cfgs, nodeConfig{
			ID: id, DataDir: filepath.Join(s.dir, id), RaftAddr: raftAddr, GRPCAddr: sysFreeAddr(s.t),
			Logger: sysLogger("admin." + id), Master: s.sim.MasterServerAddress().String(), Scheduler: sc,
		})
	}
	for i := range s.cfgs {
		s.cfgs[i].Peers, s.cfgs[i].Bootstrap = peers, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), sysWait)
	defer cancel()
	nodes, err := startNodes(ctx, s.cfgs)
	if err != nil {
		s.t.Fatalf("start admins: %v", err)
	}
	s.mu.Lock()
	s.nodes = nodes
	s.mu.Unlock()
	s.waitLeader()
	s.waitPublished()
}

// waitPublished waits until every running node knows every admin's gRPC
// address (followers forward and redirect with it).
func (s *system) waitPublished() {
	s.t.Helper()
	sysWaitFor(s.t, sysWait, "every admin's published gRPC address", func() bool {
		for i := range s.cfgs {
			n := s.node(i)
			if n == nil {
				continue
			}
			ok := true
			n.fsm.Read(func(st *fsm.State) {
				for _, c := range s.cfgs {
					if a, found := st.AdminAddr(c.ID); !found || a != c.GRPCAddr {
						ok = false
					}
				}
			})
			if !ok {
				return false
			}
		}
		return true
	})
}

func (s *system) startNode(i int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sysWait)
	defer cancel()
	n, err := startNode(ctx, s.cfgs[i])
	if err != nil {
		s.t.Fatalf("start admin %s: %v", s.cfgs[i].ID, err)
	}
	s.mu.Lock()
	s.nodes[i] = n
	s.mu.Unlock()
}

// stopNode stops admin i abruptly, as a crash would: its worker streams
// break at once, then raft shuts down.
func (s *system) stopNode(i int) {
	s.mu.Lock()
	n := s.nodes[i]
	s.nodes[i] = nil
	s.mu.Unlock()
	if n == nil {
		return
	}
	n.grpc.Stop()
	if err := n.stop(); err != nil {
		s.t.Logf("stop admin %s: %v", s.cfgs[i].ID, err)
	}
}

func (s *system) node(i int) *adminNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[i]
}

// leader returns the index of the ready leader, or -1.
func (s *system) leader() int {
	for i := range s.cfgs {
		if n := s.node(i); n != nil && n.raft.IsLeader() {
			return i
		}
	}
	return -1
}

func (s *system) waitLeader() int {
	s.t.Helper()
	l := -1
	sysWaitFor(s.t, sysWait, "a leader", func() bool { l = s.leader(); return l >= 0 })
	return l
}

// anyNode is the leader if there is one, else any running node.
func (s *system) anyNode() *adminNode {
	if l := s.leader(); l >= 0 {
		return s.node(l)
	}
	for i := range s.cfgs {
		if n := s.node(i); n != nil {
			return n
		}
	}
	return nil
}

func (s *system) grpcAddrs() []string {
	var out []string
	for _, c := range s.cfgs {
		out = append(out, c.GRPCAddr)
	}
	return out
}

// read runs fn on the leader's state (any running node's without a leader).
func (s *system) read(fn func(st *fsm.State)) {
	n := s.anyNode()
	if n == nil {
		s.t.Fatal("no admin node is running")
	}
	n.fsm.Read(fn)
}

// tasks returns every task, ordered by id.
func (s *system) tasks() []*pb.Task {
	var out []*pb.Task
	s.read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{}) })
	return out
}

func (s *system) task(id uint64) *pb.Task {
	var t *pb.Task
	s.read(func(st *fsm.State) { t, _ = st.Task(id) })
	return t
}

// tasksFor returns the tasks of one volume.
func (s *system) tasksFor(vid uint32) []*pb.Task {
	var out []*pb.Task
	s.read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{VolumeID: vid}) })
	return out
}

// waitTask waits until volume vid has exactly one task and cond holds for it.
func (s *system) waitTask(vid uint32, what string, cond func(t *pb.Task) bool) *pb.Task {
	s.t.Helper()
	var got *pb.Task
	sysWaitFor(s.t, sysWait, fmt.Sprintf("volume %d: %s", vid, what), func() bool {
		ts := s.tasksFor(vid)
		if len(ts) != 1 {
			return false
		}
		got = ts[0]
		return cond(got)
	})
	return got
}

func (s *system) changes() []*pb.CapacityChange {
	var out []*pb.CapacityChange
	s.read(func(st *fsm.State) { out = st.CapacityChanges() })
	return out
}

func hasChange(changes []*pb.CapacityChange, taskID uint64) bool {
	for _, c := range changes {
		if c.TaskId == taskID {
			return true
		}
	}
	return false
}

func active(t *pb.Task) bool { return fsm.Active(t.State) }

// polls is how often the master has been asked for its topology.
// waitPolls waits until the leader has finished n more detection rounds
// (master polls of its scheduler; the topology caches of every admin poll
// the master too, so counting VolumeList calls would say too little).
func (s *system) waitPolls(n int) {
	s.t.Helper()
	var seen int64
	count := -1 // the first look only sets the baseline
	sysWaitFor(s.t, sysWait, fmt.Sprintf("%d more detection rounds of the leader", n), func() bool {
		i := s.leader()
		if i < 0 {
			return false
		}
		st, ok := s.node(i).sched.Status()
		if !ok || st.LastPoll == 0 {
			return false
		}
		if st.LastPoll != seen {
			seen = st.LastPoll
			count++
		}
		return count >= n
	})
}

// waitQuiet waits until every task is terminal, every capacity change is
// retired, and two more detection rounds added no task.
func (s *system) waitQuiet() []*pb.Task {
	s.t.Helper()
	deadline := time.Now().Add(2 * sysWait)
	for time.Now().Before(deadline) {
		var tasks []*pb.Task
		sysWaitFor(s.t, 2*sysWait, "every task to finish and every change to retire", func() bool {
			tasks = s.tasks()
			for _, t := range tasks {
				if active(t) {
					return false
				}
			}
			return len(s.changes()) == 0
		})
		s.waitPolls(3)
		again := s.tasks()
		if len(again) == len(tasks) && len(s.changes()) == 0 {
			return again
		}
	}
	s.t.Fatal("the system never settled")
	return nil
}

// waitHashes waits until the given running nodes have applied the same
// state (fsm hashes equal) and returns the hash.
func (s *system) waitHashes(idx ...int) string {
	s.t.Helper()
	var last []string
	var hash string
	sysWaitFor(s.t, sysWait, "equal fsm hashes", func() bool {
		last = last[:0]
		for _, i := range idx {
			last = append(last, s.node(i).fsm.Hash())
		}
		for _, h := range last[1:] {
			if h != last[0] {
				return false
			}
		}
		hash = last[0]
		return true
	})
	return hash
}

// adminClient returns an Admin client of node i.
func (s *system) adminClient(i int) pb.AdminClient {
	return pb.NewAdminClient(s.conn(s.cfgs[i].GRPCAddr))
}

func (s *system) conn(addr string) *grpc.ClientConn {
	s.t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatalf("dial %s: %v", addr, err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c
}

// startWorker runs a real worker (real executors against the simulator)
// until the test ends or stop is called.
func (s *system) startWorker(id string, admins []string, maxConcurrent int) *sysWorker {
	s.t.Helper()
	volumes := seaweed.NewVolumeClient()
	w, err := worker.New(worker.Config{
		ID: id, Admins: admins, DataDir: filepath.Join(s.dir, id), MaxConcurrent: maxConcurrent, Version: "system-test",
		Capabilities: allCaps, Executors: worker.Executors(volumes), Logger: sysLogger("worker." + id),
	})
	if err != nil {
		volumes.Close()
		s.t.Fatalf("start worker %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sw := &sysWorker{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		defer volumes.Close()
		defer w.Close()
		if err := w.Run(ctx); err != nil {
			s.t.Errorf("worker %s: %v", id, err)
		}
	}()
	s.mu.Lock()
	s.workers = append(s.workers, sw)
	s.mu.Unlock()
	return sw
}

// stop cancels the worker's Run and waits for it to return.
func (w *sysWorker) stop() {
	w.cancel()
	<-w.done
}

// waitConnected waits until the leader's scheduler has a session for each worker.
func (s *system) waitConnected(ids ...string) int {
	s.t.Helper()
	l := -1
	sysWaitFor(s.t, sysWait, fmt.Sprintf("workers %v connected to the leader", ids), func() bool {
		l = s.leader()
		if l < 0 {
			return false
		}
		conn := s.node(l).sched.Connected()
		for _, id := range ids {
			if !conn[id] {
				return false
			}
		}
		return true
	})
	return l
}

// ---- the simulator's side ----

// holders lists the indexes of servers holding a normal replica of vid.
func (s *system) holders(vid uint32) []int {
	var out []int
	for i, srv := range s.sim.Servers() {
		if _, ok := srv.Volume(vid); ok {
			out = append(out, i)
		}
	}
	return out
}

// ecMounted maps each mounted shard of vid to the servers mounting it.
func (s *system) ecMounted(vid uint32) map[uint32][]int {
	out := map[uint32][]int{}
	for i, srv := range s.sim.Servers() {
		if e, ok := srv.EcShards(vid); ok {
			for _, sh := range e.Mounted {
				out[sh] = append(out[sh], i)
			}
		}
	}
	return out
}

// ecFiles counts the shard files of vid on every server.
func (s *system) ecFiles(vid uint32) int {
	n := 0
	for _, srv := range s.sim.Servers() {
		if e, ok := srv.EcShards(vid); ok {
			n += len(e.Files)
		}
	}
	return n
}

// checkErasureCoded asserts the simulator holds all 14 shards of vid, each
// mounted exactly once, and no normal replica of it.
func (s *system) checkErasureCoded(vid uint32) {
	s.t.Helper()
	m := s.ecMounted(vid)
	for sh := uint32(0); sh < sim.TotalShards; sh++ {
		if len(m[sh]) != 1 {
			s.t.Errorf("volume %d: shard %d is mounted on servers %v, want exactly one", vid, sh, m[sh])
		}
	}
	if len(m) != sim.TotalShards {
		s.t.Errorf("volume %d: %d distinct shards mounted, want %d", vid, len(m), sim.TotalShards)
	}
	if h := s.holders(vid); len(h) != 0 {
		s.t.Errorf("volume %d: the original is still on servers %v after erasure coding", vid, h)
	}
}

// replica returns server i's replica of vid, failing the test if it is missing.
func (s *system) replica(i int, vid uint32) sim.VolumeState {
	s.t.Helper()
	v, ok := s.sim.Server(i).Volume(vid)
	if !ok {
		s.t.Fatalf("volume %d is missing from server %d (holders %v)", vid, i, s.holders(vid))
	}
	return v
}

// checkIntact asserts server i's replica of vid is loaded, writable, without
// leftover compaction files, and still holds its garbage (not vacuumed).
func (s *system) checkIntact(i int, vid uint32, size, garbage uint64) {
	s.t.Helper()
	v := s.replica(i, vid)
	if v.ReadOnly || v.Unloaded || v.Compacting || v.Compacted {
		s.t.Errorf("volume %d on server %d: read-only %v, unloaded %v, compacting %v, compacted copy pending %v; want a plain writable volume",
			vid, i, v.ReadOnly, v.Unloaded, v.Compacting, v.Compacted)
	}
	if v.Size != size || v.DeletedBytes != garbage {
		s.t.Errorf("volume %d on server %d: size %d with %d garbage, want untouched %d with %d", vid, i, v.Size, v.DeletedBytes, size, garbage)
	}
}

// checkVacuumed asserts server i's replica of vid was compacted to size.
func (s *system) checkVacuumed(i int, vid uint32, size uint64) {
	s.t.Helper()
	v := s.replica(i, vid)
	if v.DeletedBytes != 0 || v.Size != size || v.CompactRevision == 0 {
		s.t.Errorf("volume %d on server %d: size %d, garbage %d, compaction revision %d; want vacuumed to %d with no garbage",
			vid, i, v.Size, v.DeletedBytes, v.CompactRevision, size)
	}
	if v.ReadOnly || v.Unloaded || v.Compacted {
		s.t.Errorf("volume %d on server %d after vacuum: read-only %v, unloaded %v, compacted copy pending %v", vid, i, v.ReadOnly, v.Unloaded, v.Compacted)
	}
}

func (s *system) checkNoOverlaps() {
	s.t.Helper()
	for _, o := range s.sim.Overlaps() {
		s.t.Errorf("operations of different attempts overlap: %s", o)
	}
}

// opsOf returns the logged operations on vid, in start order.
func (s *system) opsOf(vid uint32) []sim.Op {
	var out []sim.Op
	for _, o := range s.sim.OpLog() {
		if o.VolumeID == vid {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

func opsString(ops []sim.Op) string {
	var b strings.Builder
	for _, o := range ops {
		b.WriteString("\n  ")
		b.WriteString(o.String())
		if o.Err != "" {
			b.WriteString(" err: " + o.Err)
		}
	}
	return b.String()
}

// ---- raw worker sessions ----

// rawSession opens a worker stream to addr, sends hello and returns the
// stream with the admin's first answer (or the error that ended the stream).
func (s *system) rawSession(ctx context.Context, addr string, hello *pb.Hello) (pb.WorkerService_SessionClient, *pb.AdminMessage, error) {
	s.t.Helper()
	stream, err := pb.NewWorkerServiceClient(s.conn(addr)).Session(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: hello}}); err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	return stream, first, err
}

// ---- polling and ports ----

// sysWaitFor polls cond until it holds, failing the test at the deadline.
func sysWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sysFreeAddr is testaddr.Free.
func sysFreeAddr(t testing.TB) string {
	t.Helper()
	return testaddr.Free(t)
}

// ---- a network cut between one worker and the admins ----

// netProxy forwards TCP connections to target until cut: then it drops
// every connection and refuses new ones, as a network partition would.
type netProxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *netProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &netProxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { lis.Close(); p.Cut() })
	return p
}

func (p *netProxy) Addr() string { return p.lis.Addr().String() }

func (p *netProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// Cut drops every proxied connection and refuses new ones.
func (p *netProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}
