package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
)

// maintenanceFlags are the detection settings of DESIGN.md section 8,
// validated at start so a bad value is refused before anything runs.
type maintenanceFlags struct {
	master           string
	detectInterval   time.Duration
	vacuumGarbage    float64
	ecFullness       float64
	ecQuietFor       time.Duration
	ecMinSizeMB      uint64
	balanceThreshold float64
}

func (m *maintenanceFlags) validate() error {
	switch {
	case m.detectInterval < time.Second:
		return usagef("--detect-interval %s is too short (at least 1s)", m.detectInterval)
	case m.vacuumGarbage <= 0 || m.vacuumGarbage > 1:
		return usagef("--vacuum-garbage-threshold %v is out of range (0, 1]", m.vacuumGarbage)
	case m.ecFullness <= 0 || m.ecFullness > 1:
		return usagef("--ec-fullness-ratio %v is out of range (0, 1]", m.ecFullness)
	case m.ecQuietFor < 0:
		return usagef("--ec-quiet-for %s must not be negative", m.ecQuietFor)
	case m.balanceThreshold <= 0:
		return usagef("--balance-imbalance-threshold %v must be greater than 0", m.balanceThreshold)
	}
	if m.master != "" {
		if err := cluster.ValidateAddr("--master", hostPortOnly(m.master)); err != nil {
			return usagef("%s (want host:httpPort or host:httpPort.grpcPort)", err)
		}
	}
	return nil
}

// hostPortOnly drops SeaweedFS's optional ".grpcPort" suffix.
func hostPortOnly(addr string) string {
	for i := len(addr) - 1; i >= 0 && addr[i] != ':'; i-- {
		if addr[i] == '.' {
			return addr[:i]
		}
	}
	return addr
}

func runAdmin(args []string) error {
	fs := newFlagSet("admin")
	id := fs.String("id", "", "this node's id, unique in the cluster (required)")
	dataDir := fs.String("data-dir", "", "directory for the raft log, snapshots and node identity (required)")
	raftAddr := fs.String("raft-addr", "", "host:port for raft traffic between admins (required)")
	grpcAddr := fs.String("grpc-addr", "", "host:port for the gRPC API used by ctl, workers and other admins (required)")
	peers := fs.String("peers", "", "initial voters, id=host:port,... (the same on every node; omit to join a running cluster via 'ctl peers add')")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go profiling (/debug/pprof/) on this host:port")
	var m maintenanceFlags
	fs.StringVar(&m.master, "master", "", "SeaweedFS master, host:httpPort or host:httpPort.grpcPort")
	fs.DurationVar(&m.detectInterval, "detect-interval", 10*time.Second, "how often to look for maintenance work")
	fs.Float64Var(&m.vacuumGarbage, "vacuum-garbage-threshold", 0.3, "vacuum volumes whose garbage ratio is at least this")
	fs.Float64Var(&m.ecFullness, "ec-fullness-ratio", 0.95, "erasure-code volumes at least this full")
	fs.DurationVar(&m.ecQuietFor, "ec-quiet-for", time.Hour, "erasure-code only volumes unmodified for this long")
	fs.Uint64Var(&m.ecMinSizeMB, "ec-min-size-mb", 30, "erasure-code only volumes of at least this many MB")
	fs.Float64Var(&m.balanceThreshold, "balance-imbalance-threshold", 0.2, "balance when (max-min)/avg slot usage reaches this")
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
	if err := cluster.ValidateAddr("--raft-addr", *raftAddr); err != nil {
		return usagef("%s", err)
	}
	parsedPeers, err := cluster.ParsePeers(*peers)
	if err != nil {
		return usagef("%s", err)
	}
	if err := m.validate(); err != nil {
		return err
	}
	if *debugAddr != "" {
		if err := cluster.ValidateAddr("--debug-addr", *debugAddr); err != nil {
			return usagef("%s", err)
		}
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return usagef("--log-level %q is not one of trace, debug, info, warn, error", *logLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "admin." + *id, Level: level, Output: os.Stderr})
	if *debugAddr != "" {
		stopDebug, err := serveDebug(*debugAddr)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	node, err := startNode(nodeConfig{ID: *id, DataDir: *dataDir, RaftAddr: *raftAddr, GRPCAddr: *grpcAddr, Peers: parsedPeers, Logger: logger})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	signal.Stop(sig)
	if err := node.stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}
