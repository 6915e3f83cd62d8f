package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// MetricsNamespace prefixes every metric name (groundskeeper_...).
const MetricsNamespace = "groundskeeper"

const metricsNS = MetricsNamespace

// raftStates are the values of groundskeeper_raft_state's state label.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

// adminMetrics holds an admin node's metrics in its own registry, so several
// nodes in one process (dev, tests) do not collide.
type adminMetrics struct {
	reg          *prometheus.Registry
	taskDuration *prometheus.HistogramVec
	detection    prometheus.Histogram
	oracleReqs   *prometheus.CounterVec
	oracleLat    *prometheus.HistogramVec
}

func newAdminMetrics() *adminMetrics {
	m := &adminMetrics{
		reg: prometheus.NewRegistry(),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNS, Name: "task_duration_seconds",
			Help:    "Run time (finished_at - started_at) of tasks completed while this node led, by type.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16), // 1 s to ~9 h
		}, []string{"type"}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNS, Name: "detection_duration_seconds",
			Help:    "Duration of one detection round (master poll, reconcile, detect) on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		oracleReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNS, Name: "oracle_requests_total",
			Help: "Capacity oracle calls handled, by method and gRPC status code.",
		}, []string{"method", "code"}),
		oracleLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNS, Name: "oracle_request_duration_seconds",
			Help:    "Latency of unary capacity oracle calls, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"method"}),
	}
	m.reg.MustRegister(m.taskDuration, m.detection, m.oracleReqs, m.oracleLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe is the scheduler's Config.Observe hook.
func (m *adminMetrics) observe(event string, typ fsmpb.TaskType, d time.Duration) {
	switch event {
	case scheduler.EventTaskCompleted:
		m.taskDuration.WithLabelValues(fsm.TypeName(typ)).Observe(d.Seconds())
	case scheduler.EventDetection:
		m.detection.Observe(d.Seconds())
	}
}

// oracleService is the full name of the capacity oracle's gRPC service.
var oracleService = "/" + pb.CapacityOracle_ServiceDesc.ServiceName + "/"

// unaryInterceptor counts and times capacity oracle calls.
func (m *adminMetrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method, ok := strings.CutPrefix(info.FullMethod, oracleService)
	if !ok {
		return handler(ctx, req)
	}
	begin := time.Now()
	resp, err := handler(ctx, req)
	m.oracleLat.WithLabelValues(method).Observe(time.Since(begin).Seconds())
	m.oracleReqs.WithLabelValues(method, status.Code(err).String()).Inc()
	return resp, err
}

// streamInterceptor counts capacity oracle streams (WatchCapacity) as they end.
func (m *adminMetrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method, ok := strings.CutPrefix(info.FullMethod, oracleService)
	if !ok {
		return handler(srv, ss)
	}
	err := handler(srv, ss)
	m.oracleReqs.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}

// adminCollector reads raft, task and scheduler figures at scrape time.
type adminCollector struct {
	n *Node

	raftState, term, commit, applied, lastLog *prometheus.Desc
	tasks, queue, workers, slots              *prometheus.Desc
	topoVolumes, topoServers, topoAge, master *prometheus.Desc
	adminLock, paused, heldElsewhere          *prometheus.Desc
	shellLock                                 *prometheus.Desc
	masterState                               *prometheus.Desc
	policyPaused, policyType, policyRevision  *prometheus.Desc
	policyWindow, policyCap                   *prometheus.Desc
	underreplicated, ecMissing, oldestLoss    *prometheus.Desc
	overreplicated, ecDuplicates              *prometheus.Desc
}

func newAdminCollector(n *Node) *adminCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNS, "", name), help, labels, nil)
	}
	return &adminCollector{n: n,
		raftState:       d("raft_state", "1 for this node's current raft state, 0 for the others.", "state"),
		term:            d("raft_term", "Current raft term."),
		commit:          d("raft_commit_index", "Raft commit index."),
		applied:         d("raft_applied_index", "Raft index last applied to the state machine."),
		lastLog:         d("raft_last_log_index", "Last index in the raft log."),
		tasks:           d("tasks", "Tasks in the replicated state, by type and state.", "type", "state"),
		queue:           d("queue_depth", "Pending tasks ready to be assigned now."),
		workers:         d("workers_connected", "Workers connected to this node's scheduler (leader only; 0 elsewhere)."),
		slots:           d("worker_slots", "Total task slots of the connected workers (leader only; 0 elsewhere)."),
		topoVolumes:     d("topology_volumes", "Volumes in this node's copy of the master's topology, which the capacity oracle answers from.", "kind"),
		topoServers:     d("topology_servers", "Volume servers in this node's copy of the master's topology."),
		topoAge:         d("topology_age_seconds", "Seconds since this node's copy of the master's topology was fetched (absent before the first)."),
		master:          d("master_reachable", "1 if this node's last poll of the SeaweedFS master succeeded, 0 if it failed."),
		adminLock:       d("admin_lock_held", "1 while this leader holds SeaweedFS's admin lock, 0 while it does not (then another process may hold it; leader with a master only)."),
		paused:          d("maintenance_paused", "1 while the leader's detection or assignment is paused for SeaweedFS's admin or shell lock, by what (leader with a master only).", "what"),
		masterState:     d("seaweed_master_state", "1 for each SeaweedFS master's state as this node last saw it (leader: calls go to it; follower; unreachable; unknown: not asked yet), 0 for the others.", "master", "state"),
		underreplicated: d("volumes_underreplicated", "Regular volumes with fewer copies than their replica placement asks for, as the leader's last detection round saw them (leader with a master only)."),
		ecMissing:       d("ec_volumes_missing_shards", "Erasure-coded volumes with fewer than 14 distinct shards mounted, as the leader's last detection round saw them (leader with a master only)."),
		overreplicated:  d("volumes_overreplicated", "Regular volumes with more copies than their replica placement asks for, as the leader's last detection round saw them (leader with a master only)."),
		ecDuplicates:    d("ec_volumes_duplicate_shards", "Erasure-coded volumes with a shard mounted on more than one server, as the leader's last detection round saw them (leader with a master only)."),
		oldestLoss:      d("oldest_unrepaired_loss_seconds", "Seconds since the oldest loss of redundancy still unrepaired was first seen; 0 when every volume is whole (leader with a master only)."),
		policyPaused:    d("policy_paused", "1 while the replicated maintenance policy is paused (ctl pause): nothing new is detected or assigned."),
		policyType:      d("policy_type_enabled", "1 if the maintenance policy lets the task type be detected and assigned, 0 if it disables it.", "type"),
		policyRevision:  d("policy_revision", "Revision of the maintenance policy in this node's state (0: never changed)."),
		policyWindow:    d("policy_window_open", "1 while the maintenance policy's windows are open (or it has none): routine work may start; 0 outside them, or when its time zone does not load."),
		policyCap:       d("policy_cap", "The maintenance policy's concurrency caps on assigned and running attempts (0: no cap), by scope (global, per_server, per_collection, or a task type).", "scope"),
		shellLock:       d("shell_lock_held", "1 while this leader holds SeaweedFS's shell lock itself, around its attempts (admin --hold-shell-lock), 0 while it does not (leader with a master only)."),
		heldElsewhere:   d("lock_held_elsewhere", "1 while another process holds SeaweedFS's lock (admin-server: a weed admin; shell: a weed shell lock or weed admin running a job), by lock (leader with a master only).", "lock"),
	}
}

