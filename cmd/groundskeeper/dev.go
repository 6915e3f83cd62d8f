package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/ticker"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// runDev starts a three-node admin quorum in this process and reports what
// happens until interrupted.
func runDev(args []string) error {
	fs := newFlagSet("dev")
	dataDir := fs.String("data-dir", "", "keep state here (default: a temporary directory removed on exit)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	raftPort := fs.Int("raft-port", 7001, "raft port of the first admin (the others use the next ones)")
	grpcPort := fs.Int("grpc-port", 9001, "gRPC port of the first admin (the others use the next ones)")
	httpPort := fs.Int("http-port", 0, "dashboard port of the first admin (the others use the next ones); 0: no dashboard")
	logLevel := fs.String("log-level", "warn", "log level of the admins and workers")
	master := fs.String("master", "", "use these real SeaweedFS masters (comma-separated) instead of the simulated one")
	servers := fs.Int("servers", 6, "volume servers of the simulated SeaweedFS")
	workers := fs.Int("workers", 2, "workers to run")
	detect := fs.Duration("detect-interval", 2*time.Second, "how often the leader looks for work")
	insecure := fs.Bool("insecure", false, "with --tls=false, allow a non-loopback --host in plaintext (anyone who reaches the ports controls the cluster)")
	var swsec seaweedSecurity
	swsec.register(fs)
	useTLS := fs.Bool("tls", true, "run mutual TLS with a CA of dev's own in DATA_DIR/pki (prints the ctl flags); --tls=false for plaintext")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *servers < 4 || *servers > 1000 {
		return usagef("--servers %d is out of range 4-1000 (erasure coding needs 4)", *servers)
	}
	if *workers < 0 || *workers > 100 {
		return usagef("--workers %d is out of range 0-100", *workers)
	}
	if *detect < time.Second {
		return usagef("--detect-interval %s is too short (at least 1s)", *detect)
	}
	if *master == "" && swsec.file != "" {
		return usagef("--seaweedfs-security needs --master: the simulated SeaweedFS is plaintext")
	}
	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "groundskeeper-dev-")
		if err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		return usagef("--log-level %q is not one of trace, debug, info, warn, error", *logLevel)
	}
	masterAddr := *master
	var simc *sim.Cluster
	if masterAddr == "" {
		var err error
		if simc, err = startSimulation(*servers); err != nil {
			return err
		}
		defer simc.Close()
		masterAddr = simc.MasterServerAddress().String()
		fmt.Printf("groundskeeper dev: simulated SeaweedFS with %d volume servers, master at %s\n", *servers, masterAddr)
	} else if _, err := seaweed.ParseMasters(masterAddr); err != nil {
		return usagef("--master: %s", err)
	}
	// Real masters are reached as SeaweedFS's own admin and workers would
	// (security.toml); the simulated one is plaintext.
	var adminSec, workerSec *seaweed.Security
	if simc == nil {
		var err error
		logger := hclog.New(&hclog.LoggerOptions{Name: "dev", Level: level, Output: os.Stderr})
		if adminSec, err = swsec.load(logger, seaweed.ComponentAdmin); err != nil {
			return err
		}
		if workerSec, err = swsec.load(logger, seaweed.ComponentWorker); err != nil {
			return err
		}
	}
	th := scheduler.DefaultThresholds()
	if simc != nil {
		// The simulated volumes were "last written" long ago; keep SeaweedFS's
		// thresholds otherwise.
		th.ECMinSizeMB = 30
	}
	var pki *devPKI
	if *useTLS {
		var err error
		if pki, err = newDevPKI(dir); err != nil {
			return err
		}
		if _, err := pki.source(certs.RoleOperator, "dev", *host); err != nil {
			return err
		}
	}
	var peers []cluster.Peer
	var cfgs []admin.Config
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("a%d", i+1)
		raftAddr := fmt.Sprintf("%s:%d", *host, *raftPort+i)
		peers = append(peers, cluster.Peer{ID: id, RaftAddr: raftAddr})
		cfgs = append(cfgs, admin.Config{
			ID: id, DataDir: filepath.Join(dir, id), RaftAddr: raftAddr, GRPCAddr: fmt.Sprintf("%s:%d", *host, *grpcPort+i),
			Logger: hclog.New(&hclog.LoggerOptions{Name: "admin." + id, Level: level, Output: os.Stderr}),
			Master: masterAddr, Seaweed: adminSec, Scheduler: scheduler.Config{Thresholds: th, DetectInterval: *detect}, Insecure: *insecure,
		})
		if *httpPort != 0 {
			cfgs[i].HTTPAddr = fmt.Sprintf("%s:%d", *host, *httpPort+i)
		}
		if pki != nil {
			src, err := pki.source(certs.RoleAdmin, id, *host)
			if err != nil {
				return err
			}
			cfgs[i].TLS = src
		}
	}
	var grpcAddrs []string
	for i := range cfgs {
		cfgs[i].Peers, cfgs[i].Bootstrap = peers, true
		grpcAddrs = append(grpcAddrs, cfgs[i].GRPCAddr)
	}
	// One signal context for the whole run, so a signal that arrives while
	// the nodes start is not lost.
	runCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	nodes, err := admin.StartNodes(runCtx, cfgs)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range nodes {
			n.Stop()
		}
	}()
	admins := strings.Join(grpcAddrs, ",")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := 0; i < *workers; i++ {
		id := fmt.Sprintf("w%d", i+1)
		var wsrc *certs.Source
		if pki != nil {
			var err error
			if wsrc, err = pki.source(certs.RoleWorker, id, *host); err != nil {
				return err
			}
		}
		volumes := seaweed.NewVolumeClient(workerSec.DialOptions()...)
		w, err := worker.New(worker.Config{
			TLS: wsrc,
			ID:  id, Admins: grpcAddrs, DataDir: filepath.Join(dir, id), MaxConcurrent: 2, Version: version,
			Capabilities: []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_EC_REBUILD, fsmpb.TaskType_TASK_TYPE_EC_BALANCE, fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY},
			Executors:    worker.Executors(volumes),
			Logger:       hclog.New(&hclog.LoggerOptions{Name: "worker." + id, Level: level, Output: os.Stderr}),
		})
		if err != nil {
			return fmt.Errorf("start worker %s: %w", id, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer volumes.Close()
			defer w.Close()
			w.Run(ctx)
		}()
	}
	if simc != nil {
		wg.Add(1)
		go func() { defer wg.Done(); keepMakingGarbage(ctx, simc) }()
	}
	fmt.Printf("groundskeeper dev: three admins and %d workers running, state in %s\n", *workers, dir)
	if pki != nil {
		f := certs.IssuedFiles(pki.dir, "dev")
		fmt.Printf("  mutual TLS with dev's own CA in %s: give ctl %s\n", pki.dir, pki.ctlFlags())
		fmt.Printf("  or first: export %s=%s %s=%s %s=%s\n", envTLSCA, f.CA, envTLSCert, f.Cert, envTLSKey, f.Key)
	}
	if *httpPort != 0 {
		fmt.Printf("  dashboard: %s://%s:%d/ (and the next ports)\n", map[bool]string{true: "https", false: "http"}[pki != nil], *host, *httpPort)
	}
	fmt.Printf("  try: groundskeeper ctl --admin %s status\n", admins)
	fmt.Printf("       groundskeeper ctl --admin %s task submit --type vacuum --volume 7\n", admins)
	fmt.Printf("       groundskeeper ctl --admin %s tasks\n", admins)
	fmt.Printf("       groundskeeper ctl --admin %s workers\n", admins)
	fmt.Println("  Ctrl-C stops everything.")

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLeader := ""
	seen := map[uint64]fsmpb.TaskState{}
	for {
		select {
		case <-runCtx.Done():
			fmt.Printf("groundskeeper dev: %s, stopping\n", context.Cause(runCtx))
			return nil
		case <-tick.C:
		}
		for _, n := range nodes {
			select {
			case err := <-n.Fatal():
				// As the admin command does: one admin stopped applying, so
				// stop them all and exit non-zero with the reason.
				return fmt.Errorf("admin %s stopped: %w", n.ID(), err)
			default:
			}
		}
		for _, n := range nodes {
			if !n.Raft().IsLeader() {
				continue
			}
			if id := n.ID(); id != lastLeader {
				fmt.Printf("%s  leader is now %s (term %d)\n", time.Now().Format("15:04:05"), id, n.Raft().Status().Term)
				lastLeader = id
			}
			n.FSM().Read(func(st *fsm.State) {
				for _, t := range st.Tasks(fsm.TaskFilter{}) {
					if prev, ok := seen[t.Id]; !ok || prev != t.State {
						extra := ""
						if t.WorkerId != "" && t.State != fsmpb.TaskState_TASK_STATE_PENDING {
							extra = " on " + t.WorkerId
						}
						if t.LastError != "" && t.State != fsmpb.TaskState_TASK_STATE_COMPLETED {
							extra += " (" + t.LastError + ")"
						}
						fmt.Printf("%s  task %d: %s of volume %d is %s%s\n", time.Now().Format("15:04:05"), t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State), extra)
						seen[t.Id] = t.State
					}
				}
			})
		}
	}
}

