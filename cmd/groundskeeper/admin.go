package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// maintenanceFlags are the detection settings of docs/architecture.md §11,
// validated at start so a bad value is refused before anything runs.
type maintenanceFlags struct {
	master         string
	detectInterval time.Duration
	thresholds     scheduler.Thresholds
	retention      scheduler.Retention
	// Worker liveness (scheduler.Config): lease, grace and heartbeat.
	lease, grace, heartbeat time.Duration
	// SeaweedFS's shell lock held around our attempts (scheduler.Config).
	holdShell                 bool
	shellYield, shellFairness time.Duration
}

func (m *maintenanceFlags) register(fs *flag.FlagSet) {
	d := scheduler.DefaultThresholds()
	// The detection thresholds below hold only where the replicated
	// policy leaves them unset (ctl policy set thresholds.KEY=...).
	fs.StringVar(&m.master, "master", "", "SeaweedFS masters, comma-separated, each host:httpPort or host:httpPort.grpcPort (all of a cluster's masters: the master leader is found and followed)")
	fs.DurationVar(&m.detectInterval, "detect-interval", 10*time.Second, "how often to look for maintenance work")
	fs.Float64Var(&m.thresholds.VacuumGarbage, "vacuum-garbage-threshold", d.VacuumGarbage, "vacuum volumes whose garbage ratio is at least this (unless the policy sets thresholds.vacuum_garbage_ratio)")
	fs.Float64Var(&m.thresholds.ECFullness, "ec-fullness-ratio", d.ECFullness, "erasure-code volumes at least this full")
	fs.DurationVar(&m.thresholds.ECQuietFor, "ec-quiet-for", d.ECQuietFor, "erasure-code only volumes unmodified for this long")
	fs.Uint64Var(&m.thresholds.ECMinSizeMB, "ec-min-size-mb", d.ECMinSizeMB, "erasure-code only volumes of at least this many MB")
	fs.Float64Var(&m.thresholds.BalanceImbalance, "balance-imbalance-threshold", d.BalanceImbalance, "balance when (max-min)/avg slot usage reaches this")
	fs.IntVar(&m.thresholds.BalanceMovesPerRound, "balance-moves-per-round", d.BalanceMovesPerRound, "propose at most this many balance moves per detection round and disk type")
	fs.IntVar(&m.thresholds.ECBalanceSkew, "ec-balance-skew", d.ECBalanceSkew, "move EC shards between servers of a disk type whose EC shard counts differ by more than this (each volume's spread over data centres, racks and servers is evened out regardless; -1: no EC balancing at all)")
	fs.DurationVar(&m.thresholds.RepairAfter, "repair-after", d.RepairAfter, "repair a volume (copy a lost replica) only once it has been at reduced redundancy this long, so a restart causes no copying (0: at once; unless the policy sets thresholds.repair_after)")
	fs.DurationVar(&m.thresholds.DeleteEmptyQuiet, "delete-empty-quiet", d.DeleteEmptyQuiet, "delete regular volumes with no live file on any replica once unmodified this long (delete_empty tasks; 0, the default: never, unless the policy sets thresholds.delete_empty_quiet)")
	r := scheduler.DefaultRetention()
	fs.DurationVar(&m.retention.MaxAge, "task-retention", r.MaxAge, "forget finished tasks this long after they finished")
	fs.IntVar(&m.retention.MaxCount, "task-retention-count", r.MaxCount, "keep at most this many finished tasks, the most recent (0: no limit)")
	fs.DurationVar(&m.retention.ForgetWorkersAfter, "worker-forget-after", r.ForgetWorkersAfter, "deregister a worker not heard from for this long (counted from this leader's start at the earliest)")
	fs.DurationVar(&m.lease, "worker-lease", 10*time.Second, "a worker silent this long stops its attempts and is presumed gone")
	fs.DurationVar(&m.grace, "worker-grace", 5*time.Second, "a silent worker's tasks are requeued after its lease plus this")
	fs.DurationVar(&m.heartbeat, "worker-heartbeat", 2*time.Second, "how often workers report (well under --worker-lease)")
	fs.BoolVar(&m.holdShell, "hold-shell-lock", false, "hold SeaweedFS's shell lock while our attempts are assigned or running, as weed admin does around its jobs, so a weed shell `lock` waits for them (off by default: while held, work is assigned only with a master reachable to take the lock)")
	fs.DurationVar(&m.shellYield, "shell-lock-yield", scheduler.DefaultShellYield, "leave the shell lock free this long after releasing it, so a waiting weed shell gets it first")
	fs.DurationVar(&m.shellFairness, "shell-lock-fairness", scheduler.DefaultShellFairness, "after holding the shell lock continuously this long, assign nothing new until it has been released (-1s: never)")
}