func (c *adminCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftState, c.term, c.commit, c.applied, c.lastLog, c.tasks, c.queue, c.workers, c.slots,
		c.topoVolumes, c.topoServers, c.topoAge, c.master, c.adminLock, c.shellLock, c.paused, c.heldElsewhere, c.masterState,
		c.policyPaused, c.policyType, c.policyRevision, c.policyWindow, c.policyCap, c.underreplicated, c.ecMissing, c.oldestLoss, c.overreplicated, c.ecDuplicates} {
		ch <- d
	}
}

func (c *adminCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := c.n.raft.Status()
	for _, s := range raftStates {
		v := 0.0
		if s == st.State {
			v = 1
		}
		gauge(c.raftState, v, s)
	}
	gauge(c.term, float64(st.Term))
	gauge(c.commit, float64(st.CommitIndex))
	gauge(c.applied, float64(st.AppliedIndex))
	gauge(c.lastLog, float64(st.LastLogIndex))

	counts := map[[2]string]int{}
	for _, typ := range fsm.TaskTypes {
		for s := fsmpb.TaskState_TASK_STATE_PENDING; s <= fsmpb.TaskState_TASK_STATE_CANCELLED; s++ {
			counts[[2]string{fsm.TypeName(typ), fsm.StateName(s)}] = 0
		}
	}
	var pending []*fsmpb.Task
	var policy *fsmpb.Policy
	c.n.fsm.Read(func(s *fsm.State) {
		policy = s.Policy()
		s.CountByTypeAndState(func(typ fsmpb.TaskType, state fsmpb.TaskState, n int) {
			counts[[2]string{fsm.TypeName(typ), fsm.StateName(state)}] += n
		})
		pending = s.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING}})
	})
	for k, n := range counts {
		gauge(c.tasks, float64(n), k[0], k[1])
	}
	gauge(c.policyPaused, b2f(policy.Paused))
	gauge(c.policyRevision, float64(policy.Revision))
	for _, typ := range fsm.TaskTypes {
		gauge(c.policyType, b2f(fsm.TypeEnabled(policy, typ)), fsm.TypeName(typ))
		gauge(c.policyCap, float64(fsm.TypeCap(policy, typ)), fsm.TypeName(typ))
	}
	open, _ := scheduler.WindowOpen(policy, time.Now())
	gauge(c.policyWindow, b2f(open))
	gauge(c.policyCap, float64(policy.GetCaps().GetGlobal()), "global")
	gauge(c.policyCap, float64(policy.GetCaps().GetPerServer()), "per_server")
	gauge(c.policyCap, float64(policy.GetCaps().GetPerCollection()), "per_collection")
	gauge(c.queue, float64(len(scheduler.Ready(pending, time.Now()))))
	workers, slots, _ := c.n.sched.Load()
	gauge(c.workers, float64(workers))
	gauge(c.slots, float64(slots))
	if m, ok := c.n.sched.Status(); ok && m.AdminLock != "" {
		gauge(c.adminLock, b2f(m.AdminLockHeld))
		gauge(c.shellLock, b2f(m.ShellLockOurs))
		gauge(c.paused, b2f(m.DetectionPaused), "detection")
		gauge(c.paused, b2f(m.AssignmentPaused), "assignment")
		gauge(c.heldElsewhere, b2f(m.AdminLock == seaweed.LockOther.String()), seaweed.AdminLockName)
		gauge(c.heldElsewhere, b2f(m.ShellLockHolder != ""), seaweed.ShellLockName)
	}
	if m, ok := c.n.sched.Status(); ok && m.MasterState != "not configured" {
		gauge(c.underreplicated, float64(m.VolumesUnderreplicated))
		gauge(c.ecMissing, float64(m.EcVolumesMissingShards))
		gauge(c.overreplicated, float64(m.VolumesOverreplicated))
		gauge(c.ecDuplicates, float64(m.EcVolumesDuplicateShards))
		oldest := 0.0
		if m.OldestLoss != 0 {
			oldest = time.Since(time.Unix(0, m.OldestLoss)).Seconds()
		}
		gauge(c.oldestLoss, oldest)
	}
	if c.n.topo == nil {
		return // no master configured
	}
	topo, at := c.n.topo.Latest()
	if topo != nil {
		gauge(c.topoVolumes, float64(len(topo.Volumes)), "normal")
		gauge(c.topoVolumes, float64(len(topo.EcVolumes)), "ec")
		gauge(c.topoServers, float64(len(topo.Servers)))
		gauge(c.topoAge, time.Since(at).Seconds())
	}
	switch err := c.n.topo.LastError(); {
	case err != nil:
		gauge(c.master, 0)
	case topo != nil:
		gauge(c.master, 1)
	}
	for _, m := range c.n.master.Masters() {
		for _, s := range []string{seaweed.MasterLeader, seaweed.MasterFollower, seaweed.MasterUnreachable, seaweed.MasterUnknown} {
			gauge(c.masterState, b2f(m.State == s), m.Addr.String(), s)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// adminReady reports whether an admin node is ready: a leader is known and
// this node is leader or follower.
func adminReady(st cluster.Status) (bool, string) {
	switch {
	case st.State != "leader" && st.State != "follower":
		return false, fmt.Sprintf("raft state is %s", st.State)
	case st.LeaderID == "":
		return false, "no known leader"
	}
	return true, ""
}

// Metrics is the node's own Prometheus registry: raft, tasks, the
// scheduler, the topology copy, capacity oracle calls and the Go runtime.
// Several nodes in one process (dev, tests) each have their own.
func (n *Node) Metrics() *prometheus.Registry { return n.metrics.reg }

// Ready reports whether the node is ready to serve (a leader is known and
// this node is leader or follower), and why not.
func (n *Node) Ready() (bool, string) { return adminReady(n.raft.Status()) }
