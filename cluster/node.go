package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
)

const (
	raftDBFile      = "raft.db"
	snapshotsDir    = "snapshots"
	retainSnapshots = 2
	defaultTimeout  = 10 * time.Second

	// The raft timings. A follower notices a dead leader after a random
	// [HeartbeatTimeout, 2*HeartbeatTimeout) without contact and an election
	// adds about one ElectionTimeout more, so failover takes 1–2 of these
	// timeouts. hashicorp/raft's 1 s defaults put the failover p99 at about
	// 2.7 s on loopback; half of that keeps the p99 well under 3 s while the
	// leader's heartbeats (every HeartbeatTimeout/10 = 50 ms) leave a
	// follower ten missed beats of slack before it calls an election.
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	DefaultElectionTimeout  = 500 * time.Millisecond
	// A leader that cannot reach a quorum for this long steps down (and
	// stops assigning work). It must not exceed HeartbeatTimeout.
	DefaultLeaderLease = 500 * time.Millisecond
)

// Config describes one admin node's raft.
type Config struct {
	ID       string
	RaftAddr string
	// RaftAdvertise is the address the other members reach this node at,
	// when it differs from RaftAddr (NAT, a proxy); "" means RaftAddr. It
	// is the address --peers must list for this node.
	RaftAdvertise string
	DataDir       string
	// Peers are the cluster's voters (--peers). A node whose data dir is
	// empty probes them before it starts raft (see Open); with Bootstrap
	// they are the new cluster's initial configuration and must include
	// this node. Ignored once the node has state.
	Peers []Peer
	// Bootstrap (--bootstrap): Peers form a new cluster. Only an empty node
	// whose peers are all empty and waiting to bootstrap (or that counted
	// this node as new when they bootstrapped) bootstraps; it is ignored
	// when the data dir has state, or when the peers already run a cluster
	// without this node.
	Bootstrap bool
	// FSM is the state machine raft applies committed entries to.
	FSM    *fsm.FSM
	Logger hclog.Logger

	// OnLeader runs in its own goroutine each time this node becomes leader,
	// after a barrier has applied every earlier entry. Its context is
	// cancelled, and the call awaited, as soon as leadership is lost.
	OnLeader func(ctx context.Context)

	// Tuning; zero values mean the defaults below.
	HeartbeatTimeout  time.Duration // DefaultHeartbeatTimeout
	ElectionTimeout   time.Duration // DefaultElectionTimeout
	LeaderLease       time.Duration // DefaultLeaderLease
	SnapshotThreshold uint64        // 8192
	SnapshotInterval  time.Duration // 30s
	TrailingLogs      uint64        // 10240
	MaxAppendEntries  int           // 512

	// TLS, when set, makes the raft port mutual TLS: peers must present an
	// admin certificate from its CA, and raft traffic is accepted only from
	// admins named in the latest configuration, or in Peers while there is
	// none yet (transport_tls.go); a raft connection of a member that
	// leaves the configuration is closed.
	// nil is plaintext.
	TLS *certs.Source

	// wrapFSM, if set (by tests), wraps the raft adapter of FSM.
	wrapFSM func(raft.FSM) raft.FSM
}

// Node is a running raft member.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	transport *raft.NetworkTransport
	stream    *streamLayer
	logger    hclog.Logger
	// incarnation and record are this node's probe identity (probe.go).
	incarnation string
	record      atomic.Pointer[map[string]string]

	// readyTerm is the term in which this node, as leader, completed its
	// barrier (0: not ready). Leadership lost and regained quickly can reach
	// us as a single notification, so readiness is tied to the term.
	readyTerm atomic.Uint64
	// verifier coalesces concurrent VerifyRead calls into shared rounds.
	verifier *verifyBatcher
	notifyCh chan bool
	stop     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
	// fatal carries the one error (the FSM halted) that the process must
	// exit on; see Fatal.
	fatal chan error
	// gateMu serializes, on the leader, proposals of a command above the
	// base version with configuration changes (versions.go); proposed is
	// the highest such version this node proposed.
	gateMu   sync.Mutex
	proposed uint32
	// stampMu serializes stamping and enqueueing proposals (versions.go);
	// lastStamp is the newest stamp this node proposed. Lock order:
	// stampMu, then gateMu.
	stampMu   sync.Mutex
	lastStamp int64
}

