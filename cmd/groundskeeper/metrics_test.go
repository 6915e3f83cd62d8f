package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

func TestAdminMetrics(t *testing.T) {
	t.Parallel()
	n, grpcAddr := admintest.StartSingleAdmin(t)
	h := adminHandler(n)

	if code, _ := admintest.Scrape(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d; want 200", code)
	}
	if code, body := admintest.Scrape(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz on the leader: %d %q; want 200", code, body)
	}

	code, body := admintest.Scrape(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	admintest.WantMetric(t, body, `groundskeeper_raft_state{state="leader"}`, 1)
	admintest.WantMetric(t, body, `groundskeeper_raft_state{state="follower"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_tasks{state="pending",type="vacuum"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_queue_depth`, 0)
	admintest.WantMetric(t, body, `groundskeeper_workers_connected`, 0)
	admintest.WantMetric(t, body, `groundskeeper_worker_slots`, 0)
	for _, name := range []string{"groundskeeper_raft_term", "groundskeeper_raft_commit_index", "groundskeeper_raft_applied_index",
		"groundskeeper_raft_last_log_index", "groundskeeper_detection_duration_seconds_count", "go_goroutines"} {
		if v, ok := admintest.MetricValue(body, name); !ok || (strings.HasPrefix(name, "groundskeeper_raft") && v < 1) {
			t.Errorf("metric %s = %v (present %v); want present and, for raft, at least 1", name, v, ok)
		}
	}
	applied0, _ := admintest.MetricValue(body, "groundskeeper_raft_applied_index")

	// Two submitted vacuums: pending and, with no worker, ready to assign.
	for _, vid := range []uint32{7, 8} {
		if _, err := n.API().SubmitTask(context.Background(), &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vid}); err != nil {
			t.Fatalf("submit vacuum of volume %d: %v", vid, err)
		}
	}
	// The oracle without a master refuses; the call is still counted.
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pb.NewCapacityOracleClient(conn).GetVolumeCapacity(context.Background(), &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{7}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("oracle without a master: %v; want FailedPrecondition", err)
	}

	_, body = admintest.Scrape(t, h, "/metrics")
	admintest.WantMetric(t, body, `groundskeeper_tasks{state="pending",type="vacuum"}`, 2)
	admintest.WantMetric(t, body, `groundskeeper_tasks{state="pending",type="balance"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_queue_depth`, 2)
	admintest.WantMetric(t, body, `groundskeeper_oracle_requests_total{code="FailedPrecondition",method="GetVolumeCapacity"}`, 1)
	admintest.WantMetric(t, body, `groundskeeper_oracle_request_duration_seconds_count{method="GetVolumeCapacity"}`, 1)
	// Raft publishes its applied index apart from answering the proposer:
	// the gauge catches up, it is not there at the submit's return.
	testutil.Eventually(t, 5*time.Second, "the applied index to count both submits", func() (bool, string) {
		_, body := admintest.Scrape(t, h, "/metrics")
		applied, _ := admintest.MetricValue(body, "groundskeeper_raft_applied_index")
		return applied >= applied0+2, fmt.Sprintf("applied index %v after two submits; want at least %v", applied, applied0+2)
	})
}

// TestReadyzNotReady: /readyz says why a node is not ready, with a 503.
func TestReadyzNotReady(t *testing.T) {
	h := metricsHandler(prometheus.NewRegistry(), func() (bool, string) { return false, "no known leader" })
	if code, body := admintest.Scrape(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no known leader") {
		t.Errorf("/readyz when not ready: %d %q; want 503 with the reason", code, body)
	}
	if code, _ := admintest.Scrape(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d; want 200", code)
	}
}