func (m *maintenanceFlags) validate() error {
	if m.detectInterval < time.Second {
		return usagef("--detect-interval %s is too short (at least 1s)", m.detectInterval)
	}
	if err := m.thresholds.Validate(); err != nil {
		return usagef("%s", err)
	}
	if err := m.retention.Validate(scheduler.DefaultFailureCooldown); err != nil {
		return usagef("%s", err)
	}
	if m.heartbeat < 50*time.Millisecond || m.lease < 2*m.heartbeat {
		return usagef("--worker-heartbeat %s must be at least 50ms and at most half of --worker-lease %s", m.heartbeat, m.lease)
	}
	if m.grace <= 0 {
		return usagef("--worker-grace %s must be positive", m.grace)
	}
	if m.shellYield <= 0 {
		return usagef("--shell-lock-yield %s must be positive (a waiting weed shell asks once a second)", m.shellYield)
	}
	if m.shellFairness == 0 {
		return usagef("--shell-lock-fairness 0s: give a positive window, or a negative one for never")
	}
	if m.master != "" {
		if _, err := seaweed.ParseMasters(m.master); err != nil {
			return usagef("--master: %s", err)
		}
	}
	return nil
}

// validateRaftTimings checks the raft timing flags the way raft would, but
// in the flags' own words.
func validateRaftTimings(heartbeat, election, lease time.Duration) error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"--raft-heartbeat-timeout", heartbeat}, {"--raft-election-timeout", election}, {"--raft-leader-lease", lease}} {
		if f.v < 5*time.Millisecond {
			return usagef("%s %s is too short: give at least 5ms", f.name, f.v)
		}
	}
	if lease > heartbeat {
		return usagef("--raft-leader-lease %s must not exceed --raft-heartbeat-timeout %s", lease, heartbeat)
	}
	return nil
}

