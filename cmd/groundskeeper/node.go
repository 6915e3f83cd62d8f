package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	gkrpc "github.com/groundskeeper-dev/groundskeeper/rpc"
)

// nodeConfig is everything needed to run one admin node.
type nodeConfig struct {
	ID, DataDir, RaftAddr, GRPCAddr string
	Peers                           []cluster.Peer
	Logger                          hclog.Logger
}

// adminNode is a running admin: raft, the replicated state and the gRPC API.
type adminNode struct {
	raft   *cluster.Node
	fsm    *fsm.FSM
	server *gkrpc.Server
	grpc   *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startNode(cfg nodeConfig) (*adminNode, error) {
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on --grpc-addr %s: %w", cfg.GRPCAddr, err)
	}
	n := &adminNode{fsm: fsm.New()}
	n.raft, err = cluster.Open(cluster.Config{
		ID: cfg.ID, RaftAddr: cfg.RaftAddr, DataDir: cfg.DataDir, Peers: cfg.Peers,
		FSM: n.fsm, Logger: cfg.Logger,
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	n.server = gkrpc.NewServer(n.raft, n.fsm, cfg.GRPCAddr, cfg.Logger.Named("rpc"))
	n.grpc = grpc.NewServer()
	n.server.Register(n.grpc)
	reflection.Register(n.grpc)
	ctx, cancel := context.WithCancel(context.Background())
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
		n.server.PublishAddress(ctx)
	}()
	cfg.Logger.Info("admin node started", "id", cfg.ID, "raft_addr", cfg.RaftAddr, "grpc_addr", cfg.GRPCAddr)
	return n, nil
}

// stop shuts the node down: API first, then raft and its stores.
func (n *adminNode) stop() error {
	n.cancel()
	stopped := make(chan struct{})
	go func() { n.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		n.grpc.Stop()
	}
	n.wg.Wait()
	n.server.Close()
	return n.raft.Shutdown()
}
