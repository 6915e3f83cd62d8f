package rpc

import (
	"context"
	"crypto/x509"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// MethodRoles is the one table of who may call what on an admin's gRPC
// server: each full method name maps to the least role that may call it.
// Reader < operator < admin: an operator may do what a reader may, and an
// admin (a peer forwarding a call) what an operator may, but only while it
// is a member of the raft configuration (authorize); otherwise what a
// reader may. The worker role is apart: it may open the worker session
// and nothing else, and nobody else may. A method missing here is refused to everyone (a test checks
// every registered method is listed).
var MethodRoles = map[string]certs.Role{
	pb.Admin_Status_FullMethodName:      certs.RoleReader,
	pb.Admin_ListTasks_FullMethodName:   certs.RoleReader,
	pb.Admin_GetTask_FullMethodName:     certs.RoleReader,
	pb.Admin_ListWorkers_FullMethodName: certs.RoleReader,
	pb.Admin_GetPolicy_FullMethodName:   certs.RoleReader,

	pb.CapacityOracle_GetVolumeCapacity_FullMethodName: certs.RoleReader,
	pb.CapacityOracle_GetServerCapacity_FullMethodName: certs.RoleReader,
	pb.CapacityOracle_WatchCapacity_FullMethodName:     certs.RoleReader,

	// Reflection only describes the services (grpcurl list, describe).
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      certs.RoleReader,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": certs.RoleReader,

	pb.Admin_SubmitTask_FullMethodName:      certs.RoleOperator,
	pb.Admin_CancelTask_FullMethodName:      certs.RoleOperator,
	pb.Admin_RetryTask_FullMethodName:       certs.RoleOperator,
	pb.Admin_AddPeer_FullMethodName:         certs.RoleOperator,
	pb.Admin_RemovePeer_FullMethodName:      certs.RoleOperator,
	pb.Admin_SaveSnapshot_FullMethodName:    certs.RoleOperator,
	pb.Admin_RestoreSnapshot_FullMethodName: certs.RoleOperator,
	pb.Admin_SetPolicy_FullMethodName:       certs.RoleOperator,
	pb.Admin_Pause_FullMethodName:           certs.RoleOperator,
	pb.Admin_Resume_FullMethodName:          certs.RoleOperator,

	pb.Internal_ApplyBatch_FullMethodName: certs.RoleAdmin,

	pb.WorkerService_Session_FullMethodName: certs.RoleWorker,
}

// rank orders the roles that include one another; the worker role has none.
var rank = map[certs.Role]int{certs.RoleReader: 1, certs.RoleOperator: 2, certs.RoleAdmin: 3}

// roleAllows reports whether a caller with role have may call a method
// that needs role need.
func roleAllows(have, need certs.Role) bool {
	if need == certs.RoleWorker || have == certs.RoleWorker {
		return have == need
	}
	return rank[have] >= rank[need] && rank[have] > 0
}

// MemberLister lists the members of the raft configuration (a
// *cluster.Node).
type MemberLister interface {
	Members() ([]cluster.Member, error)
}

// authorize decides one call: nil, or PermissionDenied in one sentence
// naming the role the method needs. An admin certificate counts as an
// admin, and as an operator, only while its name is a member of the
// current raft configuration: certificates are not revoked, so the role
// alone would let a removed admin, or one issued for a node never added,
// commit commands or change the cluster (peers add). Otherwise it has a
// reader's rights: a node waiting to be added may still read (status,
// tasks, the oracle), and once added its forwarding works.
func authorize(ctx context.Context, method string, members MemberLister) error {
	need, ok := MethodRoles[method]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s is open to no role", method)
	}
	have, name, err := certs.FromContext(ctx)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%s needs a client certificate with role %s: %v", method, need, err)
	}
	return decide(method, have, name, members)
}

// decide is authorize once the caller's role and name are known (gRPC
// takes them from the call's context, AuthorizeTLS from an HTTP request's
// connection).
func decide(method string, have certs.Role, name string, members MemberLister) error {
	need, ok := MethodRoles[method]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s is open to no role", method)
	}
	if !roleAllows(have, need) {
		return status.Errorf(codes.PermissionDenied, "%s needs role %s%s; the certificate of %q has role %s", method, need, orAbove(need), name, have)
	}
	if have == certs.RoleAdmin && need != certs.RoleReader {
		return checkMember(method, name, need, members)
	}
	return nil
}

// checkMember refuses a call that needs more than a reader's rights from
// an admin named name that is not in the raft configuration.
func checkMember(method, name string, need certs.Role, members MemberLister) error {
	ms, err := members.Members()
	if err != nil {
		return status.Errorf(codes.Unavailable, "%s could not check that admin %q is a member: %v", method, name, err)
	}
	for _, m := range ms {
		if m.ID == name {
			return nil
		}
	}
	if need == certs.RoleAdmin {
		return status.Errorf(codes.PermissionDenied, "%s is open only to admins in the raft configuration, and %q is not a member", method, name)
	}
	return status.Errorf(codes.PermissionDenied, "%s needs role %s%s; admin %q is not in the raft configuration, so its certificate has only a reader's rights", method, need, orAbove(need), name)
}

