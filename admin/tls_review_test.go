package admin_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestTLSApplyBatchNeedsMember: the raft port admits only admins of the
// configuration, but Internal.ApplyBatch commits any command for any
// admin certificate of the CA: a removed node's (certificates are not
// revoked) or one issued for a node never added. Here such a certificate
// repoints the leader's published address (workers follow it), which must
// be refused with PermissionDenied.
func TestTLSApplyBatchNeedsMember(t *testing.T) {
	t.Parallel()
	s, leader, ctx := startTLSAdmins(t)
	b, err := fsm.Encode(time.Now().UnixNano(), &fsmpb.Command{Body: &fsmpb.Command_SetAdminAddr{
		SetAdminAddr: &fsmpb.SetAdminAddr{Id: s.Cfgs[leader].ID, GrpcAddr: "203.0.113.9:7000"}}})
	if err != nil {
		t.Fatal(err)
	}
	conn := s.ConnAs(s.Cfgs[leader].GRPCAddr, certs.RoleAdmin, "mallory")
	resp, err := pb.NewInternalClient(conn).ApplyBatch(ctx, &pb.ApplyBatchRequest{Commands: [][]byte{b}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ApplyBatch from admin certificate %q that is no member: %v, %v; want PermissionDenied", "mallory", resp, err)
	}
}
