package admin_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// failoverPoll is how often the failover benchmark looks at the cluster.
const failoverPoll = 10 * time.Millisecond

// failoverWorkers is how many workers stay connected through the failovers.
const failoverWorkers = 3

// BenchmarkFailover kills the leader of a three-admin cluster b.N times (run
// it with -benchtime 20x or more) and measures, from the kill:
//
//   - write: until an admin SubmitTask through a surviving node succeeds;
//   - attach: until every worker has a session on the new leader's scheduler.
//
// Raft and the scheduler run with their default timings (zero configs). A
// kill is a crash: the leader's gRPC server stops abruptly (the worker
// streams break at once), then its raft shuts down without handing over
// leadership. After each round the killed node restarts on the same data
// dir and ports and catches up before the next kill.
//
// The workers only run vacuum; the benchmark's writes are balance tasks for
// volumes that do not exist, so nothing is ever assigned and the workers'
// sessions stay idle.
func BenchmarkFailover(b *testing.B) {
	c := newFailoverCluster(b)
	c.start()

	var rounds []failoverRound
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rounds = append(rounds, c.round(i))
		b.StopTimer()
		c.restart(rounds[i].old)
		b.StartTimer()
	}
	b.StopTimer()

	// The summary first: without -v the testing package keeps only the
	// first lines of a benchmark's log.
	var writes, attaches, elects []time.Duration
	for _, r := range rounds {
		writes, attaches, elects = append(writes, r.write), append(attaches, r.attach), append(elects, r.elect)
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "failover over %d leader kills, ms from the kill (-v for every round):\n", len(rounds))
	fmt.Fprintf(&tbl, "%-6s %9s %9s %9s\n", "", "elect", "write", "attach")
	for _, p := range []float64{50, 99} {
		fmt.Fprintf(&tbl, "%-6s %9d %9d %9d\n", fmt.Sprintf("p%g", p),
			percentile(elects, p).Milliseconds(), percentile(writes, p).Milliseconds(), percentile(attaches, p).Milliseconds())
	}
	fmt.Fprintf(&tbl, "%5s %-8s %9s %9s %9s  %s\n", "round", "leader", "elect", "write", "attach", "per-worker attach")
	for i, r := range rounds {
		var per []string
		for _, id := range c.workerIDs {
			per = append(per, fmt.Sprintf("%s=%d", id, r.workers[id].Milliseconds()))
		}
		fmt.Fprintf(&tbl, "%5d %-8s %9d %9d %9d  %s\n", i+1, c.Cfgs[r.old].ID+"->"+c.Cfgs[r.leader].ID,
			r.elect.Milliseconds(), r.write.Milliseconds(), r.attach.Milliseconds(), strings.Join(per, " "))
	}
	b.Log(tbl.String())
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(writes, 50)), "write-p50-ms")
	b.ReportMetric(ms(percentile(writes, 99)), "write-p99-ms")
	b.ReportMetric(ms(percentile(attaches, 50)), "attach-p50-ms")
	b.ReportMetric(ms(percentile(attaches, 99)), "attach-p99-ms")
	b.ReportMetric(ms(percentile(elects, 50)), "elect-p50-ms")
	b.ReportMetric(ms(percentile(elects, 99)), "elect-p99-ms")
}

// percentile is the nearest-rank percentile of ds (p in (0, 100]).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// failoverCluster is the system harness with default raft and scheduler
// timings and workers whose executors finish at once.
type failoverCluster struct {
	*system
	b         *testing.B
	workerIDs []string
	nextVol   atomic.Uint32
}

// failoverRound is what one kill measured, each from the kill.
type failoverRound struct {
	old, leader int
	elect       time.Duration // until a surviving node is a ready leader
	write       time.Duration // until a SubmitTask through a survivor succeeded
	attach      time.Duration // until every worker has a session on the new leader
	workers     map[string]time.Duration
}

func newFailoverCluster(b *testing.B) *failoverCluster {
	b.Helper()
	c := &failoverCluster{system: newSystem(b, admintest.SimConfig(2)), b: b}
	c.nextVol.Store(1_000_000)
	return c
}

func (c *failoverCluster) start() {
	b := c.b
	b.Helper()
	// Zero timings: the scheduler's defaults (lease 10 s, heartbeat 2 s).
	// Thresholds no volume meets.
	c.StartAdmins(scheduler.Config{Thresholds: scheduler.Thresholds{VacuumGarbage: 1, ECFullness: 1, ECQuietFor: time.Hour,
		ECMinSizeMB: 1 << 20, BalanceImbalance: 1e9}})

	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	// Registered after the system's own cleanup, so it runs first: the
	// workers stop before the admins do.
	b.Cleanup(func() { cancel(); workers.Wait() })
	addrs := c.GRPCAddrs()
	for i := 0; i < failoverWorkers; i++ {
		id := fmt.Sprintf("w%d", i+1)
		w, err := worker.New(worker.Config{ID: id, Admins: addrs, DataDir: filepath.Join(c.Dir, id), MaxConcurrent: 2,
			Version: "failover-bench", Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM},
			Executors: map[fsmpb.TaskType]worker.Executor{fsmpb.TaskType_TASK_TYPE_VACUUM: instantExecutor{}},
			Logger:    testutil.Logger("worker." + id)})
		if err != nil {
			b.Fatalf("start worker %s: %v", id, err)
		}
		c.workerIDs = append(c.workerIDs, id)
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer w.Close()
			if err := w.Run(ctx); err != nil {
				b.Errorf("worker %s: %v", id, err)
			}
		}()
	}
	testutil.EventuallyTrue(b, admintest.Wait, "every worker connected to the leader", func() bool {
		l := c.Leader()
		return l >= 0 && len(c.missing(l)) == 0
	})
	// A first write and every node caught up: the first round starts from
	// the same steady state as the others.
	if _, err := c.submit(context.Background(), addrs); err != nil {
		b.Fatal(err)
	}
	c.waitCaughtUp()
}