// Fatal delivers, at most once, an error this node cannot go on after:
// its FSM stopped at an entry it cannot apply. The process should log it
// and exit; raft keeps the entry for a binary that can.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Open starts the raft node described by cfg. A data dir with raft state
// rejoins with it. An empty data dir first asks the other peers (the probe
// protocol on the raft port) whether it is safe to start: it bootstraps
// only with cfg.Bootstrap, when every peer is new too; it refuses to start
// if a peer still counts this node as a voter (the dir was wiped: the vote
// and log it forgot could cost acknowledged writes); otherwise it starts
// raft empty and waits to be added. Open blocks while it probes, until ctx
// ends.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := ValidateID(cfg.ID); err != nil {
		return nil, err
	}
	if err := ValidateAddr("--raft-addr", cfg.RaftAddr); err != nil {
		return nil, err
	}
	if cfg.RaftAdvertise == "" {
		cfg.RaftAdvertise = cfg.RaftAddr
	} else if err := ValidateAddr("--raft-advertise", cfg.RaftAdvertise); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("a data dir is required")
	}
	if cfg.FSM == nil {
		return nil, errors.New("cluster: no FSM given")
	}
	found := false
	for _, p := range cfg.Peers {
		if p.ID == cfg.ID {
			found = true
			if p.RaftAddr != cfg.RaftAdvertise {
				flag, addr := "--raft-addr", cfg.RaftAddr
				if cfg.RaftAdvertise != cfg.RaftAddr {
					flag, addr = "--raft-advertise", cfg.RaftAdvertise
				}
				return nil, fmt.Errorf("--peers gives %s the address %s but %s is %s", p.ID, p.RaftAddr, flag, addr)
			}
		} else if p.RaftAddr == cfg.RaftAdvertise {
			return nil, fmt.Errorf("--peers gives this node's raft address %s to %s", p.RaftAddr, p.ID)
		}
	}
	if cfg.Bootstrap && len(cfg.Peers) == 0 {
		return nil, errors.New("--bootstrap needs --peers: the voters of the new cluster, this node included")
	}
	if cfg.Bootstrap && !found {
		return nil, fmt.Errorf("--peers does not include this node's id %s", cfg.ID)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = cfg.Logger.Named("raft")
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = DefaultHeartbeatTimeout, DefaultElectionTimeout, DefaultLeaderLease
	setDuration(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDuration(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDuration(&rc.LeaderLeaseTimeout, cfg.LeaderLease)
	setDuration(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.MaxAppendEntries = 512
	if cfg.MaxAppendEntries > 0 {
		rc.MaxAppendEntries = cfg.MaxAppendEntries
	}
	// Let many concurrent Apply calls queue so the leader commits them in one
	// log write and one AppendEntries round (group commit).
	rc.BatchApplyCh = true
	notifyCh := make(chan bool, 16)
	rc.NotifyCh = notifyCh
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	// Touch the disk only once everything given has been checked.
	if err := claimDataDir(cfg.DataDir, cfg.ID); err != nil {
		return nil, err
	}

	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.DataDir, raftDBFile),
		BoltOptions: &bbolt.Options{
			Timeout: time.Second,
			// The map freelist is not written on every commit; it is rebuilt
			// by a scan when the file is opened.
			NoFreelistSync: true,
			FreelistType:   bbolt.FreelistMapType,
		},
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open log store: %s is locked by another process", filepath.Join(cfg.DataDir, raftDBFile))
		}
		return nil, fmt.Errorf("open log store: %w", err)
	}
	logs, err := raft.NewLogCache(1024, store)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, snapshotsDir), retainSnapshots, cfg.Logger.Named("snapshots"))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	if existing {
		if err := checkStoresAgree(cfg, store, snaps); err != nil {
			store.Close()
			return nil, err
		}
	}
	if !existing && len(cfg.Peers) == 0 {
		store.Close()
		return nil, fmt.Errorf("data dir %s is empty and no --peers were given: give the cluster's members as --peers (with --bootstrap to form a new cluster) so the node can check that none of them still counts it as a voter", cfg.DataDir)
	}
	// The incarnation lives in raft.db, so wiping the raft state loses it
	// too; it is stored before the node answers any probe.
	incarnation, err := loadIncarnation(store)
	if err != nil {
		store.Close()
		return nil, err
	}
	record, err := loadBootstrapRecord(store)
	if err != nil {
		store.Close()
		return nil, err
	}
	var advertise net.Addr // nil: the address the listener got
	if cfg.RaftAdvertise != cfg.RaftAddr {
		if advertise, err = net.ResolveTCPAddr("tcp", cfg.RaftAdvertise); err != nil {
			store.Close()
			return nil, fmt.Errorf("resolve --raft-advertise %s: %w", cfg.RaftAdvertise, err)
		}
	}
	var ttls *transportTLS
	if cfg.TLS != nil {
		ttls = &transportTLS{src: cfg.TLS, logger: cfg.Logger.Named("transport")}
		for _, p := range cfg.Peers {
			ttls.peers = append(ttls.peers, p.ID)
		}
	}
	stream, err := newStreamLayer(cfg.RaftAddr, advertise, ttls)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen on --raft-addr %s: %w", cfg.RaftAddr, err)
	}
	fail := func(err error) (*Node, error) {
		stream.Close()
		store.Close()
		return nil, err
	}

	n := &Node{cfg: cfg, store: store, snaps: snaps, logger: cfg.Logger, notifyCh: notifyCh, stop: make(chan struct{}),
		incarnation: incarnation, stream: stream}
	n.record.Store(&record)
	doBootstrap := false
	if existing {
		cfg.Logger.Info("rejoining with existing state", "data_dir", cfg.DataDir)
	} else {
		var proposed map[string]string
		if cfg.Bootstrap {
			proposed = proposal(cfg.Peers)
		}
		stream.setProbeInfo(func() ProbeInfo {
			return ProbeInfo{ID: cfg.ID, Incarnation: incarnation, WaitingToBootstrap: cfg.Bootstrap, Proposed: proposed, Bootstrap: *n.record.Load(),
				MaxCommandVersion: n.maxCommandVersion()}
		})
		d, err := n.probeUntilDecided(ctx)
		if err != nil {
			return fail(err)
		}
		switch d.Action {
		case refuse:
			if d.Why != "" {
				return fail(fmt.Errorf("data dir %s is empty and %s", cfg.DataDir, d.Why))
			}
			return fail(fmt.Errorf("data dir %s is empty but peer %s still counts node %s as a voter, which may have voted and acknowledged writes this data dir forgot: "+
				"run `ctl peers remove %s` against the cluster, then start this node with an empty data dir and add it back with `ctl peers add %s %s`",
				cfg.DataDir, d.Peer, cfg.ID, cfg.ID, cfg.ID, cfg.RaftAdvertise))
		case bootstrap:
			if err := storeBootstrapRecord(store, d.Record); err != nil {
				return fail(err)
			}
			n.record.Store(&d.Record)
			doBootstrap = true
		case waitToBeAdded:
			if d.Record != nil {
				// The cluster counts this node as a voter that never held
				// state: start empty and let its leader bring entry 1 on
				// (bootstrapping from our own --peers could write an entry 1
				// that differs from the cluster's).
				if err := storeBootstrapRecord(store, d.Record); err != nil {
					return fail(err)
				}
				n.record.Store(&d.Record)
				cfg.Logger.Info("peer bootstrapped the cluster counting this node as new: starting empty, the leader brings it the log", "peer", d.Peer)
				break
			}
			cfg.Logger.Info("no peer counts this node as a member: starting empty, waiting to be added by a running cluster (ctl peers add)")
		}
	}

	stream.startRaft()
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 5,
		Timeout: 10 * time.Second,
		Logger:  cfg.Logger.Named("transport"),
	})
	n.transport = transport
	fail = func(err error) (*Node, error) {
		transport.Close()
		store.Close()
		return nil, err
	}
	if doBootstrap {
		// Every bootstrapper proposed the same --peers (decideStart); in id
		// order they write the same entry 1.
		var servers []raft.Server
		for _, p := range cfg.Peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
		if err := raft.BootstrapCluster(rc, logs, store, snaps, transport, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
		cfg.Logger.Info("bootstrapped a new cluster", "peers", len(servers))
	}

	fatal := make(chan error, 1)
	// The FSM stops applying for good at a committed command this build
	// does not know; the node passes the reason on through Fatal.
	cfg.FSM.OnHalt(func(err error) {
		select {
		case fatal <- err:
		default:
		}
	})
	var rf raft.FSM = &raftFSM{f: cfg.FSM}
	if cfg.wrapFSM != nil {
		rf = cfg.wrapFSM(rf)
	}
	r, err := raft.NewRaft(rc, rf, logs, store, snaps, transport)
	if err != nil {
		select {
		case ferr := <-fatal:
			// The FSM refused the local snapshot for good (taken by a newer
			// build): say that, not raft's "failed to load any snapshots".
			return fail(ferr)
		default:
		}
		return fail(fmt.Errorf("start raft: %w", err))
	}
	n.raft = r
	stream.watchMembers(r)
	n.fatal = fatal
	stream.setProbeInfo(n.probeInfo)
	n.verifier = newVerifyBatcher(func() error { return r.VerifyLeader().Error() })
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

// probeInfo is a running node's probe answer.
func (n *Node) probeInfo() ProbeInfo {
	info := ProbeInfo{ID: n.cfg.ID, Incarnation: n.incarnation, Bootstrap: *n.record.Load(), MaxCommandVersion: n.maxCommandVersion()}
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if info.Members == nil {
			info.Members = map[string]string{}
		}
		info.Members[string(s.ID)] = string(s.Address)
	}
	info.HasState = len(info.Members) > 0 || n.raft.LastIndex() > 0
	_, leader := n.raft.LeaderWithID()
	info.Leader = string(leader)
	return info
}

