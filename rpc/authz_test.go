package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestRoleAllows: reader < operator < admin; the worker role neither
// includes nor is included in another.
func TestRoleAllows(t *testing.T) {
	r, o, a, w := certs.RoleReader, certs.RoleOperator, certs.RoleAdmin, certs.RoleWorker
	allowed := map[[2]certs.Role]bool{
		{r, r}: true, {o, r}: true, {a, r}: true, {w, r}: false,
		{r, o}: false, {o, o}: true, {a, o}: true, {w, o}: false,
		{r, a}: false, {o, a}: false, {a, a}: true, {w, a}: false,
		{r, w}: false, {o, w}: false, {a, w}: false, {w, w}: true,
		{"", r}: false, {"root", r}: false,
	}
	for pair, want := range allowed {
		if got := roleAllows(pair[0], pair[1]); got != want {
			t.Errorf("roleAllows(have %q, need %q) = %v, want %v", pair[0], pair[1], got, want)
		}
	}
}

// fakeMembers lists fixed members, or fails with err.
type fakeMembers struct {
	ids []string
	err error
}

func (f fakeMembers) Members() ([]cluster.Member, error) {
	var out []cluster.Member
	for _, id := range f.ids {
		out = append(out, cluster.Member{ID: id})
	}
	return out, f.err
}

// callerCtx is the context of a call over TLS whose verified client
// certificate has role and name.
func callerCtx(role certs.Role, name string) context.Context {
	leaf := &x509.Certificate{Subject: pkix.Name{OrganizationalUnit: []string{string(role)}, CommonName: name}, SerialNumber: big.NewInt(1)}
	state := tls.ConnectionState{HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// TestAuthorizeNonMemberAdminIsReader: an admin certificate whose name is
// not in the raft configuration (removed, never added, or still joining)
// has a reader's rights only; a member has all of an admin's.
func TestAuthorizeNonMemberAdminIsReader(t *testing.T) {
	members := fakeMembers{ids: []string{"a1", "a2", "a3"}}
	cases := []struct {
		role   certs.Role
		name   string
		method string
		want   codes.Code
	}{
		{certs.RoleAdmin, "a1", pb.Admin_Status_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a1", pb.Admin_SubmitTask_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a1", pb.Admin_AddPeer_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a1", pb.Internal_ApplyBatch_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a1", pb.WorkerService_Session_FullMethodName, codes.PermissionDenied},

		{certs.RoleAdmin, "a4", pb.Admin_Status_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a4", pb.Admin_ListTasks_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a4", pb.CapacityOracle_WatchCapacity_FullMethodName, codes.OK},
		{certs.RoleAdmin, "a4", pb.Admin_SubmitTask_FullMethodName, codes.PermissionDenied},
		{certs.RoleAdmin, "a4", pb.Admin_AddPeer_FullMethodName, codes.PermissionDenied},
		{certs.RoleAdmin, "a4", pb.Admin_RemovePeer_FullMethodName, codes.PermissionDenied},
		{certs.RoleAdmin, "a4", pb.Admin_RestoreSnapshot_FullMethodName, codes.PermissionDenied},
		{certs.RoleAdmin, "a4", pb.Internal_ApplyBatch_FullMethodName, codes.PermissionDenied},

		// Only admins are checked against the configuration: an operator's
		// name is a person's.
		{certs.RoleOperator, "alice", pb.Admin_AddPeer_FullMethodName, codes.OK},
		{certs.RoleOperator, "a4", pb.Admin_SubmitTask_FullMethodName, codes.OK},
		{certs.RoleOperator, "alice", pb.Internal_ApplyBatch_FullMethodName, codes.PermissionDenied},
		{certs.RoleReader, "bob", pb.Admin_Status_FullMethodName, codes.OK},
		{certs.RoleReader, "bob", pb.Admin_SubmitTask_FullMethodName, codes.PermissionDenied},
		{certs.RoleWorker, "w1", pb.WorkerService_Session_FullMethodName, codes.OK},
		{certs.RoleWorker, "w1", pb.Admin_Status_FullMethodName, codes.PermissionDenied},
		{certs.RoleAdmin, "a1", "/no.Such/Method", codes.PermissionDenied},
	}
	for _, c := range cases {
		err := authorize(callerCtx(c.role, c.name), c.method, members)
		if got := status.Code(err); got != c.want {
			t.Errorf("%s %q calling %s: %v (%v), want %v", c.role, c.name, c.method, got, err, c.want)
		}
	}
	// A refusal names why.
	err := authorize(callerCtx(certs.RoleAdmin, "a4"), pb.Admin_AddPeer_FullMethodName, members)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "not in the raft configuration") || !strings.Contains(msg, "reader") {
		t.Errorf("refusal of a non-member admin: %q; want it to say the admin is not in the configuration and has a reader's rights", msg)
	}
	// The configuration unreadable: Unavailable, not a guess.
	failing := fakeMembers{err: errors.New("raft is shutting down")}
	if err := authorize(callerCtx(certs.RoleAdmin, "a1"), pb.Admin_SubmitTask_FullMethodName, failing); status.Code(err) != codes.Unavailable {
		t.Errorf("submit by an admin with the configuration unreadable: %v, want Unavailable", err)
	}
	if err := authorize(callerCtx(certs.RoleAdmin, "a1"), pb.Admin_Status_FullMethodName, failing); err != nil {
		t.Errorf("status by an admin needs no configuration: %v", err)
	}
}