// startSimulation starts a simulated SeaweedFS with work for every task
// type: volumes with garbage (vacuum), full volumes untouched for a day
// (erasure coding), and an empty server beside full ones (balance).
func startSimulation(servers int) (*sim.Cluster, error) {
	cfg := sim.DefaultConfig()
	cfg.Servers, cfg.VolumeSizeLimitMB, cfg.MaxVolumesPerServer = servers, 100, 20
	c, err := sim.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("start simulated SeaweedFS: %w", err)
	}
	dayAgo := time.Now().Add(-24 * time.Hour).Unix()
	full := servers - 1 // the last server starts empty
	add := func(n int, spec sim.VolumeSpec) error {
		_, err := c.AddVolumesFunc(n, func(i int, s *sim.VolumeSpec) { s.Servers = []int{i % full} }, spec)
		return err
	}
	for _, step := range []struct {
		n    int
		spec sim.VolumeSpec
	}{
		{12, sim.VolumeSpec{Size: 60 << 20, FileCount: 600, DeletedBytes: 30 << 20, DeleteCount: 300}},
		{4, sim.VolumeSpec{Size: 98 << 20, FileCount: 900, ModifiedAt: dayAgo}},
		{20, sim.VolumeSpec{Size: 20 << 20, FileCount: 200}},
	} {
		if err := add(step.n, step.spec); err != nil {
			c.Close()
			return nil, fmt.Errorf("seed simulated volumes: %w", err)
		}
	}
	return c, nil
}

// keepMakingGarbage deletes data from a random volume now and then, as
// users do, so detection keeps finding vacuum work.
func keepMakingGarbage(ctx context.Context, c *sim.Cluster) {
	r := rand.New(rand.NewPCG(1, 2))
	ticker.Every(ctx, 5*time.Second, func() {
		var vols []sim.VolumeState
		for _, s := range c.Servers() {
			vols = append(vols, s.Volumes()...)
		}
		if len(vols) == 0 {
			return
		}
		v := vols[r.IntN(len(vols))]
		_ = c.DeleteData(v.ID, v.Size/2, v.FileCount/2)
	})
}
