package rpc

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// ClientCredentials is the transport of every gRPC client of ours: mutual
// TLS with src's certificate, accepting only a server whose certificate
// names one of roles (RoleAdmin when none is given; every caller passes
// certs.RoleAdmin anyway, as only admins serve: that check is what
// authenticates the leader a worker or ctl is redirected to), or plaintext
// when src is nil (loopback and --insecure clusters, and the tests that
// run them).
func ClientCredentials(src *certs.Source, roles ...certs.Role) grpc.DialOption {
	if src == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(src.ClientCredentials(roles...))
}

// ServerCredentials is the transport of the admin's gRPC server: mutual TLS
// requiring a client certificate from src's CA (any role: the
// authorization interceptors decide per method), or no option at all
// (plaintext) when src is nil.
func ServerCredentials(src *certs.Source) []grpc.ServerOption {
	if src == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(src.ServerCredentials())}
}
