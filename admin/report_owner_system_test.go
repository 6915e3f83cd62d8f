package admin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestSystemSessionCannotReportOnAnotherWorkersAttempt: over real gRPC and
// raft, a session of worker wB that knows the fence of wA's running attempt
// reports it completed with an invented capacity change (the fake
// worker): the ack refuses it and nothing changes; the same report as a
// raft command naming wB is refused NOT_OWNER (every member applies command
// version 3); wA's attempt then completes as usual. wB's welcome lists the
// three admins' addresses, the only ones besides its own a worker follows a
// redirect to.
func TestSystemSessionCannotReportOnAnotherWorkersAttempt(t *testing.T) {
	t.Parallel()
	cfg := admintest.SimConfig(4)
	cfg.CompactDuration = 3 * time.Second
	s := newSystem(t, cfg)
	vid := s.AddOn(admintest.GarbageSpec, 1)
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	testutil.EventuallyTrue(t, admintest.Wait, "every member at command version 3", func() bool {
		return admin.AgreedVersion(s.Node(leader)) >= fsm.OwnerVersion
	})
	s.StartWorker("wA", s.GRPCAddrs(), 1)
	running := s.WaitTask(vid, "compacting on wA", func(t *fsmpb.Task) bool { return admintest.InCompaction(t) && t.WorkerId == "wA" })

	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	leader = s.WaitLeader()
	stream, first, err := s.RawSession(ctx, s.Cfgs[leader].GRPCAddr, &pb.Hello{WorkerId: "wB",
		Capabilities: []fsmpb.TaskType{balanceT}, MaxConcurrent: 1}) // balance: nothing to be given
	if err != nil || first.GetWelcome() == nil {
		t.Fatalf("raw session: %v, first message %v", err, first)
	}
	want := slices.Sorted(slices.Values(s.GRPCAddrs()))
	if got := first.GetWelcome().GetAdminGrpcAddrs(); !slices.Equal(got, want) {
		t.Errorf("welcome lists admins %v; want %v", got, want)
	}

	invented := &fsmpb.CapacityChange{OldSize: admintest.GarbageSpec.Size, NewSize: 1}
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: &pb.TaskCompleted{
		TaskId: running.Id, Fence: running.Fence, Change: invented}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the ack of wB's completion: %v", err)
		}
		if ack := m.GetAck(); ack != nil && ack.TaskId == running.Id {
			if ack.Accepted || !strings.Contains(ack.Error, "another worker") {
				t.Errorf("wB's completion of wA's attempt: ack %v; want it refused", ack)
			}
			break
		}
	}
	unchanged := func(what string) {
		t.Helper()
		now := s.Task(running.Id)
		var change bool
		s.Read(func(st *fsm.State) { change = st.HasUnreportedChange(vid) })
		if now.State != runningS || now.Fence != running.Fence || now.WorkerId != "wA" || change {
			t.Fatalf("after %s: task %s, fence %d, worker %s, capacity change %v; want wA's attempt running, no change",
				what, fsm.StateName(now.State), now.Fence, now.WorkerId, change)
		}
	}
	unchanged("wB's completion over its session")

	// The same report as a raft command naming wB: refused where it is applied.
	res, err := admin.Propose(ctx, s.Node(leader), fsm.CompleteCmd(running.Id, running.Fence, "wB", invented))
	if err != nil {
		t.Fatal(err)
	}
	if rerr := fsm.ResultError(res); !errors.Is(rerr, fsm.ErrNotOwner) {
		t.Errorf("CompleteTask naming wB: %v (code %s); want NOT_OWNER", rerr, res.ErrorCode)
	}
	unchanged("a CompleteTask naming wB")

	done := s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if done.State != completedS || done.WorkerId != "wA" || done.Fence != running.Fence {
		t.Fatalf("task ended %s by %s at fence %d; want completed by wA at fence %d", fsm.StateName(done.State), done.WorkerId, done.Fence, running.Fence)
	}
	s.CheckVacuumed(1, vid, 2*admintest.MB)
}
