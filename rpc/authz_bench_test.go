package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// testPKI is a CA in a temporary directory and the Source of an admin
// certificate "a1" issued from it.
func testPKI(tb testing.TB) (dir string, src *certs.Source) {
	tb.Helper()
	dir = tb.TempDir()
	if _, err := certs.NewCA(dir); err != nil {
		tb.Fatal(err)
	}
	if _, err := certs.Issue(dir, certs.RoleAdmin, "a1", nil, 0); err != nil {
		tb.Fatal(err)
	}
	src, err := certs.Load(certs.IssuedFiles(dir, "a1"), certs.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return dir, src
}

// verifiedCtx is the context of a call whose client presented the
// certificate of src, verified against src's CA as a handshake would.
func verifiedCtx(tb testing.TB, src *certs.Source) context.Context {
	tb.Helper()
	pem, err := os.ReadFile(src.Files().CA)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	chains, err := src.Leaf().Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		tb.Fatal(err)
	}
	state := tls.ConnectionState{HandshakeComplete: true, VerifiedChains: chains}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// BenchmarkAuthorizeUnary is the authorization interceptor's cost per
// unary call (a member admin calling SubmitTask: role, membership and
// certificate checks), without the network.
func BenchmarkAuthorizeUnary(b *testing.B) {
	_, src := testPKI(b)
	ctx := verifiedCtx(b, src)
	intercept := unaryAuthz(src, fakeMembers{ids: []string{"a1", "a2", "a3"}})
	info := &grpc.UnaryServerInfo{FullMethod: pb.Admin_SubmitTask_FullMethodName}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intercept(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
