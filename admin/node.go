package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Config is everything needed to run one admin node. The command line
// (cmd/groundskeeper) validates the flags it builds this from; Start
// refuses only what it cannot run.
type Config struct {
	ID, DataDir, RaftAddr, GRPCAddr string
	// RaftAdvertise is --raft-advertise ("" : RaftAddr).
	RaftAdvertise string
	Peers         []cluster.Peer
	// Bootstrap is --bootstrap: Peers form a new cluster (cluster.Config).
	Bootstrap bool
	// Logger receives the node's logs (nil: none).
	Logger hclog.Logger
	// Master is the SeaweedFS master ("" : none, nothing is detected or planned).
	Master string
	// Seaweed is how the masters are reached (security.toml's
	// [grpc.admin]); nil is plaintext.
	Seaweed   *seaweed.Security
	Scheduler scheduler.Config
	// Raft timings; zero means the cluster package's defaults.
	HeartbeatTimeout, ElectionTimeout, LeaderLease time.Duration
	// MaxCommandVersion is the highest command version this node applies
	// (0: fsm.CurrentVersion). Tests raise it to fsm.TestCommandVersion
	// (GROUNDSKEEPER_TEST_COMMAND_VERSION=7) to play a newer build, whose
	// leader then writes one test-only version-7 command once every voter
	// advertises that version, or lower it to 1 to play a build that
	// predates the attempt history (version 2).
	MaxCommandVersion uint32
	// TLS, when set, is the node's mutual-TLS material (--tls-ca,
	// --tls-cert, --tls-key): the gRPC server and the raft transport
	// require a client certificate from its CA, and every connection the
	// node opens to another admin presents its certificate. nil is
	// plaintext.
	TLS *certs.Source
	// Insecure (--insecure) lets a node without TLS bind non-loopback
	// addresses; it is logged loudly and shown by ctl status.
	Insecure bool
	// HTTPAddr (--http-addr) serves the web dashboard and JSON API
	// (package web); "" serves none. Under TLS it is HTTPS requiring a
	// client certificate from the CA; without, the loopback rule of the
	// gRPC port applies.
	HTTPAddr string
}

// Node is a running admin: raft, the replicated state, the scheduler (which
// runs while this node leads) and the gRPC API.
type Node struct {
	raft   *cluster.Node
	fsm    *fsm.FSM
	sched  *scheduler.Scheduler
	master *seaweed.Master
	topo   *seaweed.TopologyCache
	server *rpc.Server
	grpc   *grpc.Server
	// metrics is the node's own registry and the histograms observed on
	// its hot paths; the rest is read at scrape time.
	metrics *adminMetrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// changes wakes capacity watches: every applied batch and every new
	// master topology notifies it.
	changes *rpc.ChangeFeed
	logger  hclog.Logger
	// http serves the dashboard; nil without --http-addr.
	http *dashboard
}

