// Package admintest is the harness of the in-process system tests: a
// simulated SeaweedFS, three admin nodes started with admin.StartNodes
// exactly as `dev` and `admin` start them, and real workers running the
// real executors. The admin package's system tests and the command line's
// operator tests (ctl against running admins) share it. Test code only.
package admintest

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// Wait bounds every poll. The machine may be small and busy (race
// detector, two cores); a healthy run needs a fraction of it.
const Wait = 30 * time.Second

var AllCaps = []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_EC_REBUILD, fsmpb.TaskType_TASK_TYPE_EC_BALANCE, fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY}

// SchedConfig is the scheduler configuration of the system tests: short
// timings, and thresholds that find no balance work (no EC balancing
// either) and repair nothing (a
// server a test stops is back long before an hour) unless a test asks.
func SchedConfig() scheduler.Config {
	return scheduler.Config{
		Thresholds: scheduler.Thresholds{VacuumGarbage: 0.3, ECFullness: 0.95, ECQuietFor: time.Hour, ECMinSizeMB: 5,
			BalanceImbalance: 1e9, RepairAfter: time.Hour, ECBalanceSkew: -1},
		DetectInterval: time.Second,
		Lease:          2 * time.Second,
		Grace:          time.Second,
		Heartbeat:      300 * time.Millisecond,
		MaxRetries:     2,
	}
}

// SimConfig is a small simulated SeaweedFS: 10 MB volumes, quick heartbeats.
func SimConfig(servers int) sim.Config {
	return sim.Config{Servers: servers, MaxVolumesPerServer: 10, VolumeSizeLimitMB: 10, HeartbeatDelay: 20 * time.Millisecond,
		CompactDuration: 50 * time.Millisecond, CopyDuration: 50 * time.Millisecond, EcGenerateDuration: 50 * time.Millisecond,
		EcCopyDuration: 10 * time.Millisecond, MasterRefillDelay: 500 * time.Millisecond}
}

type System struct {
	T    testing.TB
	Sim  *sim.Cluster
	Dir  string
	Cfgs []admin.Config

	mu      sync.Mutex
	nodes   []*admin.Node // nil while stopped
	workers []*Worker
	conns   []*grpc.ClientConn
	// tls is the CA of EnableTLS (nil: plaintext).
	tls *tlsState
}

type Worker struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSystem starts the simulated SeaweedFS; seed volumes, then startAdmins.
func NewSystem(t testing.TB, simCfg sim.Config) *System {
	t.Helper()
	c, err := sim.New(simCfg)
	if err != nil {
		t.Fatalf("start simulated SeaweedFS: %v", err)
	}
	s := &System{T: t, Sim: c, Dir: t.TempDir()}
	t.Cleanup(s.close)
	return s
}

// close stops workers, then admins, then SeaweedFS; on failure it dumps the tasks.
func (s *System) close() {
	if s.T.Failed() {
		s.dump()
	}
	s.mu.Lock()
	workers, conns := s.workers, s.conns
	s.mu.Unlock()
	for _, w := range workers {
		w.Stop()
	}
	for _, c := range conns {
		c.Close()
	}
	for i := range s.Cfgs {
		s.StopNode(i)
	}
	s.Sim.Close()
}

func (s *System) dump() {
	n := s.AnyNode()
	if n == nil {
		return
	}
	n.FSM().Read(func(st *fsm.State) {
		for _, t := range st.Tasks(fsm.TaskFilter{}) {
			s.T.Logf("task %d %s vol %d %s attempt %d retries %d worker %s fence %d step %q err %q created %s",
				t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State), t.Attempt, t.RetryCount, t.WorkerId, t.Fence,
				t.Step, t.LastError, time.Unix(0, t.CreatedAt).Format("15:04:05.000"))
		}
		for _, c := range st.CapacityChanges() {
			s.T.Logf("unretired change: task %d %s vol %d %d -> %d", c.TaskId, fsm.TypeName(c.Type), c.VolumeId, c.OldSize, c.NewSize)
		}
	})
	for _, o := range s.Sim.Overlaps() {
		s.T.Logf("overlap: %s", o)
	}
}

