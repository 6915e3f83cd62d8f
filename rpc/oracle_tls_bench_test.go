package rpc

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// BenchmarkOracleOverGRPC is the cost of TLS on one call: GetVolumeCapacity
// (STALE, one id among a million volumes) through a real gRPC server and
// client on loopback, in plaintext and over mutual TLS (TLS 1.3,
// certificates from the certs package), with the connection made before
// the clock starts, as the admins' long-lived connections are. Parallel
// callers share one connection. Compare the two ns/op; the multi-process
// figure is `go run ./integration/bench -tls both -oracle`.
func BenchmarkOracleOverGRPC(b *testing.B) {
	s := benchServer(b)
	dir := filepath.Join(b.TempDir(), "pki")
	if _, err := certs.NewCA(dir); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		role certs.Role
		name string
	}{{certs.RoleAdmin, "a1"}, {certs.RoleReader, "bench"}} {
		if _, err := certs.Issue(dir, c.role, c.name, nil, 0); err != nil {
			b.Fatal(err)
		}
	}
	load := func(name string) *certs.Source {
		src, err := certs.Load(certs.IssuedFiles(dir, name), certs.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return src
	}
	for _, tc := range []struct {
		name           string
		server, client *certs.Source
	}{{"transport=plaintext", nil, nil}, {"transport=tls", load("a1"), load("bench")}} {
		b.Run(tc.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			g := grpc.NewServer(ServerCredentials(tc.server)...)
			pb.RegisterCapacityOracleServer(g, s)
			go func() { _ = g.Serve(lis) }()
			defer g.Stop()
			conn, err := grpc.NewClient(lis.Addr().String(), ClientCredentials(tc.client, certs.RoleAdmin))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			oc := pb.NewCapacityOracleClient(conn)
			ctx := context.Background()
			if _, err := oc.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{1}, Consistency: pb.Consistency_CONSISTENCY_STALE}); err != nil {
				b.Fatal(err) // connects (and handshakes) before the clock starts
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb_ *testing.PB) {
				req := &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{1}, Consistency: pb.Consistency_CONSISTENCY_STALE}
				seq := uint32(0)
				for pb_.Next() {
					seq++
					req.VolumeIds[0] = 1 + seq*7919%benchVolumes
					if _, err := oc.GetVolumeCapacity(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
