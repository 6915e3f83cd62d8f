package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestSystemWorkersLastHeard: ListWorkers, through a follower too, says
// when the leader last heard from each connected worker, and the time
// moves on with its heartbeats; a worker that went away is listed with
// none.
func TestSystemWorkersLastHeard(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(2))
	s.StartAdmins(admintest.SchedConfig())
	w := s.StartWorker("w1", s.GRPCAddrs(), 1)
	leader := s.WaitConnected("w1")
	follower := (leader + 1) % len(s.Cfgs)
	heard := func() (int64, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := s.AdminClient(follower).ListWorkers(ctx, &pb.ListWorkersRequest{})
		if err != nil {
			return 0, false
		}
		for _, ws := range resp.Workers {
			if ws.Worker.GetId() == "w1" {
				return ws.LastHeardAt, ws.Connected
			}
		}
		return 0, false
	}
	first, connected := heard()
	if !connected || first == 0 {
		t.Fatalf("w1 connected %v, last heard at %d: want a time", connected, first)
	}
	if ago := time.Since(time.Unix(0, first)); ago < -time.Second || ago > 10*time.Second {
		t.Fatalf("w1 last heard %s ago, just after connecting", ago)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "a later heartbeat to move the time on", func() bool {
		at, ok := heard()
		return ok && at > first
	})
	w.Stop()
	testutil.EventuallyTrue(t, admintest.Wait, "w1 to be listed disconnected, with no time", func() bool {
		at, ok := heard()
		return !ok && at == 0
	})
}