// StartAdmins starts three admin nodes on free loopback ports and waits for a leader.
func (s *System) StartAdmins(sc scheduler.Config) {
	s.T.Helper()
	var peers []cluster.Peer
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("a%d", i+1)
		raftAddr := testutil.FreeAddr(s.T)
		peers = append(peers, cluster.Peer{ID: id, RaftAddr: raftAddr})
		s.Cfgs = append(s.Cfgs, admin.Config{
			ID: id, DataDir: filepath.Join(s.Dir, id), RaftAddr: raftAddr, GRPCAddr: testutil.FreeAddr(s.T),
			Logger: testutil.Logger("admin." + id), Master: s.Sim.MasterServerAddress().String(), Scheduler: sc,
			TLS:      s.Source(certs.RoleAdmin, id),
			HTTPAddr: testutil.FreeAddr(s.T),
		})
	}
	for i := range s.Cfgs {
		s.Cfgs[i].Peers, s.Cfgs[i].Bootstrap = peers, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	nodes, err := admin.StartNodes(ctx, s.Cfgs)
	if err != nil {
		s.T.Fatalf("start admins: %v", err)
	}
	s.mu.Lock()
	s.nodes = nodes
	s.mu.Unlock()
	s.WaitLeader()
	s.WaitPublished()
}

