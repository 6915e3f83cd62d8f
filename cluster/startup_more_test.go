package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// TestPartialWipeRefuses: a data dir that lost raft.db (the log, the term
// and the vote) but kept its snapshots, with or without node-id, is a
// wiped voter too: TestWipedVoterRefusesToRejoin's scenario (B down, a task
// acknowledged by L and W, L down, W loses raft.db) must not let W rejoin
// with term 0 and no vote record and elect B. A data dir that lost its snapshots behind a
// compacted log is refused the same way (raft could not rebuild it).
func TestPartialWipeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove []string
		says   string
	}{
		{"raft.db lost", []string{raftDBFile}, "no term or vote"},
		{"raft.db and node-id lost", []string{raftDBFile, nodeIDFile}, "no term or vote"},
		{"snapshots lost", []string{snapshotsDir}, "no snapshot of the entries before it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, func(c *Config) { c.TrailingLogs = 1 })
			l := c.waitLeader()
			b, w := (l+1)%3, (l+2)%3
			c.stop(b)
			task := c.submit(1) // committed by L and W
			c.submit(2)
			waitFor(t, "W to apply both tasks", func() bool { return taskCount(c.nodes[w].fsm) >= 2 })
			if err := c.nodes[w].node.Snapshot(); err != nil {
				t.Fatal(err)
			}
			c.stop(l)
			c.stop(w)
			wCfg := c.nodes[w].cfg
			for _, f := range tc.remove {
				if err := os.RemoveAll(filepath.Join(wCfg.DataDir, f)); err != nil {
					t.Fatal(err)
				}
			}
			c.start(b)
			wCfg.FSM = fsm.New()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := openRefused(ctx, t, wCfg, fmt.Sprintf("%s started after losing %v; it must refuse", wCfg.ID, tc.remove))
			oneSentence(t, err, wCfg.DataDir, tc.says, "ctl peers remove "+wCfg.ID, "ctl peers add "+wCfg.ID+" "+wCfg.RaftAddr)
			// Refused again on the next try: nothing it wrote made the dir look whole.
			openRefused(ctx, t, wCfg, "the second start was not refused")
			c.start(l)
			c.waitLeader()
			for _, i := range []int{l, b} {
				waitFor(t, "the acknowledged task on "+c.nodes[i].cfg.ID, func() bool { return hasTask(c.nodes[i].fsm, task.Id) })
			}
		})
	}
}

// TestVouchedLateStarterTakesClusterLog: a bootstrapper that answered its
// peers' probes and was then slow to start finds them running a cluster
// that counts it as new. It must not bootstrap from its own --peers (here
// stale: another address for a) and so write an entry 1 that differs from
// the cluster's at the same index and term, which log matching would keep:
// it starts empty and the leader brings it the cluster's log.
func TestVouchedLateStarterTakesClusterLog(t *testing.T) {
	peers := []Peer{{"a", testutil.FreeAddr(t)}, {"b", testutil.FreeAddr(t)}, {"c", testutil.FreeAddr(t)}}
	c := &testCluster{t: t}
	for _, p := range peers {
		c.nodes = append(c.nodes, &tnode{cfg: fastConfig(p.ID, p.RaftAddr, filepath.Join(t.TempDir(), p.ID), peers)})
	}
	t.Cleanup(c.shutdownAll)
	cCfg := &c.nodes[2].cfg

	// c's first life: it answers a and b as an empty bootstrapper (its
	// incarnation stored in its raft.db), then stops before it bootstraps.
	if err := claimDataDir(cCfg.DataDir, "c"); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(cCfg.DataDir, raftDBFile))
	if err != nil {
		t.Fatal(err)
	}
	inc, err := loadIncarnation(store)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	fake, err := newStreamLayer(peers[2].RaftAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	fake.setProbeInfo(func() ProbeInfo {
		return ProbeInfo{ID: "c", Incarnation: inc, WaitingToBootstrap: true, Proposed: proposal(peers)}
	})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.open(i) }()
	}
	wg.Wait()
	fake.Close()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.waitLeader()
	task := c.submit(1)

	// c returns with --peers that give a an address it no longer has.
	stale := []Peer{{"a", testutil.FreeAddr(t)}, peers[1], peers[2]}
	cCfg.Peers = stale
	c.start(2)
	c.waitConverged(1)
	if !hasTask(c.nodes[2].fsm, task.Id) {
		t.Fatalf("c caught up without task %d", task.Id)
	}
	want, err := c.nodes[0].node.Members()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to hold the cluster's configuration", func() bool {
		got, err := c.nodes[2].node.Members()
		return err == nil && reflect.DeepEqual(got, want)
	}, func() string {
		got, err := c.nodes[2].node.Members()
		return fmt.Sprintf("c has %+v (%v), the cluster %+v", got, err, want)
	})
}