// maxCommandVersion is what probe answers advertise.
func (n *Node) maxCommandVersion() uint32 { return n.versioned().MaxCommandVersion() }

// probeLogEvery is how often a node waiting on its peers says so.
const probeLogEvery = 5 * time.Second

// probeUntilDecided probes the other peers, a round every probeInterval,
// until decideStart's verdict is not keepWaiting or ctx ends. It probes
// --peers and every member an answer names (--peers may be stale).
func (n *Node) probeUntilDecided(ctx context.Context) (startDecision, error) {
	const probeInterval = 250 * time.Millisecond
	targets := map[string]string{}
	for _, p := range n.cfg.Peers {
		if p.ID != n.cfg.ID {
			targets[p.ID] = p.RaftAddr
		}
	}
	var lastLog, lastWarn time.Time
	lastWhy := ""
	for {
		answers, odd := n.probeRound(ctx, targets)
		d := decideStart(n.cfg.Bootstrap, n.cfg.ID, n.incarnation, n.cfg.Peers, answers)
		if d.Action != keepWaiting {
			return d, nil
		}
		addMembers(targets, n.cfg.ID, answers)
		// The status when it changes (at most once a second) and every
		// probeLogEvery; warnings every probeLogEvery.
		if since := time.Since(lastLog); since >= probeLogEvery || (d.Why != lastWhy && since >= time.Second) {
			lastLog, lastWhy = time.Now(), d.Why
			n.logger.Info("empty data dir: asking the peers before starting raft", "bootstrap", n.cfg.Bootstrap, "status", d.Why)
		}
		if len(odd) > 0 && time.Since(lastWarn) >= probeLogEvery {
			lastWarn = time.Now()
			for _, o := range odd {
				n.logger.Warn("probe answered by an unexpected node", "peer", o.id, "addr", o.addr, "answered_id", o.answered)
			}
		}
		select {
		case <-ctx.Done():
			return startDecision{}, fmt.Errorf("stopped while waiting for the peers to answer: %w", ctx.Err())
		case <-time.After(probeInterval):
		}
	}
}