// Start starts an admin node. With an empty data dir it first waits in
// cluster.Open until its peers have answered (ctx ends the wait; ctx does
// not bound the node's life once Start returns: Stop does).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := checkListeners(cfg); err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		role, name, err := cfg.TLS.Identity()
		if err != nil {
			return nil, fmt.Errorf("admin certificate: %w", err)
		}
		if role != certs.RoleAdmin || name != cfg.ID {
			return nil, fmt.Errorf("the certificate names %s %q but this is admin %q: issue it with --role admin --name %s", role, name, cfg.ID, cfg.ID)
		}
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on --grpc-addr %s: %w", cfg.GRPCAddr, err)
	}
	n := &Node{fsm: fsm.NewWithVersion(cfg.MaxCommandVersion), metrics: newAdminMetrics(), changes: rpc.NewChangeFeed(), logger: cfg.Logger}
	// Notification lives here, outside fsm.Apply: Apply stays deterministic
	// and the feed never blocks raft's apply goroutine.
	n.fsm.OnApply(func(uint64) { n.changes.Notify() })
	var master scheduler.Master
	if cfg.Master != "" {
		if n.master, err = seaweed.DialMaster(cfg.Master, cfg.Seaweed.DialOptions()...); err != nil {
			lis.Close()
			return nil, err
		}
		// Every node, leader or not, keeps the master's last topology for
		// the capacity oracle's reads. The leader's scheduler polls through
		// the same cache, so the leader fetches and holds one topology, not
		// two.
		interval := cfg.Scheduler.DetectInterval
		if interval <= 0 {
			interval = 10 * time.Second
		}
		n.topo = seaweed.NewTopologyCache(n.master, interval)
		topoLog := cfg.Logger.Named("topology")
		n.topo.OnError = func(err error) { topoLog.Debug("master poll failed: keeping the last topology", "error", err) }
		n.topo.OnUpdate = n.changes.Notify
		master = cachedMaster{n.master, n.topo}
	}
	schedCfg := cfg.Scheduler
	schedCfg.NodeID, schedCfg.Logger = cfg.ID, cfg.Logger.Named("scheduler")
	if prev := schedCfg.Observe; prev != nil {
		schedCfg.Observe = func(event string, typ fsmpb.TaskType, d time.Duration) {
			n.metrics.observe(event, typ, d)
			prev(event, typ, d)
		}
	} else {
		schedCfg.Observe = n.metrics.observe
	}
	// Set before raft starts, called only while leading (n.raft is set by then).
	schedCfg.VerifyLeader = func(ctx context.Context) error { return n.raft.VerifyRead(ctx) }
	n.sched = scheduler.New(schedCfg, localApplier{n}, n.fsm, master)
	n.fsm.OnRestore(n.sched.StateRestored)
	n.raft, err = cluster.Open(ctx, cluster.Config{
		ID: cfg.ID, RaftAddr: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise, DataDir: cfg.DataDir, Peers: cfg.Peers, Bootstrap: cfg.Bootstrap,
		FSM: n.fsm, Logger: cfg.Logger, OnLeader: n.lead, TLS: cfg.TLS,
		HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout, LeaderLease: cfg.LeaderLease,
	})
	if err != nil {
		lis.Close()
		if n.master != nil {
			n.master.Close()
		}
		return nil, err
	}
	n.server = rpc.NewServer(n.raft, n.fsm, cfg.GRPCAddr, cfg.Logger.Named("rpc"))
	n.server.SetTLS(cfg.TLS)
	n.server.SetInsecure(cfg.TLS == nil && cfg.Insecure)
	n.server.SetLive(n.sched)
	n.server.SetChanges(n.changes)
	if n.topo != nil {
		n.server.SetTopology(n.topo)
	}
	// The message size limits of rpc.ServerOptions; the role check and the
	// limits' interceptors come after the metrics one, so a refused call is
	// counted too.
	opts := append(rpc.ServerCredentials(cfg.TLS), grpc.MaxRecvMsgSize(rpc.MaxRequestMessage), grpc.MaxSendMsgSize(rpc.MaxResponseMessage),
		// Capacity oracle reads are many and short: long-lived workers with
		// grown stacks serve them instead of a fresh goroutine per call,
		// whose stack growth was a sixth of a read's cost (more calls than
		// workers still get goroutines of their own).
		grpc.NumStreamWorkers(streamWorkers),
		// One connection holds at most this many calls at once (a worker
		// needs one; the forwarders between admins queue beyond it).
		grpc.MaxConcurrentStreams(rpc.MaxStreamsPerConn),
		// Workers ping every 5 s to notice a dead leader quickly.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 2 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(n.metrics.unaryInterceptor), grpc.ChainStreamInterceptor(n.metrics.streamInterceptor))
	opts = append(opts, rpc.AuthzInterceptors(cfg.TLS, n.raft)...)
	opts = append(opts, grpc.ChainUnaryInterceptor(rpc.LimitUnary), grpc.ChainStreamInterceptor(rpc.LimitStream))
	n.grpc = grpc.NewServer(opts...)
	n.server.SetSpoolDir(cfg.DataDir)
	n.server.Register(n.grpc)
	pb.RegisterWorkerServiceServer(n.grpc, rpc.NewWorkerServer(n.server, n.sched))
	reflection.Register(n.grpc)
	n.metrics.reg.MustRegister(newAdminCollector(n))
	if cfg.HTTPAddr != "" {
		if n.http, err = startDashboard(cfg, n); err != nil {
			lis.Close()
			n.raft.Shutdown()
			n.server.Close()
			if n.master != nil {
				n.master.Close()
			}
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(lis); err != nil {
			cfg.Logger.Error("gRPC server stopped", "error", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.server.PublishAddress(runCtx)
	}()
	if n.topo != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.topo.Run(runCtx)
		}()
	}
	cfg.Logger.Info("admin node started", "id", cfg.ID, "raft_addr", cfg.RaftAddr, "grpc_addr", cfg.GRPCAddr, "tls", cfg.TLS != nil)
	if cfg.TLS == nil && cfg.Insecure {
		cfg.Logger.Warn("INSECURE: --insecure without TLS: the gRPC and raft ports are plaintext and unauthenticated; anyone who reaches them controls the cluster",
			"raft_addr", cfg.RaftAddr, "grpc_addr", cfg.GRPCAddr)
	}
	return n, nil
}

// StartNodes starts the admins of cfgs at once (empty nodes of a new
// cluster wait in Open for each other). If one fails, the others are
// stopped and the first error is returned.
func StartNodes(ctx context.Context, cfgs []Config) ([]*Node, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := make([]*Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if nodes[i], errs[i] = Start(ctx, c); errs[i] != nil {
				errs[i] = fmt.Errorf("start %s: %w", c.ID, errs[i])
				cancel() // the others need not wait for this one
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, n := range nodes {
				if n != nil {
					n.Stop()
				}
			}
			return nil, err
		}
	}
	return nodes, nil
}

// streamWorkers is how many goroutines the gRPC server keeps for calls.
const streamWorkers = 256

// Stop shuts the node down: raft first (which ends leadership, so the
// scheduler stops and closes the worker streams), then the API, then the
// stores.
func (n *Node) Stop() error {
	n.cancel()
	n.changes.Close() // capacity watches end now, not at the graceful-stop timeout
	err := n.raft.Shutdown()
	rpc.StopGRPC(n.grpc, 3*time.Second)
	n.http.stop()
	n.wg.Wait()
	n.server.Close()
	if n.master != nil {
		n.master.Close()
	}
	return err
}

// lead runs this node's leader-only work for one term: the scheduler and,
// in a build that knows the test-only command version, its emitter.
func (n *Node) lead(ctx context.Context) {
	if n.fsm.MaxCommandVersion() >= fsm.TestCommandVersion {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			n.emitTestCommand(ctx)
		}()
	}
	n.sched.Run(ctx)
}