// TestBootstrappersWithDifferentPeersWait: a and c started with --peers
// a,b,c and b and d with --peers a,b,d, all with --bootstrap, would form two
// clusters sharing a and b if each waited only for its own peers to be
// empty and waiting: nobody bootstraps, and the log says why.
func TestBootstrappersWithDifferentPeersWait(t *testing.T) {
	addr := map[string]string{"a": testutil.FreeAddr(t), "b": testutil.FreeAddr(t), "c": testutil.FreeAddr(t), "d": testutil.FreeAddr(t)}
	set := func(ids ...string) []Peer {
		var out []Peer
		for _, id := range ids {
			out = append(out, Peer{id, addr[id]})
		}
		return out
	}
	abc, abd := set("a", "b", "c"), set("a", "b", "d")
	logs := map[string]*syncBuffer{}
	var cfgs []Config
	for id, ps := range map[string][]Peer{"a": abc, "c": abc, "b": abd, "d": abd} {
		cfg := fastConfig(id, addr[id], filepath.Join(t.TempDir(), id), ps)
		cfg.FSM = fsm.New()
		logs[id] = &syncBuffer{}
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs[id], Level: hclog.Info})
		cfgs = append(cfgs, cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var started []string
	for _, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := Open(ctx, cfg)
			if err == nil {
				mu.Lock()
				started = append(started, cfg.ID)
				mu.Unlock()
				n.Shutdown()
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v, want it to wait", cfg.ID, err)
			}
		}()
	}
	// Each side's log names the other side's proposal; then stop waiting.
	aSays := "peer b proposes the peers a=" + addr["a"] + ",b=" + addr["b"] + ",d=" + addr["d"] + " but this node's --peers are a=" + addr["a"] + ",b=" + addr["b"] + ",c=" + addr["c"]
	bSays := "peer a proposes the peers a=" + addr["a"] + ",b=" + addr["b"] + ",c=" + addr["c"]
	waitFor(t, "a and b to log the other's --peers", func() bool {
		return strings.Contains(logs["a"].String(), aSays) && strings.Contains(logs["b"].String(), bSays)
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("started: %v\na's log:\n%s\nb's log:\n%s", started, logs["a"], logs["b"])
	})
	cancel()
	wg.Wait()
	if len(started) > 0 {
		t.Fatalf("%v bootstrapped although the bootstrappers were given different --peers", started)
	}
}

// TestProbeWarningsRateLimited: a peer address answered by another node is
// worth a warning, but not one per probe round (every 250ms).
func TestProbeWarningsRateLimited(t *testing.T) {
	addr, wrong := testutil.FreeAddr(t), testutil.FreeAddr(t)
	impostor, err := newStreamLayer(wrong, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	impostor.setProbeInfo(func() ProbeInfo { return ProbeInfo{ID: "zz", Incarnation: "x"} })
	cfg := fastConfig("a1", addr, t.TempDir(), []Peer{{"a1", addr}, {"a2", wrong}})
	cfg.FSM = fsm.New()
	var buf syncBuffer
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := Open(ctx, cfg); err == nil {
		n.Shutdown()
		t.Fatal("Open bootstrapped with a peer answering under another id")
	}
	if got := strings.Count(buf.String(), "probe answered by an unexpected node"); got != 1 {
		t.Errorf("%d warnings about the unexpected node in 2s, want 1:\n%s", got, buf.String())
	}
}

func TestAddMembers(t *testing.T) {
	targets := map[string]string{"a": "h:1", "b": "h:2"}
	addMembers(targets, "c", map[string]ProbeInfo{
		"b": {Members: map[string]string{"a": "h:9", "b": "h:2", "c": "h:3", "d": "h:4"}},
		"a": {Members: map[string]string{"d": "h:8", "e": "h:5"}},
	})
	want := map[string]string{"a": "h:1", "b": "h:2", "d": "h:8", "e": "h:5"}
	if !reflect.DeepEqual(targets, want) {
		t.Fatalf("targets %v, want %v (--peers kept, new members added from the answers in id order, self left out)", targets, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