// addMembers adds to targets every member the answers name that targets
// lacks, taking its address from the answers in id order.
func addMembers(targets map[string]string, self string, answers map[string]ProbeInfo) {
	ids := make([]string, 0, len(answers))
	for id := range answers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for m, addr := range answers[id].Members {
			if _, ok := targets[m]; !ok && m != self {
				targets[m] = addr
			}
		}
	}
}

// oddAnswer is a probe answered under another id, or without an incarnation.
type oddAnswer struct{ id, addr, answered string }

// probeRound asks every target (id → raft address) at once and returns the
// answers that came back; a target answering under another id, or without
// an incarnation, counts as no answer and is returned in odd.
func (n *Node) probeRound(ctx context.Context, targets map[string]string) (map[string]ProbeInfo, []oddAnswer) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	answers := map[string]ProbeInfo{}
	var odd []oddAnswer
	for id, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := n.stream.probePeer(ctx, addr)
			if err != nil {
				n.logger.Debug("probe failed", "peer", id, "addr", addr, "error", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if info.ID != id || info.Incarnation == "" {
				odd = append(odd, oddAnswer{id: id, addr: addr, answered: info.ID})
				return
			}
			answers[id] = info
		}()
	}
	wg.Wait()
	sort.Slice(odd, func(i, j int) bool { return odd[i].id < odd[j].id })
	return answers, odd
}

