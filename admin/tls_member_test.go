package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestTLSNonMemberAdminIsReader: an admin certificate whose name is not in
// the raft configuration has only a reader's rights: it reads status but
// may not submit nor add a peer (certificates are not revoked, so a
// removed admin's key, or one issued for a node never added, would
// otherwise change the cluster). An admin waiting to be added reads too,
// and once added its forwarding works.
func TestTLSNonMemberAdminIsReader(t *testing.T) {
	t.Parallel()
	s, leader, ctx := startTLSAdmins(t)
	// Allowed calls may meet an election on this loaded machine: retry
	// those (Unavailable) until the deadline.
	retry := func(call func() error) error {
		for {
			err := call()
			if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	wantReaderOnly := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "not in the raft configuration") {
			t.Errorf("%s: %v; want PermissionDenied saying the admin is not in the raft configuration", what, err)
		}
	}
	submit := &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 4242}

	// An admin certificate for a node never added, at the leader and at a
	// follower.
	for _, i := range []int{leader, (leader + 1) % 3} {
		c := pb.NewAdminClient(s.ConnAs(s.Cfgs[i].GRPCAddr, certs.RoleAdmin, "mallory"))
		if err := retry(func() error { _, err := c.Status(ctx, &pb.StatusRequest{}); return err }); err != nil {
			t.Errorf("status by non-member admin mallory at %s: %v", s.Cfgs[i].ID, err)
		}
		_, err := c.SubmitTask(ctx, submit)
		wantReaderOnly("submit by non-member admin mallory at "+s.Cfgs[i].ID, err)
		_, err = c.AddPeer(ctx, &pb.AddPeerRequest{Id: "mallory", RaftAddr: "127.0.0.1:1"})
		wantReaderOnly("peers add by non-member admin mallory at "+s.Cfgs[i].ID, err)
	}

	// An admin waiting to be added reads, is refused changes, and once
	// added forwards an operator's submit to the leader.
	j := s.StartJoiner("a4")
	a4AtLeader := pb.NewAdminClient(s.ConnAs(s.Cfgs[leader].GRPCAddr, certs.RoleAdmin, "a4"))
	if err := retry(func() error { _, err := a4AtLeader.Status(ctx, &pb.StatusRequest{}); return err }); err != nil {
		t.Errorf("status by joining admin a4: %v", err)
	}
	_, err := a4AtLeader.SubmitTask(ctx, submit)
	wantReaderOnly("submit by joining admin a4", err)

	if err := retry(func() error {
		_, err := s.AdminClient(s.WaitLeader()).AddPeer(ctx, &pb.AddPeerRequest{Id: "a4", RaftAddr: s.Cfgs[j].RaftAddr})
		return err
	}); err != nil {
		t.Fatalf("operator adds a4: %v", err)
	}
	s.WaitPublished()
	var resp *pb.SubmitTaskResponse
	if err := retry(func() (err error) {
		resp, err = s.AdminClient(j).SubmitTask(ctx, submit) // forwarded by a4 under its own certificate
		return err
	}); err != nil {
		t.Fatalf("operator submit through a4 once added: %v", err)
	}
	if resp.GetTask().GetVolumeId() != 4242 {
		t.Errorf("submit through a4 returned %v, want a task for volume 4242", resp)
	}
}

// startTLSAdmins starts three admins over mutual TLS on a simulated
// SeaweedFS of three servers and returns them, the leader's index and a
// context that ends at admintest.Wait or with the test.
func startTLSAdmins(t *testing.T) (*system, int, context.Context) {
	t.Helper()
	s := newSystem(t, admintest.SimConfig(3))
	s.EnableTLS()
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	t.Cleanup(cancel)
	return s, leader, ctx
}
