package sim

import (
	"errors"
	"testing"
	"time"

	mpb "github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

func TestFaultLatencyAndErrors(t *testing.T) {
	c := newCluster(t, Config{Servers: 2, Seed: 7})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{0, 1}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Size: mib, Servers: []int{0}}))
	s0, s1 := c.Server(0), c.Server(1)
	v0, v1 := vsClient(t, s0), vsClient(t, s1)
	ctx := ctxT(t)
	status1 := func(vc vpb.VolumeServerClient, vid uint32) error {
		_, err := vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: vid})
		return err
	}

	// Latency on one method.
	lat := c.InjectFault(Fault{Method: "VolumeStatus", Latency: 400 * time.Millisecond})
	start := time.Now()
	ok(t, status1(v0, 1))
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("VolumeStatus took %v, want ≥ 400ms", d)
	}
	start = time.Now()
	must[*vpb.VacuumVolumeCheckResponse](t)(v0.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 1}))
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("other methods must not be delayed (%v)", d)
	}
	lat.Remove()

	// Fail the next two calls, with a chosen error.
	h := c.InjectFault(Fault{Method: "/volume_server_pb.VolumeServer/VolumeStatus", FailNext: 2, Err: status.Error(codes.Internal, "boom")})
	wantErr(t, status1(v0, 1), codes.Internal, "boom")
	wantErr(t, status1(v1, 1), codes.Internal, "boom")
	ok(t, status1(v0, 1))
	if h.Fired() != 2 {
		t.Fatalf("fired %d", h.Fired())
	}

	// Per volume and per server.
	c.InjectFault(Fault{VolumeID: 2, Err: errors.New("volume 2 is cursed")})
	c.InjectFault(Fault{Server: s1.GRPCAddress(), Method: "VacuumVolumeCheck", Err: status.Error(codes.Unavailable, "s1 is sick")})
	wantErr(t, status1(v0, 2), codes.Unknown, "volume 2 is cursed")
	ok(t, status1(v0, 1))
	_, err := v1.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 1})
	wantErr(t, err, codes.Unavailable, "s1 is sick")
	must[*vpb.VacuumVolumeCheckResponse](t)(v0.VacuumVolumeCheck(ctx, &vpb.VacuumVolumeCheckRequest{VolumeId: 1}))
	c.ClearFaults()
	ok(t, status1(v0, 2))

	// Probabilistic failures from the seeded source.
	p := c.InjectFault(Fault{Method: "VolumeStatus", Probability: 0.5})
	failed := 0
	for range 200 {
		if err := status1(v0, 1); err != nil {
			wantErr(t, err, codes.Unavailable, "injected fault")
			failed++
		}
	}
	if failed < 60 || failed > 140 || failed != p.Fired() {
		t.Fatalf("%d of 200 failed (fired %d), want about half", failed, p.Fired())
	}
	p.Remove()

	// A fault after the handler: the change happens, the caller sees an error.
	c.InjectFault(Fault{Method: "VolumeMarkReadonly", After: true, FailNext: 1})
	_, err = v0.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1})
	wantErr(t, err, codes.Unavailable, "injected fault")
	if v, _ := s0.Volume(1); !v.ReadOnly {
		t.Fatal("an after-fault must let the change through")
	}

	// Streams: a failing compact never starts.
	c.InjectFault(Fault{Method: "VacuumVolumeCompact", FailNext: 1})
	_, err = compact(ctx, v0, 1)
	wantErr(t, err, codes.Unavailable, "injected fault")
	if v, _ := s0.Volume(1); v.Compacted {
		t.Fatal("a before-fault must stop the compaction")
	}
	must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(ctx, v0, 1))

	// The master can be faulted too.
	mc := masterClient(t, c)
	c.InjectFault(Fault{Server: MasterName, Method: "VolumeList", FailNext: 1, Err: errors.New("raft.Server: Not current leader")})
	_, err = mc.VolumeList(ctx, &mpb.VolumeListRequest{})
	wantErr(t, err, codes.Unknown, "Not current leader")
	if c.CallCount("VolumeList") != 1 {
		t.Fatalf("VolumeList calls %d", c.CallCount("VolumeList"))
	}
	topology(t, mc)
}