// raftCurrentTermKey is the key under which hashicorp/raft keeps the
// current term in its stable store (keyCurrentTerm in raft.go).
const raftCurrentTermKey = "CurrentTerm"

// checkStoresAgree refuses a data dir whose stores show that part of it
// was lost: raft.db (the log, the term and the vote) beside snapshots that
// only a node with a term could have written, or a log compacted past
// entries that no snapshot covers. Raft would start the first with term 0
// and no vote record (a voter that forgot its vote and the log after its
// snapshot) and cannot start the second.
func checkStoresAgree(cfg Config, store *raftboltdb.BoltStore, snaps raft.SnapshotStore) error {
	term, err := store.GetUint64([]byte(raftCurrentTermKey))
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return fmt.Errorf("read current term: %w", err)
	}
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	first, err := store.FirstIndex()
	if err != nil {
		return fmt.Errorf("read first log index: %w", err)
	}
	recovery := fmt.Sprintf("run `ctl peers remove %s` against the cluster, then empty this data dir, start the node and add it back with `ctl peers add %s %s`",
		cfg.ID, cfg.ID, cfg.RaftAdvertise)
	switch {
	case term == 0 && len(list) > 0:
		return fmt.Errorf("data dir %s holds snapshots but its %s has no term or vote (it was lost or replaced), so node %s may have voted and acknowledged writes it forgot: %s",
			cfg.DataDir, raftDBFile, cfg.ID, recovery)
	case first > 1 && len(list) == 0:
		return fmt.Errorf("data dir %s holds a raft log starting at index %d but no snapshot of the entries before it (%s/ was lost), so node %s cannot rebuild its state: %s",
			cfg.DataDir, first, snapshotsDir, cfg.ID, recovery)
	}
	return nil
}

const (
	incarnationKey = "gk_incarnation"
	bootstrapKey   = "gk_bootstrap"
)

// loadIncarnation returns the store's incarnation, creating it first.
func loadIncarnation(store *raftboltdb.BoltStore) (string, error) {
	v, err := store.Get([]byte(incarnationKey))
	if err == nil && len(v) > 0 {
		return string(v), nil
	}
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return "", fmt.Errorf("read incarnation: %w", err)
	}
	inc, err := newIncarnation()
	if err != nil {
		return "", err
	}
	if err := store.Set([]byte(incarnationKey), []byte(inc)); err != nil {
		return "", fmt.Errorf("store incarnation: %w", err)
	}
	return inc, nil
}

// loadBootstrapRecord returns the stored bootstrap record (nil: none).
func loadBootstrapRecord(store *raftboltdb.BoltStore) (map[string]string, error) {
	v, err := store.Get([]byte(bootstrapKey))
	if errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bootstrap record: %w", err)
	}
	var rec map[string]string
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode bootstrap record: %w", err)
	}
	return rec, nil
}

func storeBootstrapRecord(store *raftboltdb.BoltStore, rec map[string]string) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode bootstrap record: %w", err)
	}
	if err := store.Set([]byte(bootstrapKey), b); err != nil {
		return fmt.Errorf("store bootstrap record: %w", err)
	}
	return nil
}

func setDuration(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// watchLeadership runs OnLeader while this node leads.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	var run *leaderRun
	stopLeading := func() {
		n.readyTerm.Store(0)
		if run != nil {
			run.cancel()
			<-run.done
			run = nil
		}
	}
	defer stopLeading()
	for {
		select {
		case <-n.stop:
			return
		case leader := <-n.notifyCh:
			if !leader {
				n.logger.Info("lost leadership")
				stopLeading()
			} else if run == nil {
				run = n.startLeading()
			} else if run.term != n.raft.CurrentTerm() {
				// Lost and regained leadership between two looks: start over
				// with a fresh barrier in the new term.
				stopLeading()
				run = n.startLeading()
			}
		}
	}
}