// emitTestCommand (test-only: a build started with
// GROUNDSKEEPER_TEST_COMMAND_VERSION=7) writes one TestCommand (version
// fsm.TestCommandVersion) as soon as every voter advertises that version,
// unless the state has one.
func (n *Node) emitTestCommand(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		var done bool
		n.fsm.Read(func(s *fsm.State) { done = s.TestCommandIndex() != 0 })
		if done {
			return
		}
		if n.agreedVersion() >= fsm.TestCommandVersion {
			res, err := localApplier{n}.Apply(ctx, &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}})
			if err == nil && res.ErrorCode == fsmpb.ErrorCode_ERROR_CODE_NONE {
				n.logger.Info("wrote the test-only command", "version", fsm.TestCommandVersion, "index", res.Index)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// agreedVersion is the command version this leader writes in: the highest
// every server of the configuration advertised, never below the version
// already written (fsm.EncodingVersion).
func (n *Node) agreedVersion() uint32 {
	members, err := n.raft.Members()
	if err != nil {
		return min(fsm.CommandVersion, n.fsm.MaxCommandVersion())
	}
	return n.fsm.EncodingVersion(cluster.MemberIDs(members))
}

// The leader's gate (cluster.Node.Apply, every proposal's one way in)
// writes a command only in a version every member applies.
var _ cluster.Versioned = (*fsm.FSM)(nil)

// localApplier proposes the scheduler's commands on this node only: a
// scheduler that lost leadership must fail, never forward to the new leader.
type localApplier struct{ n *Node }

func (a localApplier) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, error) {
	agreed := a.n.agreedVersion()
	if need := fsm.RequiredVersion(cmd); need > agreed {
		return nil, fmt.Errorf("command needs version %d, agreed version is %d: %w", need, agreed, fsm.ErrVersionNotAgreed)
	}
	// Attempt history (servers, moves) is written only once every voter
	// applies it; before, the command is written as version 1 without it.
	b, err := fsm.EncodeAgreed(time.Now().UnixNano(), agreed, cmd)
	if err != nil {
		return nil, err
	}
	out, err := a.n.raft.Apply(ctx, b)
	if errors.Is(err, cluster.ErrVersionNotAgreed) {
		// The gate's own refusal (a member joined since agreedVersion):
		// the scheduler knows it by fsm's sentinel.
		return nil, fmt.Errorf("%w: %w", fsm.ErrVersionNotAgreed, err)
	}
	if err != nil {
		return nil, err
	}
	res, ok := out.(*fsmpb.ApplyResult)
	if !ok {
		return nil, fmt.Errorf("unexpected apply result %T", out)
	}
	return res, nil
}

// cachedMaster is the master as the scheduler sees it: its topology polls
// go through the node's topology cache.
type cachedMaster struct {
	*seaweed.Master
	cache *seaweed.TopologyCache
}

// The scheduler follows the master leader's changes through it.
var _ scheduler.LeaderEpochMaster = cachedMaster{}

func (m cachedMaster) Topology(ctx context.Context) (*seaweed.Topology, error) {
	topo, _, err := m.cache.Fetch(ctx)
	return topo, err
}

// TopologyAsked is Topology with when the poll that answered began (see
// scheduler.SharedPollMaster).
func (m cachedMaster) TopologyAsked(ctx context.Context) (*seaweed.Topology, time.Time, error) {
	return m.cache.Fetch(ctx)
}
