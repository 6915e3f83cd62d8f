package rpc

import (
	"crypto/tls"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// AuthorizeTLS decides a call of method (a MethodRoles key) by the client
// of a TLS connection that is not gRPC's (the admin's HTTP dashboard), by
// the same rules as a gRPC call: the client's certificate must still be
// good (checkCaller), its role must allow the method and an admin must be
// a member for more than a reader's rights (authorize). It returns the
// caller's role and name, or a gRPC status error (Unauthenticated,
// PermissionDenied) in one sentence.
func AuthorizeTLS(cs *tls.ConnectionState, src *certs.Source, method string, members MemberLister) (certs.Role, string, error) {
	if cs == nil {
		return "", "", status.Errorf(codes.Unauthenticated, "%s needs a verified client certificate: the connection is not TLS", method)
	}
	chain, err := certs.PeerChain(*cs)
	if err != nil {
		return "", "", status.Errorf(codes.Unauthenticated, "%s needs a verified client certificate: %v", method, err)
	}
	if err := src.CheckPeer(chain); err != nil {
		return "", "", status.Errorf(codes.Unauthenticated, "%s refused: %v", method, err)
	}
	have, name, err := certs.FromConnectionState(*cs)
	if err != nil {
		return "", "", status.Errorf(codes.PermissionDenied, "%s needs a client certificate with role %s: %v", method, MethodRoles[method], err)
	}
	if err := decide(method, have, name, members); err != nil {
		return have, name, err
	}
	return have, name, nil
}

// ServerIDs lists the volume servers of this node's last master topology,
// sorted, for callers that page over them (the dashboard's capacity page).
func (s *Server) ServerIDs() ([]string, error) {
	topo, _, err := s.topology()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(topo.Servers))
	for _, sv := range topo.Servers {
		ids = append(ids, sv.ID)
	}
	slices.Sort(ids)
	return ids, nil
}