type leaderRun struct {
	term   uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// startLeading applies every earlier entry with a barrier, marks the node
// ready and runs OnLeader until the returned run is cancelled.
func (n *Node) startLeading() *leaderRun {
	ctx, cancel := context.WithCancel(context.Background())
	term := n.raft.CurrentTerm()
	run := &leaderRun{term: term, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		before := n.raft.LastIndex()
		for ctx.Err() == nil {
			err := n.raft.Barrier(defaultTimeout).Error()
			if err == nil {
				break
			}
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The barrier's future is released by the FSM goroutine once every
		// earlier entry was applied, but raft's applied index is set by its
		// own goroutine when it queues the batch to the FSM (before or
		// after that, racing with the release; it can be ahead of the FSM,
		// never behind it for long). Wait until it has passed the entries
		// that were there before the barrier, so a ready leader never
		// reports an applied index behind its barrier (its FSM state is
		// already at least there, since the barrier was released).
		for n.raft.AppliedIndex() <= before && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
		if n.raft.CurrentTerm() != term {
			return // leadership changed hands during the barrier
		}
		n.readyTerm.Store(term)
		n.logger.Info("leading", "term", term)
		if n.cfg.OnLeader != nil {
			n.cfg.OnLeader(ctx)
		}
	}()
	return run
}

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr is the raft address the other members reach this node at
// (--raft-advertise if given, else --raft-addr).
func (n *Node) RaftAddr() string { return n.cfg.RaftAdvertise }

// Leader returns the current leader's id and raft address, if known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node leads and has caught up (barrier done).
func (n *Node) IsLeader() bool {
	t := n.readyTerm.Load()
	return t != 0 && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == t
}

func (n *Node) notLeader() error {
	id, addr := n.Leader()
	if id == n.cfg.ID {
		// Raft already sees us as leader but the barrier is not done.
		return ErrNotReady
	}
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

func timeoutFrom(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return defaultTimeout
}

// Apply proposes cmd and waits until it is applied on this node, returning
// the FSM's response. On a follower it returns an error matching ErrNotLeader.
// A ctx already ended proposes nothing: its caller has gone, or its stream
// was cut (a client certificate that expired mid-stream), and nothing may
// be applied on its behalf after that.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	futures, errs := n.proposeGated(ctx, [][]byte{cmd})
	if errs[0] != nil {
		return nil, errs[0]
	}
	return n.result(futures[0])
}

// result waits for an applied entry's response. An error response (the
// FSM halted before the entry: its outcome is unknown on this node) is
// returned as the error.
func (n *Node) result(f raft.ApplyFuture) (any, error) {
	if err := f.Error(); err != nil {
		return nil, n.applyError(err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, fmt.Errorf("apply: %w", err)
	}
	return f.Response(), nil
}

// ApplyMany proposes every command, each as its own log entry (raft commits
// queued entries together), then waits for all of them. Results and errors
// are index-aligned with cmds. A ctx already ended proposes nothing (Apply).
func (n *Node) ApplyMany(ctx context.Context, cmds [][]byte) ([]any, []error) {
	out, errs := make([]any, len(cmds)), make([]error, len(cmds))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("apply: %w", err)
		}
		return out, errs
	}
	if n.raft.State() != raft.Leader {
		err := n.notLeader()
		for i := range errs {
			errs[i] = err
		}
		return out, errs
	}
	futures, errs := n.proposeGated(ctx, cmds)
	for i, f := range futures {
		if errs[i] == nil {
			out[i], errs[i] = n.result(f)
		}
	}
	return out, errs
}

func (n *Node) applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("apply: %w", ErrOutcomeUnknown)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("apply: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("apply: %w", err)
}

// VerifyRead confirms, by a round of contact with a quorum, that this node
// still leads and has applied everything committed before its term, so a read
// of the local state right after it is linearizable.
func (n *Node) VerifyRead(ctx context.Context) error {
	ready := n.readyTerm.Load()
	if ready == 0 || !n.IsLeader() {
		return n.notLeader()
	}
	// Concurrent reads share one round of VerifyLeader, each a round that
	// started after it arrived (see verifyBatcher).
	if err := n.verifier.do(ctx); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return n.notLeader()
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("verify leader: %w", err)
	}
	// The round proved leadership in the current term, but leadership may
	// have been lost and regained meanwhile: a new term whose barrier is not
	// done yet has not applied everything committed before it. Serve the
	// read only if this node is still ready, in the very term it was ready
	// in before the round.
	if n.readyTerm.Load() != ready || !n.IsLeader() {
		return n.notLeader()
	}
	return nil
}

