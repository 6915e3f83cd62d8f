package rpc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
	_ "time/tzdata" // the same zones on every admin, whatever its system holds

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// The maintenance policy's API: GetPolicy (reader), SetPolicy, Pause and
// Resume (operator). Writes are encoded on the node the client called,
// with the caller's identity, and forwarded to the leader like every
// other write; the compare-and-set and the validation that counts happen
// in fsm.State's SetPolicy, the same on every node.

// IdentityPlaintext prefixes the identity recorded for a policy change
// made over a connection without TLS (no certificate names the caller).
const IdentityPlaintext = "plaintext"

// callerIdentity names who makes a change: the client certificate's name
// (with its role) on a TLS server, else "plaintext from HOST".
func callerIdentity(ctx context.Context) string {
	if role, name, err := certs.FromContext(ctx); err == nil {
		return name + " (" + string(role) + ")"
	}
	id := IdentityPlaintext
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host := p.Addr.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		id += " from " + host
	}
	if len(id) > fsm.MaxPolicyByLen {
		id = id[:fsm.MaxPolicyByLen]
	}
	return id
}

// GetPolicy returns the maintenance policy and its last changes.
func (s *Server) GetPolicy(ctx context.Context, req *pb.GetPolicyRequest) (*pb.GetPolicyResponse, error) {
	if err := validateGetPolicy(req); err != nil {
		return nil, err
	}
	if resp, forwarded, err := viaLeader(s, ctx, req.Consistency, func(c *grpc.ClientConn) (*pb.GetPolicyResponse, error) {
		return pb.NewAdminClient(c).GetPolicy(ctx, req)
	}); forwarded || err != nil {
		return resp, err
	}
	resp := &pb.GetPolicyResponse{}
	s.fsm.Read(func(st *fsm.State) {
		resp.Policy, resp.History = st.Policy(), st.PolicyHistory()
		resp.AppliedIndex = st.AppliedIndex()
	})
	resp.AppliedIndex = s.stateIndex(resp.AppliedIndex)
	return resp, nil
}

// SetPolicy replaces the policy if its revision is still the one the
// caller read (else Aborted).
func (s *Server) SetPolicy(ctx context.Context, req *pb.SetPolicyRequest) (*pb.SetPolicyResponse, error) {
	if err := validateSetPolicy(req); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, fsm.SetPolicyCmd(req.Policy, req.ExpectedRevision, callerIdentity(ctx)))
	if err != nil {
		return nil, err
	}
	return &pb.SetPolicyResponse{Policy: res.Policy, Changed: !res.Existing, Index: res.Index}, nil
}

// Pause pauses maintenance, whatever the policy's revision.
func (s *Server) Pause(ctx context.Context, req *pb.PauseRequest) (*pb.PauseResponse, error) {
	if err := validatePause(req); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, fsm.PauseCmd(true, req.Reason, callerIdentity(ctx)))
	if err != nil {
		return nil, err
	}
	return &pb.PauseResponse{Policy: res.Policy, Changed: !res.Existing, Index: res.Index}, nil
}

// Resume lifts a pause, whatever the policy's revision.
func (s *Server) Resume(ctx context.Context, _ *pb.ResumeRequest) (*pb.ResumeResponse, error) {
	res, err := s.apply(ctx, fsm.PauseCmd(false, "", callerIdentity(ctx)))
	if err != nil {
		return nil, err
	}
	return &pb.ResumeResponse{Policy: res.Policy, Changed: !res.Existing, Index: res.Index}, nil
}

func validateGetPolicy(req *pb.GetPolicyRequest) error { return validConsistency(req.Consistency) }

func validateSetPolicy(req *pb.SetPolicyRequest) error {
	if req.Policy == nil {
		return invalid("the request carries no policy")
	}
	return firstErr(checkLen("the pause reason", req.Policy.PauseReason, fsm.MaxPolicyReasonLen), checkPolicy(req.Policy), checkTimeZone(req.Policy.TimeZone))
}

// checkTimeZone refuses a time zone this admin's build cannot load (Apply
// checks only the name's form: it must not depend on a node's zone
// database). The binary embeds the database (time/tzdata), so every
// admin of this build loads the same zones.
func checkTimeZone(z string) error {
	if z == "" {
		return nil
	}
	if _, err := time.LoadLocation(z); err != nil {
		return invalid(fmt.Sprintf("invalid policy: time zone %q is unknown (want an IANA name like Europe/Paris)", z))
	}
	return nil
}

func validatePause(req *pb.PauseRequest) error {
	return firstErr(checkLen("the pause reason", req.Reason, fsm.MaxPolicyReasonLen), checkPolicy(&fsmpb.Policy{Paused: true, PauseReason: req.Reason}))
}

// checkPolicy is fsm.ValidatePolicy as an InvalidArgument status: one
// sentence per mistake, joined.
func checkPolicy(p *fsmpb.Policy) error {
	if errs := fsm.ValidatePolicy(p); len(errs) > 0 {
		return invalid("invalid policy: " + strings.Join(errs, "; "))
	}
	return nil
}