// TestSystemMetrics runs a vacuum to completion on the simulator and checks
// the leader's task and detection histograms and the worker's metrics.
func TestSystemMetrics(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(3))
	s.AddOn(admintest.GarbageSpec, 0)
	s.StartAdmins(admintest.SchedConfig())

	volumes := seaweed.NewVolumeClient()
	w, err := worker.New(worker.Config{ID: "mw", Admins: s.GRPCAddrs(), DataDir: filepath.Join(s.Dir, "mw"), MaxConcurrent: 3,
		Capabilities: admintest.AllCaps, Executors: worker.Executors(volumes), Logger: testutil.Logger("worker.mw"), Version: "metrics-test"})
	if err != nil {
		volumes.Close()
		t.Fatalf("worker: %v", err)
	}
	wh := workerHandler(w)
	if code, body := admintest.Scrape(t, wh, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected") {
		t.Errorf("worker /readyz before connecting: %d %q; want 503 not connected", code, body)
	}
	_, body := admintest.Scrape(t, wh, "/metrics")
	admintest.WantMetric(t, body, "groundskeeper_worker_connected", 0)
	admintest.WantMetric(t, body, "groundskeeper_worker_max_concurrent", 3)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		w.Close()
		volumes.Close()
	})

	s.WaitConnected("mw")
	tasks := s.WaitQuiet()
	if len(tasks) != 1 || tasks[0].State != completedS {
		t.Fatalf("tasks %v; want one completed vacuum", tasks)
	}
	if code, _ := admintest.Scrape(t, wh, "/readyz"); code != http.StatusOK {
		t.Errorf("worker /readyz while connected: %d; want 200", code)
	}
	_, body = admintest.Scrape(t, wh, "/metrics")
	admintest.WantMetric(t, body, "groundskeeper_worker_connected", 1)
	admintest.WantMetric(t, body, "groundskeeper_worker_running_attempts", 0)
	admintest.WantMetric(t, body, `groundskeeper_worker_attempts_finished_total{outcome="completed"}`, 1)
	admintest.WantMetric(t, body, `groundskeeper_worker_attempts_finished_total{outcome="failed"}`, 0)

	// The leader may have changed since: the histogram is on whichever led.
	l := s.WaitConnected("mw")
	_, body = admintest.Scrape(t, adminHandler(s.Node(l)), "/metrics")
	admintest.WantMetric(t, body, `groundskeeper_tasks{state="completed",type="vacuum"}`, 1)
	admintest.WantMetric(t, body, `groundskeeper_workers_connected`, 1)
	admintest.WantMetric(t, body, `groundskeeper_worker_slots`, 3)
	admintest.WantMetric(t, body, `groundskeeper_admin_lock_held`, 1)
	admintest.WantMetric(t, body, `groundskeeper_maintenance_paused{what="detection"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_maintenance_paused{what="assignment"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_lock_held_elsewhere{lock="admin-server"}`, 0)
	admintest.WantMetric(t, body, `groundskeeper_lock_held_elsewhere{lock="shell"}`, 0)
	total := 0.0
	for i := range s.Cfgs {
		if n := s.Node(i); n != nil {
			_, b := admintest.Scrape(t, adminHandler(n), "/metrics")
			v, _ := admintest.MetricValue(b, `groundskeeper_task_duration_seconds_count{type="vacuum"}`)
			total += v
			if d, ok := admintest.MetricValue(b, "groundskeeper_detection_duration_seconds_count"); i == l && (!ok || d < 1) {
				t.Errorf("leader's detection_duration_seconds_count = %v; want at least 1", d)
			}
		}
	}
	if total != 1 {
		t.Errorf("task_duration_seconds_count{type=vacuum} summed over the nodes = %v; want 1", total)
	}
	// Every node's copy of the topology, as the master holds it.
	m, err := seaweed.DialMaster(s.Sim.MasterServerAddress().String())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, err := m.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Cfgs {
		_, b := admintest.Scrape(t, adminHandler(s.Node(i)), "/metrics")
		admintest.WantMetric(t, b, "groundskeeper_master_reachable", 1)
		admintest.WantMetric(t, b, `groundskeeper_seaweed_master_state{master="`+m.Addr().String()+`",state="leader"}`, 1)
		admintest.WantMetric(t, b, `groundskeeper_seaweed_master_state{master="`+m.Addr().String()+`",state="unreachable"}`, 0)
		admintest.WantMetric(t, b, "groundskeeper_topology_servers", float64(len(want.Servers)))
		admintest.WantMetric(t, b, `groundskeeper_topology_volumes{kind="normal"}`, float64(len(want.Volumes)))
		admintest.WantMetric(t, b, `groundskeeper_topology_volumes{kind="ec"}`, float64(len(want.EcVolumes)))
		// The repair tracker's counts are the leader's (a follower has no
		// tracker): every EC volume whole, every replica in place.
		if i == l {
			admintest.WantMetric(t, b, "groundskeeper_ec_volumes_missing_shards", 0)
			admintest.WantMetric(t, b, "groundskeeper_volumes_underreplicated", 0)
		}
		if age, ok := admintest.MetricValue(b, "groundskeeper_topology_age_seconds"); !ok || age < 0 || age > 30 {
			t.Errorf("a%d: topology_age_seconds = %v (present %v); want the last poll's age", i+1, age, ok)
		}
	}
}

func TestMetricsAddrFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var ue *usageError
	err := runAdmin([]string{"--id", "a1", "--data-dir", dir, "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2",
		"--peers", "a1=127.0.0.1:1", "--metrics-addr", "nonsense"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("admin with a bad --metrics-addr: %v; want a usage error naming the flag", err)
	}
	long := strings.Repeat("a", rpc.MaxAddrLen) + ":2"
	err = runAdmin([]string{"--id", "a1", "--data-dir", dir, "--raft-addr", "127.0.0.1:1", "--grpc-addr", long, "--peers", "a1=127.0.0.1:1"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--grpc-addr") || !strings.Contains(err.Error(), "at most 272") {
		t.Errorf("admin with a --grpc-addr of %d bytes: %v; want a usage error naming the flag and the limit", len(long), err)
	}
	err = runWorker([]string{"--id", "w1", "--admin", "127.0.0.1:2", "--data-dir", dir, "--metrics-addr", "localhost:99999"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("worker with a bad --metrics-addr: %v; want a usage error naming the flag", err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	start := time.Now()
	err = runWorker([]string{"--id", "w1", "--admin", "127.0.0.1:2", "--data-dir", filepath.Join(dir, "w"), "--metrics-addr", busy.Addr().String()})
	if err == nil || errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "listen on --metrics-addr") || strings.Contains(err.Error(), "\n") {
		t.Errorf("worker with a busy --metrics-addr: %v; want a one-line listen error", err)
	}
	err = runAdmin([]string{"--id", "a1", "--data-dir", filepath.Join(dir, "a"), "--raft-addr", testutil.FreeAddr(t), "--grpc-addr", testutil.FreeAddr(t),
		"--metrics-addr", busy.Addr().String()})
	if err == nil || errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "listen on --metrics-addr") {
		t.Errorf("admin with a busy --metrics-addr: %v; want a listen error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing a busy --metrics-addr took %s", d)
	}
}