// WaitPublished waits until every running node knows every admin's gRPC
// address (followers forward and redirect with it).
func (s *System) WaitPublished() {
	s.T.Helper()
	testutil.EventuallyTrue(s.T, Wait, "every admin's published gRPC address", func() bool {
		for i := range s.Cfgs {
			n := s.Node(i)
			if n == nil {
				continue
			}
			ok := true
			n.FSM().Read(func(st *fsm.State) {
				for _, c := range s.Cfgs {
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

func (s *System) StartNode(i int) {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	n, err := admin.Start(ctx, s.Cfgs[i])
	if err != nil {
		s.T.Fatalf("start admin %s: %v", s.Cfgs[i].ID, err)
	}
	s.mu.Lock()
	s.nodes[i] = n
	s.mu.Unlock()
}

// StartJoiner starts one more admin, named id, that is given the current
// admins as --peers without --bootstrap: it waits to be added (`ctl peers
// add`, AddPeer with its Cfgs entry's RaftAddr). It returns its index.
func (s *System) StartJoiner(id string) int {
	s.T.Helper()
	var peers []cluster.Peer
	for _, c := range s.Cfgs {
		peers = append(peers, cluster.Peer{ID: c.ID, RaftAddr: c.RaftAddr})
	}
	cfg := admin.Config{
		ID: id, DataDir: filepath.Join(s.Dir, id), RaftAddr: testutil.FreeAddr(s.T), GRPCAddr: testutil.FreeAddr(s.T),
		Logger: testutil.Logger("admin." + id), Master: s.Sim.MasterServerAddress().String(), Scheduler: s.Cfgs[0].Scheduler,
		TLS: s.Source(certs.RoleAdmin, id), Peers: peers,
	}
	s.mu.Lock()
	s.Cfgs = append(s.Cfgs, cfg)
	s.nodes = append(s.nodes, nil)
	i := len(s.Cfgs) - 1
	s.mu.Unlock()
	s.StartNode(i)
	return i
}

// StopNode stops admin i abruptly, as a crash would: its worker streams
// break at once, then raft shuts down.
func (s *System) StopNode(i int) {
	s.mu.Lock()
	n := s.nodes[i]
	s.nodes[i] = nil
	s.mu.Unlock()
	if n == nil {
		return
	}
	if err := n.Kill(); err != nil {
		s.T.Logf("stop admin %s: %v", s.Cfgs[i].ID, err)
	}
}

func (s *System) Node(i int) *admin.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[i]
}

// Leader returns the index of the ready leader, or -1.
func (s *System) Leader() int {
	for i := range s.Cfgs {
		if n := s.Node(i); n != nil && n.Raft().IsLeader() {
			return i
		}
	}
	return -1
}

func (s *System) WaitLeader() int {
	s.T.Helper()
	l := -1
	testutil.EventuallyTrue(s.T, Wait, "a leader", func() bool { l = s.Leader(); return l >= 0 })
	return l
}

// AnyNode is the leader if there is one, else any running node.
func (s *System) AnyNode() *admin.Node {
	if l := s.Leader(); l >= 0 {
		return s.Node(l)
	}
	for i := range s.Cfgs {
		if n := s.Node(i); n != nil {
			return n
		}
	}
	return nil
}

func (s *System) GRPCAddrs() []string {
	var out []string
	for _, c := range s.Cfgs {
		out = append(out, c.GRPCAddr)
	}
	return out
}

// Read runs fn on the leader's state (any running node's without a leader).
func (s *System) Read(fn func(st *fsm.State)) {
	n := s.AnyNode()
	if n == nil {
		s.T.Fatal("no admin node is running")
	}
	n.FSM().Read(fn)
}

// Tasks returns every task, ordered by id.
func (s *System) Tasks() []*fsmpb.Task {
	var out []*fsmpb.Task
	s.Read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{}) })
	return out
}

func (s *System) Task(id uint64) *fsmpb.Task {
	var t *fsmpb.Task
	s.Read(func(st *fsm.State) { t, _ = st.Task(id) })
	return t
}

// TasksFor returns the tasks of one volume.
func (s *System) TasksFor(vid uint32) []*fsmpb.Task {
	var out []*fsmpb.Task
	s.Read(func(st *fsm.State) { out = st.Tasks(fsm.TaskFilter{VolumeID: vid}) })
	return out
}

// WaitTask waits until volume vid has exactly one task and cond holds for it.
func (s *System) WaitTask(vid uint32, what string, cond func(t *fsmpb.Task) bool) *fsmpb.Task {
	s.T.Helper()
	var got *fsmpb.Task
	testutil.EventuallyTrue(s.T, Wait, fmt.Sprintf("volume %d: %s", vid, what), func() bool {
		ts := s.TasksFor(vid)
		if len(ts) != 1 {
			return false
		}
		got = ts[0]
		return cond(got)
	})
	return got
}

func (s *System) Changes() []*fsmpb.CapacityChange {
	var out []*fsmpb.CapacityChange
	s.Read(func(st *fsm.State) { out = st.CapacityChanges() })
	return out
}

func HasChange(changes []*fsmpb.CapacityChange, taskID uint64) bool {
	for _, c := range changes {
		if c.TaskId == taskID {
			return true
		}
	}
	return false
}

func Active(t *fsmpb.Task) bool { return fsm.Active(t.State) }

// WaitPolls waits until the leader has finished n more detection rounds
// (master polls of its scheduler; the topology caches of every admin poll
// the master too, so counting VolumeList calls would say too little).
func (s *System) WaitPolls(n int) {
	s.T.Helper()
	var seen int64
	count := -1 // the first look only sets the baseline
	testutil.EventuallyTrue(s.T, Wait, fmt.Sprintf("%d more detection rounds of the leader", n), func() bool {
		i := s.Leader()
		if i < 0 {
			return false
		}
		st, ok := s.Node(i).Scheduler().Status()
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

// WaitQuiet waits until every task is terminal, every capacity change is
// retired, and two more detection rounds added no task.
func (s *System) WaitQuiet() []*fsmpb.Task {
	s.T.Helper()
	deadline := time.Now().Add(2 * Wait)
	for time.Now().Before(deadline) {
		var tasks []*fsmpb.Task
		testutil.EventuallyTrue(s.T, 2*Wait, "every task to finish and every change to retire", func() bool {
			tasks = s.Tasks()
			for _, t := range tasks {
				if Active(t) {
					return false
				}
			}
			return len(s.Changes()) == 0
		})
		s.WaitPolls(3)
		again := s.Tasks()
		if len(again) == len(tasks) && len(s.Changes()) == 0 {
			return again
		}
	}
	s.T.Fatal("the System never settled")
	return nil
}

// WaitHashes waits until the given running nodes have applied the same
// state (fsm hashes equal) and returns the hash.
func (s *System) WaitHashes(idx ...int) string {
	s.T.Helper()
	var last []string
	var hash string
	testutil.EventuallyTrue(s.T, Wait, "equal fsm hashes", func() bool {
		last = last[:0]
		for _, i := range idx {
			last = append(last, s.Node(i).FSM().Hash())
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

// AdminClient returns an Admin client of node i.
func (s *System) AdminClient(i int) pb.AdminClient {
	return pb.NewAdminClient(s.Conn(s.Cfgs[i].GRPCAddr))
}

// Conn dials addr as an operator ("test-operator") with EnableTLS, in
// plaintext without.
func (s *System) Conn(addr string) *grpc.ClientConn {
	s.T.Helper()
	return s.ConnAs(addr, certs.RoleOperator, "test-operator")
}

// StartWorker runs a real worker (real executors against the simulator)
// until the test ends or stop is called.
func (s *System) StartWorker(id string, admins []string, maxConcurrent int) *Worker {
	s.T.Helper()
	volumes := seaweed.NewVolumeClient()
	w, err := worker.New(worker.Config{
		ID: id, Admins: admins, DataDir: filepath.Join(s.Dir, id), MaxConcurrent: maxConcurrent, Version: "system-test",
		Capabilities: AllCaps, Executors: worker.Executors(volumes), Logger: testutil.Logger("worker." + id),
		TLS: s.Source(certs.RoleWorker, id),
	})
	if err != nil {
		volumes.Close()
		s.T.Fatalf("start worker %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sw := &Worker{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		defer volumes.Close()
		defer w.Close()
		if err := w.Run(ctx); err != nil {
			s.T.Errorf("worker %s: %v", id, err)
		}
	}()
	s.mu.Lock()
	s.workers = append(s.workers, sw)
	s.mu.Unlock()
	return sw
}

// Stop cancels the worker's Run and waits for it to return.
func (w *Worker) Stop() {
	w.cancel()
	<-w.done
}

// WaitConnected waits until the leader's scheduler has a session for each worker.
func (s *System) WaitConnected(ids ...string) int {
	s.T.Helper()
	l := -1
	testutil.EventuallyTrue(s.T, Wait, fmt.Sprintf("workers %v connected to the leader", ids), func() bool {
		l = s.Leader()
		if l < 0 {
			return false
		}
		conn := s.Node(l).Scheduler().Connected()
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

// Holders lists the indexes of servers holding a normal replica of vid.
func (s *System) Holders(vid uint32) []int {
	var out []int
	for i, srv := range s.Sim.Servers() {
		if _, ok := srv.Volume(vid); ok {
			out = append(out, i)
		}
	}
	return out
}

// ECMounted maps each mounted shard of vid to the servers mounting it.
func (s *System) ECMounted(vid uint32) map[uint32][]int {
	out := map[uint32][]int{}
	for i, srv := range s.Sim.Servers() {
		if e, ok := srv.EcShards(vid); ok {
			for _, sh := range e.Mounted {
				out[sh] = append(out[sh], i)
			}
		}
	}
	return out
}

// ECFiles counts the shard files of vid on every server.
func (s *System) ECFiles(vid uint32) int {
	n := 0
	for _, srv := range s.Sim.Servers() {
		if e, ok := srv.EcShards(vid); ok {
			n += len(e.Files)
		}
	}
	return n
}

// CheckErasureCoded asserts the simulator holds all 14 shards of vid, each
// mounted exactly once, and no normal replica of it.
func (s *System) CheckErasureCoded(vid uint32) {
	s.T.Helper()
	m := s.ECMounted(vid)
	for sh := uint32(0); sh < sim.TotalShards; sh++ {
		if len(m[sh]) != 1 {
			s.T.Errorf("volume %d: shard %d is mounted on servers %v, want exactly one", vid, sh, m[sh])
		}
	}
	if len(m) != sim.TotalShards {
		s.T.Errorf("volume %d: %d distinct shards mounted, want %d", vid, len(m), sim.TotalShards)
	}
	if h := s.Holders(vid); len(h) != 0 {
		s.T.Errorf("volume %d: the original is still on servers %v after erasure coding", vid, h)
	}
}

// Replica returns server i's replica of vid, failing the test if it is missing.
func (s *System) Replica(i int, vid uint32) sim.VolumeState {
	s.T.Helper()
	v, ok := s.Sim.Server(i).Volume(vid)
	if !ok {
		s.T.Fatalf("volume %d is missing from server %d (holders %v)", vid, i, s.Holders(vid))
	}
	return v
}

// CheckIntact asserts server i's replica of vid is loaded, writable, without
// leftover compaction files, and still holds its garbage (not vacuumed).
func (s *System) CheckIntact(i int, vid uint32, size, garbage uint64) {
	s.T.Helper()
	v := s.Replica(i, vid)
	if v.ReadOnly || v.Unloaded || v.Compacting || v.Compacted {
		s.T.Errorf("volume %d on server %d: read-only %v, unloaded %v, compacting %v, compacted copy pending %v; want a plain writable volume",
			vid, i, v.ReadOnly, v.Unloaded, v.Compacting, v.Compacted)
	}
	if v.Size != size || v.DeletedBytes != garbage {
		s.T.Errorf("volume %d on server %d: size %d with %d garbage, want untouched %d with %d", vid, i, v.Size, v.DeletedBytes, size, garbage)
	}
}

// CheckVacuumed asserts server i's replica of vid was compacted to size.
func (s *System) CheckVacuumed(i int, vid uint32, size uint64) {
	s.T.Helper()
	v := s.Replica(i, vid)
	if v.DeletedBytes != 0 || v.Size != size || v.CompactRevision == 0 {
		s.T.Errorf("volume %d on server %d: size %d, garbage %d, compaction revision %d; want vacuumed to %d with no garbage",
			vid, i, v.Size, v.DeletedBytes, v.CompactRevision, size)
	}
	if v.ReadOnly || v.Unloaded || v.Compacted {
		s.T.Errorf("volume %d on server %d after vacuum: read-only %v, unloaded %v, compacted copy pending %v", vid, i, v.ReadOnly, v.Unloaded, v.Compacted)
	}
}

func (s *System) CheckNoOverlaps() {
	s.T.Helper()
	for _, o := range s.Sim.Overlaps() {
		s.T.Errorf("operations of different attempts overlap: %s", o)
	}
}

// OpsOf returns the logged operations on vid, in start order.
func (s *System) OpsOf(vid uint32) []sim.Op {
	var out []sim.Op
	for _, o := range s.Sim.OpLog() {
		if o.VolumeID == vid {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

func OpsString(ops []sim.Op) string {
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

// RawSession opens a worker stream to addr, sends hello and returns the
// stream with the admin's first answer (or the error that ended the stream).
func (s *System) RawSession(ctx context.Context, addr string, hello *pb.Hello) (pb.WorkerService_SessionClient, *pb.AdminMessage, error) {
	s.T.Helper()
	stream, err := pb.NewWorkerServiceClient(s.Conn(addr)).Session(ctx)
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

// ---- a network cut between one worker and the admins ----

// Proxy forwards TCP connections to target until cut: then it drops
// every connection and refuses new ones, as a network partition would.
type Proxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func StartProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { lis.Close(); p.Cut() })
	return p
}

func (p *Proxy) Addr() string { return p.lis.Addr().String() }

func (p *Proxy) serve() {
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
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}
