package rpc

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestPolicyRoles: a reader may read the policy but not change it; an
// operator may do both.
func TestPolicyRoles(t *testing.T) {
	members := fakeMembers{ids: []string{"a1"}}
	for _, c := range []struct {
		role   certs.Role
		method string
		want   codes.Code
	}{
		{certs.RoleReader, pb.Admin_GetPolicy_FullMethodName, codes.OK},
		{certs.RoleReader, pb.Admin_SetPolicy_FullMethodName, codes.PermissionDenied},
		{certs.RoleReader, pb.Admin_Pause_FullMethodName, codes.PermissionDenied},
		{certs.RoleReader, pb.Admin_Resume_FullMethodName, codes.PermissionDenied},
		{certs.RoleOperator, pb.Admin_SetPolicy_FullMethodName, codes.OK},
		{certs.RoleOperator, pb.Admin_Pause_FullMethodName, codes.OK},
		{certs.RoleOperator, pb.Admin_Resume_FullMethodName, codes.OK},
		{certs.RoleWorker, pb.Admin_GetPolicy_FullMethodName, codes.PermissionDenied},
	} {
		if got := status.Code(authorize(callerCtx(c.role, "x"), c.method, members)); got != c.want {
			t.Errorf("%s calling %s: %v, want %v", c.role, c.method, got, c.want)
		}
	}
	if got := callerIdentity(callerCtx(certs.RoleOperator, "alice")); got != "alice (operator)" {
		t.Errorf("identity of an operator certificate: %q", got)
	}
	if got := callerIdentity(context.Background()); got != IdentityPlaintext {
		t.Errorf("identity without TLS: %q", got)
	}
}

// TestPolicyRPC: a change made through a follower is read identical
// through every node; a change from a stale revision is Aborted and names
// who changed it; bad input is InvalidArgument on every node, in one
// sentence per mistake, and nothing of it is applied; pause and resume
// keep the rest of the policy.
func TestPolicyRPC(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	c.waitPublished()
	f := c.nodes[c.followers(l)[0]]

	for _, n := range c.nodes {
		_, err := n.client.SetPolicy(context.Background(), &pb.SetPolicyRequest{})
		wantCode(t, "no policy via "+n.id, err, codes.InvalidArgument)
		_, err = n.client.SetPolicy(context.Background(), &pb.SetPolicyRequest{Policy: &fsmpb.Policy{PauseReason: "why",
			Types: []*fsmpb.TaskTypePolicy{{Type: 42, Disabled: true}}}})
		wantCode(t, "two mistakes via "+n.id, err, codes.InvalidArgument)
		wantMessage(t, "two mistakes", err, "not paused", "unknown task type 42")
		_, err = n.client.Pause(context.Background(), &pb.PauseRequest{Reason: strings.Repeat("r", 300)})
		wantCode(t, "long reason via "+n.id, err, codes.InvalidArgument)
		// A zone of the right form that does not exist: refused before
		// proposing (Apply checks only the form).
		_, err = n.client.SetPolicy(context.Background(), &pb.SetPolicyRequest{Policy: &fsmpb.Policy{TimeZone: "Nowhere/Atlantis"}})
		wantCode(t, "unknown zone via "+n.id, err, codes.InvalidArgument)
		wantMessage(t, "unknown zone", err, `time zone "Nowhere/Atlantis" is unknown`)
	}

	set, err := call(t, func(ctx context.Context) (*pb.SetPolicyResponse, error) {
		return f.client.SetPolicy(ctx, &pb.SetPolicyRequest{Policy: &fsmpb.Policy{
			Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}}}})
	})
	if err != nil || !set.Changed || set.Policy.Revision != 1 || !strings.HasPrefix(set.Policy.UpdatedBy, IdentityPlaintext+" from 127.0.0.1") {
		t.Fatalf("set through a follower: %v, %v", set, err)
	}
	for _, n := range c.nodes {
		got, err := call(t, func(ctx context.Context) (*pb.GetPolicyResponse, error) {
			return n.client.GetPolicy(ctx, &pb.GetPolicyRequest{})
		})
		if err != nil || !proto.Equal(got.Policy, set.Policy) || len(got.History) != 1 || got.History[0].Summary != "balance disabled" {
			t.Fatalf("policy via %s: %v, %v; want %v", n.id, got, err, set.Policy)
		}
	}

	_, err = call(t, func(ctx context.Context) (*pb.SetPolicyResponse, error) {
		return c.nodes[l].client.SetPolicy(ctx, &pb.SetPolicyRequest{Policy: &fsmpb.Policy{}, ExpectedRevision: 0})
	})
	wantCode(t, "a change from a stale revision", err, codes.Aborted)
	wantMessage(t, "a change from a stale revision", err, "revision 1, not 0", IdentityPlaintext)

	p, err := call(t, func(ctx context.Context) (*pb.PauseResponse, error) {
		return f.client.Pause(ctx, &pb.PauseRequest{Reason: "incident"})
	})
	if err != nil || !p.Changed || !p.Policy.Paused || p.Policy.PauseReason != "incident" || p.Policy.Revision != 2 || len(p.Policy.Types) != 1 {
		t.Fatalf("pause: %v, %v", p, err)
	}
	p, err = call(t, func(ctx context.Context) (*pb.PauseResponse, error) {
		return f.client.Pause(ctx, &pb.PauseRequest{Reason: "incident"})
	})
	if err != nil || p.Changed || p.Policy.Revision != 2 {
		t.Fatalf("second pause: %v, %v; want unchanged", p, err)
	}
	// Status shows every node's own copy: the follower's, once applied.
	waitFor(t, "the follower's status to show the pause", func() bool {
		st, err := f.client.Status(context.Background(), &pb.StatusRequest{LocalOnly: true})
		return err == nil && st.Policy.GetPaused() && st.Policy.GetPauseReason() == "incident"
	})
	r, err := call(t, func(ctx context.Context) (*pb.ResumeResponse, error) {
		return c.nodes[l].client.Resume(ctx, &pb.ResumeRequest{})
	})
	if err != nil || !r.Changed || r.Policy.Paused || r.Policy.PauseReason != "" || r.Policy.Revision != 3 || len(r.Policy.Types) != 1 {
		t.Fatalf("resume: %v, %v", r, err)
	}
}