// StateIndex extends fsmIndex, the last raft index handed to the FSM,
// over the no-op and barrier entries after it that raft has applied (it
// does not hand those to the FSM, and they change nothing): the FSM's
// state is exactly the state at the index returned. When nothing else is
// in flight it is raft's applied index. 0 stays 0 (not known).
func (n *Node) StateIndex(fsmIndex uint64) uint64 {
	if fsmIndex == 0 {
		return 0
	}
	applied := n.raft.AppliedIndex()
	idx := fsmIndex
	for steps := 0; idx < applied && steps < 1024; steps++ {
		var l raft.Log
		if err := n.store.GetLog(idx+1, &l); err != nil || (l.Type != raft.LogNoop && l.Type != raft.LogBarrier) {
			break
		}
		idx++
	}
	return idx
}

// Status is a snapshot of this node's raft view.
type Status struct {
	ID, State          string
	LeaderID           string
	LeaderAddr         string
	Term               uint64
	CommitIndex        uint64
	AppliedIndex       uint64
	LastLogIndex       uint64
	LastSnapshotIndex  uint64
	LastContact        string
	NumPeers           int
	ProtocolVersion    int
	ConfigurationIndex uint64
}

// Status reports this node's raft state.
func (n *Node) Status() Status {
	stats := n.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	id, addr := n.Leader()
	return Status{
		ID:                n.cfg.ID,
		State:             stateName(n.raft.State()),
		LeaderID:          id,
		LeaderAddr:        addr,
		Term:              num("term"),
		CommitIndex:       num("commit_index"),
		AppliedIndex:      n.raft.AppliedIndex(),
		LastLogIndex:      n.raft.LastIndex(),
		LastSnapshotIndex: num("last_snapshot_index"),
		LastContact:       stats["last_contact"],
	}
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// Member is one server in the raft configuration.
type Member struct {
	ID       string
	RaftAddr string
	Suffrage string
}

// Members returns the current raft configuration, ordered by id.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), RaftAddr: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	sortMembers(out)
	return out, nil
}

func sortMembers(m []Member) {
	sort.Slice(m, func(i, j int) bool { return m[i].ID < m[j].ID })
}

// changeMembers runs change with the current members, on the leader only
// and under gateMu, so that no command above the agreed version is
// proposed while the configuration changes.
func (n *Node) changeMembers(change func(members []Member) error) error {
	if !n.IsLeader() {
		return n.notLeader()
	}
	n.gateMu.Lock()
	defer n.gateMu.Unlock()
	members, err := n.Members()
	if err != nil {
		return err
	}
	return change(members)
}

// AddVoter adds (or re-addresses) a voting member. Leader only. Once the
// cluster wrote a command above the base version, the node must answer a
// probe saying it applies that version. A node that is not a member has
// whatever an earlier life of its id published forgotten first.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := ValidateAddr("raft address", addr); err != nil {
		return err
	}
	return n.changeMembers(func(members []Member) error {
		member := false
		for _, m := range members {
			if m.ID == id && m.RaftAddr == addr {
				return nil
			}
			if m.ID != id && m.RaftAddr == addr {
				return fmt.Errorf("raft address %s already belongs to member %s", addr, m.ID)
			}
			member = member || m.ID == id
		}
		if err := n.checkJoin(ctx, id, addr); err != nil {
			return err
		}
		if !member {
			if err := n.forgetAdmin(ctx, id); err != nil {
				return fmt.Errorf("forget what an earlier %s published: %w", id, err)
			}
		}
		if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutFrom(ctx)).Error(); err != nil {
			return n.membershipError(err, "add voter "+id, fmt.Sprintf("whether %s is a member (adding it again is harmless)", id))
		}
		return nil
	})
}

