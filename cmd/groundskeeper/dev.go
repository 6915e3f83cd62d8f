package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// runDev starts a three-node admin quorum in this process and reports what
// happens until interrupted.
func runDev(args []string) error {
	fs := newFlagSet("dev")
	dataDir := fs.String("data-dir", "", "keep state here (default: a temporary directory removed on exit)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	raftPort := fs.Int("raft-port", 7001, "raft port of the first admin (the others use the next ones)")
	grpcPort := fs.Int("grpc-port", 9001, "gRPC port of the first admin (the others use the next ones)")
	logLevel := fs.String("log-level", "warn", "log level of the admins")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
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
	var peers []cluster.Peer
	var cfgs []nodeConfig
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("a%d", i+1)
		raftAddr := fmt.Sprintf("%s:%d", *host, *raftPort+i)
		peers = append(peers, cluster.Peer{ID: id, RaftAddr: raftAddr})
		cfgs = append(cfgs, nodeConfig{
			ID: id, DataDir: filepath.Join(dir, id), RaftAddr: raftAddr, GRPCAddr: fmt.Sprintf("%s:%d", *host, *grpcPort+i),
			Logger: hclog.New(&hclog.LoggerOptions{Name: "admin." + id, Level: level, Output: os.Stderr}),
		})
	}
	var nodes []*adminNode
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	var grpcAddrs []string
	for _, c := range cfgs {
		c.Peers = peers
		n, err := startNode(c)
		if err != nil {
			return fmt.Errorf("start %s: %w", c.ID, err)
		}
		nodes = append(nodes, n)
		grpcAddrs = append(grpcAddrs, c.GRPCAddr)
	}
	admins := strings.Join(grpcAddrs, ",")
	fmt.Printf("groundskeeper dev: three admins running, state in %s\n", dir)
	fmt.Printf("  try: groundskeeper ctl --admin %s status\n", admins)
	fmt.Printf("       groundskeeper ctl --admin %s task submit --type vacuum --volume 7\n", admins)
	fmt.Printf("       groundskeeper ctl --admin %s tasks\n", admins)
	fmt.Println("  Ctrl-C stops everything.")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLeader := ""
	seen := map[uint64]pb.TaskState{}
	for {
		select {
		case s := <-sig:
			fmt.Printf("groundskeeper dev: %s, stopping\n", s)
			return nil
		case <-tick.C:
		}
		for _, n := range nodes {
			if !n.raft.IsLeader() {
				continue
			}
			if id := n.raft.ID(); id != lastLeader {
				fmt.Printf("%s  leader is now %s (term %d)\n", time.Now().Format("15:04:05"), id, n.raft.Status().Term)
				lastLeader = id
			}
			n.fsm.Read(func(st *fsm.State) {
				for _, t := range st.Tasks(fsm.TaskFilter{}) {
					if prev, ok := seen[t.Id]; !ok || prev != t.State {
						fmt.Printf("%s  task %d: %s of volume %d is %s\n", time.Now().Format("15:04:05"), t.Id, fsm.TypeName(t.Type), t.VolumeId, fsm.StateName(t.State))
						seen[t.Id] = t.State
					}
				}
			})
		}
	}
}
