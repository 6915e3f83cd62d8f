package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// waitTimeout bounds every poll; generous because the tests may share two
// cores with the race detector and other builds.
const waitTimeout = 20 * time.Second

// adminNode mirrors cmd/groundskeeper/node.go: raft + FSM + the gRPC API +
// the loop that publishes this node's client address.
type adminNode struct {
	id, raftAddr, grpcAddr, dataDir string

	raft   *cluster.Node
	fsm    *fsm.FSM
	server *Server
	grpc   *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	conn   *grpc.ClientConn // a client connection to this node's API
	client pb.AdminClient
}

func (n *adminNode) running() bool { return n.raft != nil }

// startAdmin starts an admin node; with bootstrap, peers form a new
// cluster, else they are the cluster this node waits to be added to.
func startAdmin(t testing.TB, id, raftAddr, dataDir string, peers []cluster.Peer, bootstrap bool) *adminNode {
	t.Helper()
	return startAdminPublishing(t, id, raftAddr, dataDir, peers, bootstrap, true)
}

// startAdminPublishing is startAdmin, without the loop that publishes the
// node's address unless publish.
func startAdminPublishing(t testing.TB, id, raftAddr, dataDir string, peers []cluster.Peer, bootstrap, publish bool) *adminNode {
	t.Helper()
	n, err := openAdmin(id, raftAddr, dataDir, peers, bootstrap, publish)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openAdmin is startAdmin for use off the test goroutine: an empty node
// waits in cluster.Open for its peers, so a new cluster's nodes start at once.
func openAdmin(id, raftAddr, dataDir string, peers []cluster.Peer, bootstrap, publish bool) (*adminNode, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &adminNode{id: id, raftAddr: raftAddr, grpcAddr: lis.Addr().String(), dataDir: dataDir, fsm: fsm.New()}
	logger := testutil.Logger(id)
	openCtx, openCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer openCancel()
	n.raft, err = cluster.Open(openCtx, cluster.Config{
		ID: id, RaftAddr: raftAddr, DataDir: dataDir, Peers: peers, Bootstrap: bootstrap, FSM: n.fsm, Logger: logger,
	})
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("open %s: %w", id, err)
	}
	n.server = NewServer(n.raft, n.fsm, n.grpcAddr, logger.Named("rpc"))
	n.grpc = grpc.NewServer(ServerOptions()...)
	n.server.SetSpoolDir(dataDir)
	n.server.Register(n.grpc)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = n.grpc.Serve(lis)
	}()
	if publish {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.server.PublishAddress(ctx)
		}()
	}
	n.conn, err = grpc.NewClient(n.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.cancel()
		n.grpc.Stop()
		n.wg.Wait()
		n.server.Close()
		n.raft.Shutdown()
		return nil, err
	}
	n.client = pb.NewAdminClient(n.conn)
	return n, nil
}

// stop shuts the node down as cmd/groundskeeper does: API first, then raft.
func (n *adminNode) stop() error {
	if !n.running() {
		return nil
	}
	n.cancel()
	StopGRPC(n.grpc, 3*time.Second)
	n.wg.Wait()
	n.server.Close()
	n.conn.Close()
	err := n.raft.Shutdown()
	n.raft = nil
	return err
}

type testCluster struct {
	t     *testing.T
	nodes []*adminNode
}

// newCluster starts three admin nodes and waits until a leader is ready and
// every node's gRPC address has been published to every node.
func newCluster(t *testing.T) *testCluster {
	t.Helper()
	var peers []cluster.Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("a%d", i), RaftAddr: testutil.FreeAddr(t)})
	}
	return newClusterOf(t, peers)
}

// newClusterOf bootstraps a new cluster of peers (started at once) and
// waits for a leader and every node's published address.
func newClusterOf(t *testing.T, peers []cluster.Peer) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	// Cleanups run last-registered first: the temporary directory's
	// removal (registered by the first TempDir) must come after the nodes
	// stop, or a node still writing its data dir makes RemoveAll fail.
	base := t.TempDir()
	t.Cleanup(c.stopAll)
	c.nodes = make([]*adminNode, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		dir := filepath.Join(base, p.ID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nodes[i], errs[i] = openAdmin(p.ID, p.RaftAddr, dir, peers, true, true)
		}()
	}
	wg.Wait()
	var started []*adminNode
	for _, n := range c.nodes {
		if n != nil {
			started = append(started, n)
		}
	}
	c.nodes = started // stopAll must not meet a nil node
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.waitLeader()
	c.waitPublished()
	return c
}

func (c *testCluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *adminNode) { defer wg.Done(); _ = n.stop() }(n)
	}
	wg.Wait()
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.grpcAddr)
	}
	return out
}

// leader returns the index of the running node that is a ready leader and
// that every running node names, or -1.
func (c *testCluster) leader() int {
	leader := -1
	for i, n := range c.nodes {
		if n.running() && n.raft.IsLeader() {
			if leader >= 0 {
				return -1
			}
			leader = i
		}
	}
	if leader < 0 {
		return -1
	}
	for _, n := range c.nodes {
		if n.running() {
			if id, _ := n.raft.Leader(); id != c.nodes[leader].id {
				return -1
			}
		}
	}
	return leader
}

func (c *testCluster) waitLeader() int {
	c.t.Helper()
	l := -1
	waitFor(c.t, "a leader all running nodes agree on", func() bool { l = c.leader(); return l >= 0 })
	return l
}

// followers returns the indexes of the running nodes other than the leader.
func (c *testCluster) followers(leader int) []int {
	var out []int
	for i, n := range c.nodes {
		if i != leader && n.running() {
			out = append(out, i)
		}
	}
	return out
}

// waitPublished polls until every running node's state holds every node's
// gRPC address.
func (c *testCluster) waitPublished() {
	c.t.Helper()
	waitFor(c.t, "every node to publish its gRPC address", func() bool {
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			ok := true
			n.fsm.Read(func(st *fsm.State) {
				for _, m := range c.nodes {
					if a, _ := st.AdminAddr(m.id); a != m.grpcAddr {
						ok = false
					}
				}
			})
			if !ok {
				return false
			}
		}
		return true
	})
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.EventuallyTrue(t, waitTimeout, what, cond)
}

// call runs fn with a per-call timeout, retrying while the server answers
// Unavailable ("retry shortly"), as any client is told to.
func call[T any](t testing.TB, fn func(ctx context.Context) (T, error)) (T, error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := fn(ctx)
		cancel()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return out, err
		}
		t.Logf("retrying after: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
}

func wantCode(t testing.TB, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want code %s", what, err, code)
		return
	}
	if msg := status.Convert(err).Message(); msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("%s: message %q is not one line", what, msg)
	}
}

func taskIDs(tasks []*fsmpb.Task) map[uint64]*fsmpb.Task {
	out := map[uint64]*fsmpb.Task{}
	for _, t := range tasks {
		out[t.Id] = t
	}
	return out
}