func runAdmin(args []string) error {
	fs := newFlagSet("admin")
	id := fs.String("id", "", "this node's id, unique in the cluster (required)")
	dataDir := fs.String("data-dir", "", "directory for the raft log, snapshots and node identity (required)")
	raftAddr := fs.String("raft-addr", "", "host:port for raft traffic between admins (required); raft connections to peers leave from this IP too")
	raftAdvertise := fs.String("raft-advertise", "", "host:port the other admins reach this node's raft at, if not --raft-addr (NAT, a proxy); --peers lists this one")
	grpcAddr := fs.String("grpc-addr", "", "host:port for the gRPC API used by ctl, workers and other admins (required)")
	peers := fs.String("peers", "", "the cluster's voters, id=host:port,... (the same on every node); an empty data dir asks them whether it may start (a new node lists the running cluster's members and waits for 'ctl peers add')")
	bootstrap := fs.Bool("bootstrap", false, "the --peers form a new cluster: an empty data dir bootstraps it once every peer answers empty and started with --bootstrap too (safe to keep: ignored once the cluster exists)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go profiling (/debug/pprof/) and raft timings on this loopback host:port (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this host:port")
	heartbeat := fs.Duration("raft-heartbeat-timeout", cluster.DefaultHeartbeatTimeout, "a follower that hears nothing from the leader for this long (up to twice it) starts an election")
	election := fs.Duration("raft-election-timeout", cluster.DefaultElectionTimeout, "how long a candidate waits for votes before it tries again")
	lease := fs.Duration("raft-leader-lease", cluster.DefaultLeaderLease, "a leader that cannot reach a quorum for this long steps down; at most --raft-heartbeat-timeout")
	var m maintenanceFlags
	m.register(fs)
	var tf tlsFlags
	tf.register(fs)
	var swsec seaweedSecurity
	swsec.register(fs)
	httpAddr := fs.String("http-addr", "", "host:port for the web dashboard and JSON API (default off); HTTPS with client certificates under TLS, loopback only without TLS unless --insecure")
	insecure := fs.Bool("insecure", false, "without TLS, bind non-loopback addresses anyway: the ports are plaintext and unauthenticated (logged loudly, shown by ctl status)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	for name, v := range map[string]string{"--id": *id, "--data-dir": *dataDir, "--raft-addr": *raftAddr, "--grpc-addr": *grpcAddr} {
		if v == "" {
			return usagef("%s is required", name)
		}
	}
	if err := cluster.ValidateID(*id); err != nil {
		return usagef("%s", err)
	}
	if err := cluster.ValidateAddr("--grpc-addr", *grpcAddr); err != nil {
		return usagef("%s", err)
	}
	// The address is published through the log (SetAdminAddr), which
	// refuses one over the API's limit: refuse it here, not after start.
	if len(*grpcAddr) > rpc.MaxAddrLen {
		return usagef("--grpc-addr is %d bytes long; at most %d are allowed", len(*grpcAddr), rpc.MaxAddrLen)
	}
	if err := cluster.ValidateAddr("--raft-addr", *raftAddr); err != nil {
		return usagef("%s", err)
	}
	if *raftAdvertise != "" {
		if err := cluster.ValidateAddr("--raft-advertise", *raftAdvertise); err != nil {
			return usagef("%s", err)
		}
	}
	parsedPeers, err := cluster.ParsePeers(*peers)
	if err != nil {
		return usagef("%s", err)
	}
	if err := m.validate(); err != nil {
		return err
	}
	if err := tf.validate(); err != nil {
		return err
	}
	if *insecure && tf.files.Enabled() {
		return usagef("--insecure contradicts --tls-ca, --tls-cert and --tls-key: give one or the other")
	}
	if !*insecure && !tf.files.Enabled() {
		for _, a := range []struct{ flag, addr string }{{"--grpc-addr", *grpcAddr}, {"--raft-addr", *raftAddr}, {"--http-addr", *httpAddr}} {
			if a.addr == "" {
				continue
			}
			if !admin.IsLoopback(a.addr) {
				return usagef("%s %s is not a loopback address and no TLS is configured: give --tls-ca, --tls-cert and --tls-key (see groundskeeper tls), or --insecure", a.flag, a.addr)
			}
		}
	}
	if err := validateRaftTimings(*heartbeat, *election, *lease); err != nil {
		return err
	}
	maxVersion, err := testCommandVersion(os.Getenv(testCommandVersionEnv))
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := cluster.ValidateAddr("--debug-addr", *debugAddr); err != nil {
			return usagef("%s", err)
		}
		if err := loopbackOnly("--debug-addr", *debugAddr); err != nil {
			return usagef("%s", err)
		}
	}
	if *metricsAddr != "" {
		if err := cluster.ValidateAddr("--metrics-addr", *metricsAddr); err != nil {
			return usagef("%s", err)
		}
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return usagef("--log-level %q is not one of trace, debug, info, warn, error", *logLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "admin." + *id, Level: level, Output: os.Stderr})
	tlsSrc, err := tf.load(logger.Named("tls"))
	if err != nil {
		return err
	}
	var seaweedSec *seaweed.Security
	if m.master != "" || swsec.file != "" {
		if seaweedSec, err = swsec.load(logger, seaweed.ComponentAdmin); err != nil {
			return err
		}
	}
	if *debugAddr != "" {
		stopDebug, err := serveDebug(*debugAddr)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	var metricsLis net.Listener
	if *metricsAddr != "" {
		if metricsLis, err = listenMetrics(*metricsAddr); err != nil {
			return err
		}
	}
	// One signal context for the whole run: a signal ends the wait of an
	// empty node for its peers, and one that arrives after that wait (while
	// raft or gRPC start) is not lost but stops the node once it runs.
	runCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	node, err := admin.Start(runCtx, admin.Config{ID: *id, DataDir: *dataDir, RaftAddr: *raftAddr, RaftAdvertise: *raftAdvertise, GRPCAddr: *grpcAddr,
		Peers: parsedPeers, Bootstrap: *bootstrap, Logger: logger, Master: m.master, Seaweed: seaweedSec,
		Scheduler: scheduler.Config{Thresholds: m.thresholds, DetectInterval: m.detectInterval, Lease: m.lease, Grace: m.grace, Heartbeat: m.heartbeat,
			HoldShellLock: m.holdShell, ShellYield: m.shellYield, ShellFairness: m.shellFairness,
			Retention: m.retention, TestCrashDir: *dataDir},
		HeartbeatTimeout: *heartbeat, ElectionTimeout: *election, LeaderLease: *lease, MaxCommandVersion: maxVersion, TLS: tlsSrc, Insecure: *insecure, HTTPAddr: *httpAddr})
	if err != nil {
		if metricsLis != nil {
			metricsLis.Close()
		}
		if runCtx.Err() != nil && errors.Is(err, context.Canceled) {
			logger.Info("stopped by a signal while waiting for the peers")
			return nil
		}
		return err
	}
	if metricsLis != nil {
		defer serveMetrics(metricsLis, adminHandler(node))()
	}
	// Only once the node runs: a refused start prints its one sentence alone.
	if m.master == "" {
		logger.Warn("no --master given: tasks are replicated but nothing is detected or assigned")
	}
	if afterStartHook != nil {
		afterStartHook()
	}
	select {
	case <-runCtx.Done():
		logger.Info("shutting down", "signal", context.Cause(runCtx).Error())
	case err := <-node.Fatal():
		// The FSM stopped at a command this build does not know: exit
		// non-zero (main prints err); raft keeps the entry for the upgrade.
		stopSignals()
		if serr := node.Stop(); serr != nil {
			logger.Warn("shutdown after the stop", "error", serr)
		}
		return err
	}
	stopSignals()
	if err := node.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

// afterStartHook, test-only, runs once the node runs, before runAdmin
// waits for a signal.
var afterStartHook func()

// testCommandVersionEnv, test-only, names the highest command version an
// admin applies (and its leader writes, once every voter advertises it):
// 1 plays a build that predates the attempt history, 2 one that predates
// the reports' worker check, 3 one that predates the repair task types,
// 4 one that predates ec_balance, remove_extra and delete_empty, 5 one
// that predates the pending-only cancel, 6 is this build
// (fsm.CurrentVersion, the default) and 7 (fsm.TestCommandVersion) plays
// a build that knows one
// more command version, whose leader writes one
// test-only TestCommand: how tests play a rolling upgrade. Never set it in
// production.
const testCommandVersionEnv = "GROUNDSKEEPER_TEST_COMMAND_VERSION"

func testCommandVersion(v string) (uint32, error) {
	switch v {
	case "":
		return fsm.CurrentVersion, nil
	case "1":
		return fsm.CommandVersion, nil
	case "2":
		return fsm.HistoryVersion, nil
	case "3":
		return fsm.OwnerVersion, nil
	case "4":
		return fsm.RepairVersion, nil
	case "5":
		return fsm.ControlVersion, nil
	case "6":
		return fsm.PendingCancelVersion, nil
	case "7":
		return fsm.TestCommandVersion, nil
	}
	return 0, usagef("%s=%q: want 1, 2, 3, 4, 5, 6 or 7 (test-only)", testCommandVersionEnv, v)
}
