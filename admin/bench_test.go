package admin_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// instantExecutor finishes every attempt at once: the benchmark measures the
// control plane (detection aside), not SeaweedFS.
type instantExecutor struct{}

func (instantExecutor) Execute(_ context.Context, spec *pb.TaskSpec, report worker.Reporter) (*fsmpb.CapacityChange, error) {
	return &fsmpb.CapacityChange{OldSize: spec.Size, NewSize: spec.Size}, nil
}
func (instantExecutor) Rollback(context.Context, *pb.TaskSpec) error { return nil }

func benchPorts(b *testing.B, n int) []int {
	var out []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// BenchmarkEndToEndTasks: three admins, 100 workers with instant executors
// and a simulated master holding the volumes; b.N tasks are submitted by 64
// concurrent clients and the clock stops when the last one has completed.
// Each task is four raft commands (submit, assign, start, complete).
func BenchmarkEndToEndTasks(b *testing.B) {
	const workers, volumes = 100, 50_000
	simc, err := sim.New(sim.Config{Servers: 4, MaxVolumesPerServer: volumes})
	if err != nil {
		b.Fatal(err)
	}
	defer simc.Close()
	if _, err := simc.AddVolumes(volumes, sim.VolumeSpec{Size: 1 << 20}); err != nil {
		b.Fatal(err)
	}
	ports := benchPorts(b, 6)
	var peers []cluster.Peer
	for i := 0; i < 3; i++ {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("a%d", i+1), RaftAddr: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	// Thresholds no volume meets: every task comes from the benchmark.
	th := scheduler.Thresholds{VacuumGarbage: 1, ECFullness: 1, ECQuietFor: time.Hour, ECMinSizeMB: 1 << 20, BalanceImbalance: 1e9}
	dir := b.TempDir()
	var cfgs []admin.Config
	var addrs []string
	for i, p := range peers {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[3+i])
		cfgs = append(cfgs, admin.Config{ID: p.ID, DataDir: filepath.Join(dir, p.ID), RaftAddr: p.RaftAddr, GRPCAddr: addr, Peers: peers, Bootstrap: true,
			Logger: hclog.NewNullLogger(), Master: simc.MasterServerAddress().String(),
			Scheduler: scheduler.Config{Thresholds: th, DetectInterval: time.Second}})
		addrs = append(addrs, addr)
	}
	nodes, err := admin.StartNodes(context.Background(), cfgs)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range nodes {
		defer n.Stop()
	}
	var leader *admin.Node
	if err := cluster.WaitFor(context.Background(), 20*time.Millisecond, func() bool {
		for _, n := range nodes {
			if n.Raft().IsLeader() {
				leader = n
				return true
			}
		}
		return false
	}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	caps := []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}
	for i := 0; i < workers; i++ {
		w, err := worker.New(worker.Config{ID: fmt.Sprintf("w%03d", i), Admins: addrs, DataDir: filepath.Join(benchJournalDir(b, dir), fmt.Sprintf("w%03d", i)),
			Capabilities: caps, MaxConcurrent: 4, Executors: map[fsmpb.TaskType]worker.Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: instantExecutor{}}})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); defer w.Close(); w.Run(ctx) }()
	}
	if err := cluster.WaitFor(context.Background(), 20*time.Millisecond, func() bool { return len(leader.Scheduler().Connected()) == workers }); err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(leaderAddr(leader, nodes, addrs), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewAdminClient(conn)
	if b.N > volumes {
		b.Fatalf("-benchtime asks for %d tasks but the simulated master has %d volumes (one task each); use -benchtime %dx or less", b.N, volumes, volumes)
	}
	completed := func() int {
		n := 0
		leader.FSM().Read(func(st *fsm.State) { n = st.CountByState(fsmpb.TaskState_TASK_STATE_COMPLETED) })
		return n
	}
	base := completed()
	b.ResetTimer()
	start := time.Now()
	var next atomic.Uint32
	var sub sync.WaitGroup
	for c := 0; c < 64; c++ {
		sub.Add(1)
		go func() {
			defer sub.Done()
			for {
				v := next.Add(1)
				if int(v) > b.N {
					return
				}
				if _, err := client.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: v}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	sub.Wait()
	if err := cluster.WaitFor(context.Background(), 5*time.Millisecond, func() bool { return completed()-base >= b.N }); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
}

func leaderAddr(leader *admin.Node, nodes []*admin.Node, addrs []string) string {
	for i, n := range nodes {
		if n == leader {
			return addrs[i]
		}
	}
	return addrs[0]
}

func benchJournalDir(b *testing.B, dir string) string {
	if d := os.Getenv("GK_BENCH_JOURNAL_DIR"); d != "" {
		return d
	}
	return dir
}
