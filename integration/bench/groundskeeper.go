package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

type gkCluster struct {
	procSet
	clients []pb.AdminClient
	ids     []string
	addrs   []string
	// creds is how the load generator dials the admins: plaintext, or
	// mutual TLS with an operator certificate when tls.
	creds grpc.DialOption
	tls   bool
}

func startGroundskeeper(ctx context.Context, bin, dir string, tls bool) (*gkCluster, error) {
	name := "plain-"
	if tls {
		name = "tls-"
	}
	g, _, err := startAdmins(ctx, adminSpec{bin: bin, dir: dir, name: name, tls: tls})
	return g, err
}

// connectGroundskeeper loads a cluster someone else started.
func connectGroundskeeper(ctx context.Context, addrs []string) (*gkCluster, error) {
	g := &gkCluster{creds: grpc.WithTransportCredentials(insecure.NewCredentials())}
	if err := g.connect(ctx, addrs); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *gkCluster) connect(ctx context.Context, addrs []string) error {
	g.addrs = addrs
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, g.creds)
		if err != nil {
			return err
		}
		g.conns = append(g.conns, conn)
		g.clients = append(g.clients, pb.NewAdminClient(conn))
	}
	// Ready when every node knows every member's address (forwarding works).
	err := poll(ctx, 30*time.Second, func() error {
		g.ids = g.ids[:0]
		for _, c := range g.clients {
			st, err := c.Status(ctx, &pb.StatusRequest{})
			if err != nil {
				return err
			}
			if st.Tls != g.tls {
				return fmt.Errorf("admin %s reports tls=%v, the benchmark asked for %v", st.NodeId, st.Tls, g.tls)
			}
			g.ids = append(g.ids, st.NodeId)
			for _, m := range st.Members {
				if m.State == "unreachable" || m.GrpcAddr == "" || st.LeaderId == "" {
					return fmt.Errorf("member %s not ready", m.Id)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("groundskeeper cluster did not form: %w", err)
	}
	return nil
}

func (g *gkCluster) name() string { return "groundskeeper" }
func (g *gkCluster) nodes() int   { return len(g.clients) }

func (g *gkCluster) op(ctx context.Context, _, node int, seq uint64) error {
	_, err := g.clients[node].SubmitTask(ctx, &pb.SubmitTaskRequest{
		Type:     fsmpb.TaskType_TASK_TYPE_VACUUM,
		VolumeId: uint32(seq%(1<<32-1)) + 1,
	})
	return err
}

func (g *gkCluster) leader(ctx context.Context) (int, error) {
	st, err := g.clients[0].Status(ctx, &pb.StatusRequest{LocalOnly: true})
	if err != nil {
		return 0, err
	}
	for i, id := range g.ids {
		if id == st.LeaderId {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no leader")
}