// missing lists the workers without a session on node l's scheduler.
func (c *failoverCluster) missing(l int) []string {
	n := c.Node(l)
	if n == nil {
		return c.workerIDs
	}
	conn := n.Scheduler().Connected()
	var out []string
	for _, id := range c.workerIDs {
		if !conn[id] {
			out = append(out, id)
		}
	}
	return out
}

// submit polls SubmitTask through every address in addrs in parallel
// (each try bounded, failfast) until one succeeds, and returns when.
func (c *failoverCluster) submit(ctx context.Context, addrs []string) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	vol := c.nextVol.Add(1)
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, len(addrs))
	for _, addr := range addrs {
		// A fresh connection: one left from before a restart of that node
		// may still sit in gRPC's reconnect backoff.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return time.Time{}, err
		}
		defer conn.Close()
		client := pb.NewAdminClient(conn)
		go func() {
			var last error
			for ctx.Err() == nil {
				tctx, tcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				_, err := client.SubmitTask(tctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: vol,
					Source: "failover-bench", Target: "failover-bench"})
				tcancel()
				if err == nil {
					done <- result{at: time.Now()}
					return
				}
				last = err
				select {
				case <-ctx.Done():
				case <-time.After(failoverPoll):
				}
			}
			done <- result{err: last}
		}()
	}
	var errs []string
	for range addrs {
		r := <-done
		if r.err == nil {
			return r.at, nil
		}
		errs = append(errs, r.err.Error())
	}
	return time.Time{}, fmt.Errorf("no write succeeded: %s", strings.Join(errs, "; "))
}

// round kills the current leader and measures until a write succeeds and
// every worker is attached to the new leader.
func (c *failoverCluster) round(i int) failoverRound {
	b := c.b
	b.Helper()
	old := c.Leader()
	if old < 0 {
		b.Fatalf("round %d: no leader before the kill", i+1)
	}
	var survivors []string
	for j, cfg := range c.Cfgs {
		if j != old {
			survivors = append(survivors, cfg.GRPCAddr)
		}
	}
	r := failoverRound{old: old, leader: -1, workers: map[string]time.Duration{}}
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	kill := time.Now()
	c.StopNode(old)

	type writeResult struct {
		at  time.Time
		err error
	}
	wrote := make(chan writeResult, 1)
	go func() { at, err := c.submit(ctx, survivors); wrote <- writeResult{at, err} }()

	var writeDone bool
	for !writeDone || r.attach == 0 {
		select {
		case w := <-wrote:
			if w.err != nil {
				b.Fatalf("round %d: %v", i+1, w.err)
			}
			r.write, writeDone = w.at.Sub(kill), true
		case <-ctx.Done():
			b.Fatalf("round %d: after %s: write done %v, leader %d, workers missing %v", i+1, admintest.Wait, writeDone, c.Leader(), c.missing(max(c.Leader(), 0)))
		case <-time.After(failoverPoll):
		}
		now := time.Since(kill)
		l := c.Leader()
		if l < 0 || l == old {
			continue
		}
		if r.leader != l {
			// A new (or another) leader: attachment counts on it only.
			r.leader, r.elect, r.workers = l, now, map[string]time.Duration{}
		}
		miss := map[string]bool{}
		for _, id := range c.missing(l) {
			miss[id] = true
		}
		for _, id := range c.workerIDs {
			if _, seen := r.workers[id]; !seen && !miss[id] {
				r.workers[id] = now
			}
		}
		if len(miss) == 0 && r.attach == 0 {
			r.attach = now
		}
	}
	return r
}

// restart brings the killed node back on its data dir and ports and waits
// until every node has applied the same index under a ready leader.
func (c *failoverCluster) restart(i int) {
	c.StartNode(i)
	c.waitCaughtUp()
}

func (c *failoverCluster) waitCaughtUp() {
	c.b.Helper()
	testutil.EventuallyTrue(c.b, admintest.Wait, "every admin caught up with the leader", func() bool {
		l := c.Leader()
		if l < 0 {
			return false
		}
		want := c.Node(l).Raft().Status().AppliedIndex
		for j := range c.Cfgs {
			n := c.Node(j)
			if n == nil || n.Raft().Status().AppliedIndex != want {
				return false
			}
			if id, _ := n.Raft().Leader(); id != c.Cfgs[l].ID {
				return false
			}
		}
		return true
	})
}
