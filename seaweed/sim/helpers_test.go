package sim

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

func newCluster(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func vsClient(t testing.TB, s *VolumeServer) volume_server_pb.VolumeServerClient {
	return volume_server_pb.NewVolumeServerClient(dial(t, s.GRPCAddress()))
}

func masterClient(t testing.TB, c *Cluster) master_pb.SeaweedClient {
	return master_pb.NewSeaweedClient(dial(t, c.MasterAddress()))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func withTask(ctx context.Context, task string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, TaskMetadataKey, task)
}

func topology(t testing.TB, mc master_pb.SeaweedClient) *seaweed.Topology {
	t.Helper()
	resp, err := mc.VolumeList(ctxT(t), &master_pb.VolumeListRequest{})
	if err != nil {
		t.Fatalf("VolumeList: %v", err)
	}
	return seaweed.FromVolumeList(resp)
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks an error's gRPC code and that its message contains text.
func wantErr(t testing.TB, err error, code codes.Code, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v error containing %q, got success", code, text)
	}
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), text) {
		t.Fatalf("want %v error containing %q, got %v: %q", code, text, st.Code(), st.Message())
	}
}

// drain reads a server stream to its end.
func drain[T any](recv func() (T, error)) ([]T, error) {
	var out []T
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func compact(ctx context.Context, vc volume_server_pb.VolumeServerClient, vid uint32) ([]*volume_server_pb.VacuumVolumeCompactResponse, error) {
	st, err := vc.VacuumVolumeCompact(ctx, &volume_server_pb.VacuumVolumeCompactRequest{VolumeId: vid})
	if err != nil {
		return nil, err
	}
	return drain(st.Recv)
}

func volumeCopy(ctx context.Context, vc volume_server_pb.VolumeServerClient, vid uint32, source string) ([]*volume_server_pb.VolumeCopyResponse, error) {
	st, err := vc.VolumeCopy(ctx, &volume_server_pb.VolumeCopyRequest{VolumeId: vid, SourceDataNode: source})
	if err != nil {
		return nil, err
	}
	return drain(st.Recv)
}

const mib = 1 << 20