// orAbove names the roles that include need, for refusals.
func orAbove(need certs.Role) string {
	switch need {
	case certs.RoleReader:
		return " (or operator or admin)"
	case certs.RoleOperator:
		return " (or admin)"
	}
	return ""
}

// AuthzInterceptors returns the unary and stream interceptors that enforce
// MethodRoles on a server running mutual TLS (src set), admin-role methods
// only for the members listed by members; without TLS (loopback or
// --insecure) they are nil and every call is allowed, as the plaintext
// policy already limits who can connect.
//
// A handshake verifies the client's certificate once, and a gRPC
// connection lives for days: every call and stream start re-checks it
// (certs.Source.CheckPeer: expired, or no longer trusted by the CA in use,
// is Unauthenticated), and a stream is cut, Unauthenticated, when the
// certificate expires or the CA file stops trusting it while it runs.
func AuthzInterceptors(src *certs.Source, members MemberLister) []grpc.ServerOption {
	if src == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unaryAuthz(src, members)), grpc.ChainStreamInterceptor(streamAuthz(src, members))}
}

// unaryAuthz authorizes each unary call before its handler runs.
func unaryAuthz(src *certs.Source, members MemberLister) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if _, err := checkCaller(ctx, src, info.FullMethod); err != nil {
			return nil, err
		}
		if err := authorize(ctx, info.FullMethod, members); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// streamAuthz authorizes each stream before its handler runs, and cuts it
// when the caller's certificate stops being good (cutOnPeer).
func streamAuthz(src *certs.Source, members MemberLister) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		chain, err := checkCaller(ss.Context(), src, info.FullMethod)
		if err != nil {
			return err
		}
		if err := authorize(ss.Context(), info.FullMethod, members); err != nil {
			return err
		}
		return cutOnPeer(src, chain, info.FullMethod, ss, func(ss grpc.ServerStream) error { return h(srv, ss) })
	}
}

// checkCaller returns the verified chain of the caller's certificate if it
// is still good now, else Unauthenticated.
func checkCaller(ctx context.Context, src *certs.Source, method string) ([]*x509.Certificate, error) {
	chain, err := certs.PeerChainFromContext(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%s needs a verified client certificate: %v", method, err)
	}
	if err := src.CheckPeer(chain); err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "%s refused: %v", method, err)
	}
	return chain, nil
}

// cutOnPeer runs a stream's handler and, while it runs, watches the
// caller's certificate chain: when it expires or the CA in use no longer
// verifies it, the handler's context is cancelled and the stream ends at
// once with Unauthenticated. The handler may be blocked in Recv, which
// only the stream's end unblocks, so it runs in a goroutine of its own and
// is not waited for: ending the stream makes its Recv and Send fail, as
// when a client goes away.
func cutOnPeer(src *certs.Source, chain []*x509.Certificate, method string, ss grpc.ServerStream, run func(grpc.ServerStream) error) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	cut := make(chan error, 1)
	stop := src.WatchPeer(chain, func(err error) {
		cancel(err) // first: the handler sees its context end before the stream does
		cut <- err
	})
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(&ctxStream{ServerStream: ss, ctx: ctx}) }()
	select {
	case err := <-done:
		// The handler may see its context end and return before the cut
		// is delivered (both are ready, and select picks either): a
		// context ended by the cut, not by the stream, is the cut.
		if cause := context.Cause(ctx); cause != nil && ss.Context().Err() == nil {
			return status.Errorf(codes.Unauthenticated, "%s cut: %v", method, cause)
		}
		return err
	case err := <-cut:
		return status.Errorf(codes.Unauthenticated, "%s cut: %v", method, err)
	}
}

// reauthorize checks again, before a stream acts, that its caller may
// still call method (authorize): the interceptors check when a stream
// opens and cut it when the certificate stops being good, but an admin's
// membership can end while its stream is open. A call that did not come
// over TLS is on a server without authorization, and allowed.
func (s *Server) reauthorize(ctx context.Context, method string) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	if _, overTLS := p.AuthInfo.(credentials.TLSInfo); !overTLS {
		return nil
	}
	return authorize(ctx, method, s.raft)
}

// ctxStream is a server stream with another context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// checkWorkerIdentity, on a TLS server, refuses a session whose hello names
// another worker than the caller's certificate: a worker speaks only for
// itself.
func (w *WorkerServer) checkWorkerIdentity(ctx context.Context, hello *pb.Hello) error {
	if w.admin.tls == nil {
		return nil
	}
	_, name, err := certs.FromContext(ctx)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "a worker session needs a worker certificate: %v", err)
	}
	if hello.WorkerId != name {
		return status.Error(codes.PermissionDenied, fmt.Sprintf("the certificate is worker %q's: it cannot open a session as worker %q", name, hello.WorkerId))
	}
	return nil
}
