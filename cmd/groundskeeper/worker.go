package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// defaultCapabilities is every task type this build knows
// (fsm.TaskTypes), comma-separated: a worker runs everything unless told
// otherwise.
func defaultCapabilities() string {
	names := make([]string, len(fsm.TaskTypes))
	for i, t := range fsm.TaskTypes {
		names[i] = fsm.TypeName(t)
	}
	return strings.Join(names, ",")
}

func runWorker(args []string) error {
	fs := newFlagSet("worker")
	id := fs.String("id", "", "this worker's id, unique among workers (required)")
	admins := fs.String("admin", "", "admin gRPC addresses, comma-separated; any one will do (required)")
	dataDir := fs.String("data-dir", "", "directory for the worker's journal (required)")
	caps := fs.String("capabilities", defaultCapabilities(), "task types this worker runs")
	maxConc := fs.Int("max-concurrent", 2, "how many tasks it runs at once")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn or error")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this host:port")
	var tf tlsFlags
	tf.register(fs)
	var swsec seaweedSecurity
	swsec.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *id == "":
		return usagef("--id is required")
	case *admins == "":
		return usagef("--admin is required")
	case *dataDir == "":
		return usagef("--data-dir is required")
	case *maxConc < 1 || *maxConc > 1024:
		return usagef("--max-concurrent %d is out of range 1-1024", *maxConc)
	}
	if err := cluster.ValidateID(*id); err != nil {
		return usagef("worker %s", err)
	}
	addrs := splitList(*admins)
	for _, a := range addrs {
		if err := cluster.ValidateAddr("--admin address", a); err != nil {
			return usagef("%s", err)
		}
	}
	if *metricsAddr != "" {
		if err := cluster.ValidateAddr("--metrics-addr", *metricsAddr); err != nil {
			return usagef("%s", err)
		}
	}
	if err := tf.validate(); err != nil {
		return err
	}
	capabilities, err := parseCapabilities(*caps)
	if err != nil {
		return err
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return usagef("--log-level %q is not one of trace, debug, info, warn, error", *logLevel)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	var metricsLis net.Listener
	if *metricsAddr != "" {
		if metricsLis, err = listenMetrics(*metricsAddr); err != nil {
			return err
		}
		defer metricsLis.Close()
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "worker." + *id, Level: level, Output: os.Stderr})
	tlsSrc, err := tf.load(logger.Named("tls"))
	if err != nil {
		return err
	}
	seaweedSec, err := swsec.load(logger, seaweed.ComponentWorker)
	if err != nil {
		return err
	}
	volumes := seaweed.NewVolumeClient(seaweedSec.DialOptions()...)
	defer volumes.Close()
	w, err := worker.New(worker.Config{
		ID: *id, Admins: addrs, DataDir: *dataDir, Capabilities: capabilities, MaxConcurrent: *maxConc,
		Executors: worker.Executors(volumes), Logger: logger, Version: version, TLS: tlsSrc,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	if metricsLis != nil {
		defer serveMetrics(metricsLis, workerHandler(w))()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("worker started", "admins", addrs, "capabilities", *caps, "max_concurrent", *maxConc)
	if err := w.Run(ctx); err != nil {
		return err
	}
	logger.Info("stopped cleanly")
	return nil
}

// parseCapabilities turns "vacuum,erasure_coding" into task types.
func parseCapabilities(s string) ([]fsmpb.TaskType, error) {
	var out []fsmpb.TaskType
	seen := map[fsmpb.TaskType]bool{}
	for _, c := range splitList(s) {
		t, err := fsm.ParseTaskType(c)
		if err != nil {
			return nil, usagef("--capabilities: %s", err)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, usagef("--capabilities names no task type")
	}
	return out, nil
}