// RemoveServer removes a member, then forgets what it published (its
// address and command version). Leader only.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.changeMembers(func(members []Member) error {
		found := false
		for _, m := range members {
			found = found || m.ID == id
		}
		if !found {
			return fmt.Errorf("%s is not a member of the cluster", id)
		}
		if err := n.raft.RemoveServer(raft.ServerID(id), 0, timeoutFrom(ctx)).Error(); err != nil {
			return n.membershipError(err, "remove "+id, fmt.Sprintf("whether %s is still a member", id))
		}
		// Its pooled raft connections to this node end now, not at the
		// next periodic check.
		n.stream.recheckMembers()
		if id == n.cfg.ID {
			return nil // no longer the leader; the next AddVoter of id forgets
		}
		if err := n.forgetAdmin(ctx, id); err != nil {
			// Removed all the same: an AddVoter of id forgets it first.
			n.logger.Warn("removed, but could not forget what it published", "id", id, "error", err)
		}
		return nil
	})
}

// membershipError explains a failed membership change (what): not the
// leader, or leadership lost before the change was known to be committed,
// so that only the member list (`ctl peers list` shows check) tells
// whether it took effect.
func (n *Node) membershipError(err error, what, check string) error {
	if errors.Is(err, raft.ErrNotLeader) {
		return n.notLeader()
	}
	if errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%s: leadership changed before the change was known to be committed, so it may or may not have taken effect: `ctl peers list` shows %s: %w", what, check, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Snapshot asks raft to take a snapshot now (and truncate the log).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// SnapshotMeta describes a snapshot opened by SaveSnapshot.
type SnapshotMeta struct {
	Index, Term uint64
	Size        int64
}

// SaveSnapshot takes a snapshot of the replicated state (raft's user
// snapshot: the FSM at its last applied index, also written to the local
// snapshot store) and opens it for reading; the caller closes the reader.
// If nothing was applied since the last snapshot, that one is opened.
func (n *Node) SaveSnapshot() (SnapshotMeta, io.ReadCloser, error) {
	f := n.raft.Snapshot()
	err := f.Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return n.openLatestSnapshot()
	}
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("open snapshot: %w", err)
	}
	return SnapshotMeta{Index: meta.Index, Term: meta.Term, Size: meta.Size}, rc, nil
}

func (n *Node) openLatestSnapshot() (SnapshotMeta, io.ReadCloser, error) {
	list, err := n.snaps.List()
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return SnapshotMeta{}, nil, errors.New("no snapshot available yet")
	}
	meta, rc, err := n.snaps.Open(list[0].ID)
	if err != nil {
		return SnapshotMeta{}, nil, fmt.Errorf("open snapshot %s: %w", list[0].ID, err)
	}
	return SnapshotMeta{Index: meta.Index, Term: meta.Term, Size: meta.Size}, rc, nil
}

// RestoreSnapshot replaces the replicated state, on every member, with the
// snapshot data (which the caller has vetted: raft stops the node if the
// FSM refuses it). Only the leader can do it. The cluster's membership is
// kept; the log continues past max(current, index)+1, so fences keep
// growing. It returns the new last log index. A ctx already ended restores
// nothing (Apply).
func (n *Node) RestoreSnapshot(ctx context.Context, index, term uint64, data []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if !n.IsLeader() {
		return 0, n.notLeader()
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Term: term, Size: int64(len(data))}
	if err := n.raft.Restore(meta, bytes.NewReader(data), timeoutFrom(ctx)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("restore: %w", ErrOutcomeUnknown)
		}
		if errors.Is(err, raft.ErrEnqueueTimeout) {
			return 0, fmt.Errorf("restore: %w", context.DeadlineExceeded)
		}
		return 0, fmt.Errorf("restore: %w", err)
	}
	return n.raft.LastIndex(), nil
}

// Shutdown stops leadership work, raft, the transport and the stores.
func (n *Node) Shutdown() error {
	var err error
	n.shutOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		f := n.raft.Shutdown()
		// Raft's goroutines may be blocked on a peer's connection for
		// minutes (a snapshot to a frozen peer); Shutdown waits for them.
		n.stream.cutRaftConns()
		if e := f.Error(); e != nil {
			err = fmt.Errorf("raft shutdown: %w", e)
		}
		if e := n.transport.Close(); e != nil && err == nil {
			err = fmt.Errorf("close transport: %w", e)
		}
		if e := n.store.Close(); e != nil && err == nil {
			err = fmt.Errorf("close log store: %w", e)
		}
	})
	return err
}

// WaitFor polls cond until it holds or ctx ends; a helper for callers that
// must wait on raft state (e.g. a leader to appear).
func WaitFor(ctx context.Context, every time.Duration, cond func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
