package sim

import (
	"runtime"
	"testing"
	"time"

	mpb "github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// build100k makes 100,000 volumes (a third of them with two replicas) and
// 1,000 EC volumes over 100 servers.
func build100k(tb testing.TB) *Cluster {
	tb.Helper()
	start := time.Now()
	c := newCluster(tb, Config{Servers: 100, RacksPerDataCenter: 10, MaxVolumesPerServer: 2000})
	_, err := c.AddVolumesFunc(100_000, func(i int, v *VolumeSpec) {
		v.Size = uint64(i%1000) * mib
		v.DeletedBytes = v.Size / uint64(1+i%7)
		v.FileCount = uint64(i % 5000)
		v.DeleteCount = v.FileCount / 3
		v.ModifiedAt = 1700000000 + int64(i)
		if i%3 == 0 {
			v.ReplicaPlacement = 1
		}
	}, VolumeSpec{Collection: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 1000 {
		shards := map[int][]uint32{}
		for sh := range uint32(TotalShards) {
			si := (i + int(sh)*7) % 100
			shards[si] = append(shards[si], sh)
		}
		if err := c.AddEcVolume(EcVolumeSpec{ID: uint32(200_000 + i), Collection: "bench", Size: 30000 * mib, Shards: shards}); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("built 100,000 volumes + 1,000 EC volumes on 100 servers in %v", time.Since(start))
	return c
}

// BenchmarkVolumeList100k measures what detection pays per poll: VolumeList
// over gRPC (server build + marshal + transfer + unmarshal) plus
// seaweed.FromVolumeList.
func BenchmarkVolumeList100k(b *testing.B) {
	c := build100k(b)
	mc := masterClient(b, c)
	ctx := ctxT(b)
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := mc.VolumeList(ctx, &mpb.VolumeListRequest{})
		if err != nil {
			b.Fatal(err)
		}
		topo := seaweed.FromVolumeList(resp)
		if len(topo.Volumes) != 100_000 || len(topo.EcVolumes) != 1000 {
			b.Fatalf("%d volumes, %d EC volumes", len(topo.Volumes), len(topo.EcVolumes))
		}
		size = proto.Size(resp)
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/resp")
}

// BenchmarkTopologyHeap100k reports what a kept topology costs an admin in
// live heap (every admin keeps the master's last one for the oracle), next
// to the decoded VolumeList it was built from, which is garbage once built.
func BenchmarkTopologyHeap100k(b *testing.B) {
	c := build100k(b)
	mc := masterClient(b, c)
	ctx := ctxT(b)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var topoMiB, respMiB float64
	for b.Loop() {
		base := heap()
		resp, err := mc.VolumeList(ctx, &mpb.VolumeListRequest{})
		if err != nil {
			b.Fatal(err)
		}
		withResp := heap()
		topo := seaweed.FromVolumeList(resp)
		resp = nil
		withTopo := heap()
		if len(topo.Volumes) != 100_000 {
			b.Fatalf("%d volumes", len(topo.Volumes))
		}
		respMiB = float64(withResp-base) / (1 << 20)
		topoMiB = float64(int64(withTopo)-int64(base)) / (1 << 20)
		runtime.KeepAlive(resp)
		runtime.KeepAlive(topo)
	}
	b.ReportMetric(topoMiB, "MiB-topology")
	b.ReportMetric(respMiB, "MiB-response")
}

// TestVolumeList100kNeedsLargeMessages shows why clients need
// MaxCallRecvMsgSize: the answer is larger than gRPC's default 4 MiB.
func TestVolumeList100kNeedsLargeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100,000 volumes")
	}
	c := build100k(t)
	conn, err := grpc.NewClient(c.MasterAddress(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = mpb.NewSeaweedClient(conn).VolumeList(ctxT(t), &mpb.VolumeListRequest{})
	wantErr(t, err, codes.ResourceExhausted, "larger than max")
	start := time.Now()
	resp, err := masterClient(t, c).VolumeList(ctxT(t), &mpb.VolumeListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	topo := seaweed.FromVolumeList(resp)
	t.Logf("VolumeList + FromVolumeList with DialOptions: %v", time.Since(start))
	if len(topo.Volumes) != 100_000 || len(topo.Servers) != 100 {
		t.Fatalf("%d volumes on %d servers", len(topo.Volumes), len(topo.Servers))
	}
	var replicas int
	for _, v := range topo.Volumes {
		replicas += len(v.Replicas)
	}
	if want := 100_000 + 33_334; replicas != want {
		t.Fatalf("%d replicas, want %d", replicas, want)
	}
}