func TestServerDownAndUp(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, HeartbeatDelay: 20 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, Servers: []int{1}}))
	s := c.Server(1)
	vc, mc := vsClient(t, s), masterClient(t, c)
	ctx := ctxT(t)
	addr := s.GRPCAddress()
	testutil.EventuallyTrue(t, 2*time.Second, "registration", func() bool { return len(topology(t, mc).Volumes) == 1 })
	must[*vpb.VolumeMarkReadonlyResponse](t)(vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))

	s.Stop()
	_, err := vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1})
	wantErr(t, err, codes.Unavailable, "")
	testutil.EventuallyTrue(t, 2*time.Second, "the master to drop the server", func() bool {
		topo := topology(t, mc)
		return len(topo.Servers) == 2 && len(topo.Volumes) == 0
	})

	ok(t, s.Start())
	if s.GRPCAddress() != addr {
		t.Fatal("a restarted server keeps its port")
	}
	testutil.EventuallyTrue(t, 5*time.Second, "the server to answer again", func() bool {
		st, err := vc.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1})
		return err == nil && !st.IsReadOnly // the non-persisted mark is gone
	})
	testutil.EventuallyTrue(t, 2*time.Second, "the master to see it again", func() bool {
		topo := topology(t, mc)
		return len(topo.Servers) == 3 && len(topo.Volumes) == 1
	})
}

func TestMasterRestartRefill(t *testing.T) {
	c := newCluster(t, Config{Servers: 4, MasterRefillDelay: time.Second})
	must[[]uint32](t)(c.AddVolumes(8, VolumeSpec{Size: mib}))
	mc := masterClient(t, c)
	if n := len(topology(t, mc).Servers); n != 4 {
		t.Fatalf("%d servers before restart", n)
	}
	c.StopMaster()
	_, err := mc.VolumeList(ctxT(t), &mpb.VolumeListRequest{})
	wantErr(t, err, codes.Unavailable, "")
	if c.MasterUp() {
		t.Fatal("master reported up")
	}
	ok(t, c.StartMaster())
	// VolumeList answers at once, without error, with a growing topology.
	// (A fresh connection: the old one may sit in reconnect backoff.)
	mc = masterClient(t, c)
	seen := map[int]bool{}
	testutil.EventuallyTrue(t, 5*time.Second, "the full topology", func() bool {
		resp, err := mc.VolumeList(ctxT(t), &mpb.VolumeListRequest{})
		if err != nil {
			return false
		}
		n := len(resp.TopologyInfo.GetDataCenterInfos())
		if n > 0 {
			n = 0
			for _, r := range resp.TopologyInfo.DataCenterInfos[0].RackInfos {
				n += len(r.DataNodeInfos)
			}
		}
		seen[n] = true
		return n == 4
	})
	partial := false
	for n := range seen {
		partial = partial || (n > 0 && n < 4)
	}
	if !partial {
		t.Fatalf("never saw a partial topology during refill: %v", seen)
	}
	if got := len(topology(t, mc).Volumes); got != 8 {
		t.Fatalf("%d volumes after refill", got)
	}
}

func TestHeartbeatDelay(t *testing.T) {
	c := newCluster(t, Config{Servers: 1, HeartbeatDelay: 500 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib}))
	mc := masterClient(t, c)
	testutil.EventuallyTrue(t, 2*time.Second, "the volume to be reported", func() bool { return topology(t, mc).Volumes[1] != nil })
	ok(t, c.Write(1, mib, 1))
	written := time.Now()
	if topology(t, mc).Volumes[1].Size != mib {
		t.Fatal("the master must not see the write before the next heartbeat")
	}
	testutil.EventuallyTrue(t, 2*time.Second, "the write to be reported", func() bool { return topology(t, mc).Volumes[1].Size == 2*mib })
	if d := time.Since(written); d < 450*time.Millisecond {
		t.Fatalf("reported after %v, want about 500ms", d)
	}
}
