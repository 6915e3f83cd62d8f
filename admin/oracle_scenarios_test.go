package admin_test

// Capacity oracle scenarios (docs/architecture.md §7) on the simulated
// SeaweedFS: erasure coding and balance projected while in flight, kept as
// committed-but-unreported while the master is down, retired once the
// master shows them;
// the same projection on every admin across a leader change; and a
// WatchCapacity stream following a vacuum through all of it.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

var bothConsistencies = []pb.Consistency{pb.Consistency_CONSISTENCY_STALE, pb.Consistency_CONSISTENCY_LINEARIZABLE}

// projection is one oracle answer about some volumes and servers.
type projection struct {
	vols []*pb.VolumeCapacity
	srvs []*pb.ServerCapacity
}

// equal compares the figures, not the applied index or topology time.
func (p projection) equal(q projection) bool {
	if len(p.vols) != len(q.vols) || len(p.srvs) != len(q.srvs) {
		return false
	}
	for i := range p.vols {
		if !proto.Equal(p.vols[i], q.vols[i]) {
			return false
		}
	}
	for i := range p.srvs {
		if !proto.Equal(p.srvs[i], q.srvs[i]) {
			return false
		}
	}
	return true
}

func (p projection) String() string {
	return fmt.Sprintf("volumes %v servers %v", p.vols, p.srvs)
}

// ask queries admin i's oracle about vids and servers (by name).
func (s *system) ask(i int, cons pb.Consistency, vids []uint32, servers []string) (projection, error) {
	c := pb.NewCapacityOracleClient(s.Conn(s.Cfgs[i].GRPCAddr))
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait/6)
	defer cancel()
	var p projection
	if len(vids) > 0 {
		r, err := c.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: vids, Consistency: cons})
		if err != nil {
			return p, err
		}
		p.vols = r.Volumes
	}
	if len(servers) > 0 {
		r, err := c.GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: servers, Consistency: cons})
		if err != nil {
			return p, err
		}
		p.srvs = r.Servers
	}
	return p, nil
}

// waitProjection waits until every running admin answers, STALE and
// LINEARIZABLE, a projection cond accepts, and returns one of them.
func (s *system) waitProjection(what string, vids []uint32, servers []string, cond func(p projection) error) projection {
	s.T.Helper()
	var last error
	var got projection
	testutil.EventuallyTrue(s.T, admintest.Wait, "every admin's oracle to answer "+what, func() bool {
		for i := range s.Cfgs {
			if s.Node(i) == nil {
				continue
			}
			for _, cons := range bothConsistencies {
				p, err := s.ask(i, cons, vids, servers)
				if err == nil {
					err = cond(p)
				}
				if err != nil {
					last = fmt.Errorf("%s %s: %w", s.Cfgs[i].ID, cons, err)
					return false
				}
				if cons == pb.Consistency_CONSISTENCY_LINEARIZABLE {
					got = p // every node's is accepted; keep any
				}
			}
		}
		return true
	})
	if s.T.Failed() && last != nil {
		s.T.Logf("last answer: %v", last)
	}
	return got
}

// serverNames are the simulator's servers in SeaweedFS's address form.
func (s *system) serverNames() []string {
	var out []string
	for _, srv := range s.Sim.Servers() {
		out = append(out, srv.Address().String())
	}
	return out
}

// figures is what a test expects of one disk.
type figures struct {
	used         int64
	bytes        uint64
	volumes      uint32
	ecShards     uint32
	ecShardBytes uint64
}

func checkFigures(what string, got *pb.CapacityFigures, want figures) error {
	g := figures{got.GetUsedSlots(), got.GetVolumeBytes(), got.GetVolumes(), got.GetEcShards(), got.GetEcShardBytes()}
	if g != want {
		return fmt.Errorf("%s: used %d, bytes %d, volumes %d, shards %d, shard bytes %d; want %d, %d, %d, %d, %d", what,
			g.used, g.bytes, g.volumes, g.ecShards, g.ecShardBytes, want.used, want.bytes, want.volumes, want.ecShards, want.ecShardBytes)
	}
	return nil
}

// checkServers checks the one disk of every server: the master's figures
// and the projected ones.
func checkServers(srvs []*pb.ServerCapacity, master, projected []figures) error {
	if len(srvs) != len(master) {
		return fmt.Errorf("%d servers answered, want %d", len(srvs), len(master))
	}
	for i, sc := range srvs {
		if len(sc.Disks) != 1 {
			return fmt.Errorf("server %d: %d disks", i, len(sc.Disks))
		}
		d := sc.Disks[0]
		if err := checkFigures(fmt.Sprintf("server %d master", i), d.Master, master[i]); err != nil {
			return err
		}
		if err := checkFigures(fmt.Sprintf("server %d projected", i), d.Projected, projected[i]); err != nil {
			return err
		}
		if d.Projected.GetFreeSlots() != d.MaxSlots-d.Projected.GetUsedSlots() {
			return fmt.Errorf("server %d: projected free %d with %d used of %d", i, d.Projected.GetFreeSlots(), d.Projected.GetUsedSlots(), d.MaxSlots)
		}
	}
	return nil
}

func oneAdjustment(v *pb.VolumeCapacity, task uint64, typ fsmpb.TaskType, kind pb.Adjustment_Kind, delta int64) error {
	if len(v.Adjustments) != 1 {
		return fmt.Errorf("volume %d: adjustments %v, want one", v.VolumeId, v.Adjustments)
	}
	a := v.Adjustments[0]
	if a.TaskId != task || a.Type != typ || a.Kind != kind || a.DeltaBytes != delta {
		return fmt.Errorf("volume %d: adjustment %v, want task %d %v %v %d", v.VolumeId, a, task, typ, kind, delta)
	}
	return nil
}

// TestSystemOracleErasureCoding: an EC task in flight projects the
// volume's removal and size/10 per shard on the servers the scheduler
// plans; completed with the master down it stays COMMITTED_UNREPORTED with
// the shards where the worker put them; once the master reports the shards
// it retires and the projection is the master's.
func TestSystemOracleErasureCoding(t *testing.T) {
	cfg := admintest.SimConfig(4)
	// Marking read-only needs the master (the volume server tells it);
	// the master goes down during the generation that follows.
	cfg.EcGenerateDuration = 3 * time.Second
	s := newSystem(t, cfg)
	vid := s.AddOn(admintest.FullQuietSpec(), 0)
	// Free slots 9, 10, 9, 8: the scheduler places shards round-robin on
	// the source first, then by free slots: 4, 4, 3 and 3 shards.
	s.AddOn(admintest.FillerSpec, 2)
	s.AddOn(admintest.FillerSpec, 3)
	s.AddOn(admintest.FillerSpec, 3)
	s.StartAdmins(admintest.SchedConfig())
	names := s.serverNames()
	size := s.Replica(0, vid).Size
	shard := size / 10
	shards := []uint32{4, 4, 3, 3}

	pending := s.WaitTask(vid, "a pending erasure coding", func(tk *fsmpb.Task) bool { return tk.Type == ecT })
	master := []figures{
		{used: 1, bytes: size, volumes: 1},
		{},
		{used: 1, bytes: admintest.FillerSpec.Size, volumes: 1},
		{used: 2, bytes: 2 * admintest.FillerSpec.Size, volumes: 2},
	}
	// The original leaves server 0; every server gains a slot of shards.
	projected := []figures{
		{used: 1, ecShards: shards[0], ecShardBytes: uint64(shards[0]) * shard},
		{used: 1, ecShards: shards[1], ecShardBytes: uint64(shards[1]) * shard},
		{used: 2, bytes: admintest.FillerSpec.Size, volumes: 1, ecShards: shards[2], ecShardBytes: uint64(shards[2]) * shard},
		{used: 3, bytes: 2 * admintest.FillerSpec.Size, volumes: 2, ecShards: shards[3], ecShardBytes: uint64(shards[3]) * shard},
	}
	s.waitProjection("the volume's removal and the planned shards", []uint32{vid}, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != size || v.ProjectedSize != 0 {
			return fmt.Errorf("master %d (want %d), projected %d (want 0)", v.MasterSize, size, v.ProjectedSize)
		}
		if err := oneAdjustment(v, pending.Id, ecT, pb.Adjustment_IN_PROGRESS, -int64(size)); err != nil {
			return err
		}
		return checkServers(p.srvs, master, projected)
	})

	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.WaitTask(vid, "generating shards", func(tk *fsmpb.Task) bool { return tk.State == runningS && tk.Step == worker.StepEcGenerate })
	s.Sim.StopMaster()
	done := s.WaitTask(vid, "completed with the master down", func(tk *fsmpb.Task) bool { return !admintest.Active(tk) })
	if done.State != completedS {
		t.Fatalf("task %d ended %v (%q)", done.Id, done.State, done.LastError)
	}
	s.CheckErasureCoded(vid)
	// Where the worker put the shards is where the change says and where
	// the plan said.
	mounted := map[int]uint32{}
	for _, on := range s.ECMounted(vid) {
		mounted[on[0]]++
	}
	for i, n := range shards {
		if mounted[i] != n {
			t.Fatalf("server %d mounts %d shards, want %d (all: %v)", i, mounted[i], n, mounted)
		}
	}
	var change *fsmpb.CapacityChange
	for _, c := range s.Changes() {
		if c.TaskId == done.Id {
			change = c
		}
	}
	if change == nil || change.OldSize != size || len(change.Shards) != sim.TotalShards {
		t.Fatalf("change of task %d: %v; want old size %d and 14 shard placements", done.Id, change, size)
	}
	s.waitProjection("the last reported topology and a committed-unreported encoding", []uint32{vid}, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != size || v.ProjectedSize != 0 {
			return fmt.Errorf("master %d (want %d), projected %d (want 0)", v.MasterSize, size, v.ProjectedSize)
		}
		if err := oneAdjustment(v, done.Id, ecT, pb.Adjustment_COMMITTED_UNREPORTED, -int64(size)); err != nil {
			return err
		}
		return checkServers(p.srvs, master, projected)
	})

	if err := s.Sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	// The master now lists the shards (no shard bytes: it reports none)
	// and no original; the projection adds nothing to it.
	reported := []figures{
		{used: 1, ecShards: shards[0]},
		{used: 1, ecShards: shards[1]},
		{used: 2, bytes: admintest.FillerSpec.Size, volumes: 1, ecShards: shards[2]},
		{used: 3, bytes: 2 * admintest.FillerSpec.Size, volumes: 2, ecShards: shards[3]},
	}
	s.waitProjection("the master's shards", []uint32{vid}, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != 0 || v.ProjectedSize != 0 || len(v.Adjustments) != 0 {
			return fmt.Errorf("master %d, projected %d, adjustments %v; want 0, 0, none", v.MasterSize, v.ProjectedSize, v.Adjustments)
		}
		return checkServers(p.srvs, reported, reported)
	})
	testutil.EventuallyTrue(t, admintest.Wait, "the change to retire", func() bool { return !admintest.HasChange(s.Changes(), done.Id) })
}

// TestSystemOracleBalanceAcrossLeaderChange: a move in flight takes the
// volume's bytes and slot off its source and puts them on its target; the
// leader dies and the survivors, follower and new leader, STALE and
// LINEARIZABLE, answer the same projection; the move completes with the
// master down and stays COMMITTED_UNREPORTED; then it retires.
func TestSystemOracleBalanceAcrossLeaderChange(t *testing.T) {
	cfg := admintest.SimConfig(3)
	// The master goes down during the copy (marking the source read-only
	// before it needs the master).
	cfg.CopyDuration = 3 * time.Second
	s := newSystem(t, cfg)
	moveSpec := sim.VolumeSpec{Size: 3 * admintest.MB, FileCount: 300}
	vid := s.AddOn(moveSpec, 0)
	s.AddOn(admintest.FillerSpec, 0)
	s.AddOn(admintest.FillerSpec, 1)
	s.StartAdmins(admintest.SchedConfig())
	names := s.serverNames()
	vids := []uint32{vid}

	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	resp, err := s.AdminClient(s.WaitLeader()).SubmitTask(ctx, &pb.SubmitTaskRequest{Type: balanceT, VolumeId: vid, Source: names[0], Target: names[2]})
	if err != nil {
		t.Fatalf("submit the move: %v", err)
	}
	task := resp.Task.Id
	master := []figures{
		{used: 2, bytes: moveSpec.Size + admintest.FillerSpec.Size, volumes: 2},
		{used: 1, bytes: admintest.FillerSpec.Size, volumes: 1},
		{},
	}
	projected := []figures{
		{used: 1, bytes: admintest.FillerSpec.Size, volumes: 1},
		{used: 1, bytes: admintest.FillerSpec.Size, volumes: 1},
		{used: 1, bytes: moveSpec.Size, volumes: 1},
	}
	inFlight := s.waitProjection("the move in flight", vids, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != moveSpec.Size || v.ProjectedSize != moveSpec.Size {
			return fmt.Errorf("master %d, projected %d; want both %d", v.MasterSize, v.ProjectedSize, moveSpec.Size)
		}
		if err := oneAdjustment(v, task, balanceT, pb.Adjustment_IN_PROGRESS, 0); err != nil {
			return err
		}
		return checkServers(p.srvs, master, projected)
	})

	// The leader dies with the adjustment outstanding.
	old := s.WaitLeader()
	s.StopNode(old)
	if l := s.WaitLeader(); l == old {
		t.Fatalf("admin %s still leads after being stopped", s.Cfgs[old].ID)
	}
	s.waitProjection("the same projection after the leader change", vids, names, func(p projection) error {
		if !p.equal(inFlight) {
			return fmt.Errorf("got %v, want %v", p, inFlight)
		}
		return nil
	})

	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.WaitTask(vid, "copying", func(tk *fsmpb.Task) bool { return tk.State == runningS && tk.Step == worker.StepBalanceCopy })
	s.Sim.StopMaster()
	done := s.WaitTask(vid, "completed with the master down", func(tk *fsmpb.Task) bool { return !admintest.Active(tk) })
	if done.State != completedS {
		t.Fatalf("task %d ended %v (%q)", done.Id, done.State, done.LastError)
	}
	if h := s.Holders(vid); len(h) != 1 || h[0] != 2 {
		t.Fatalf("volume %d is on servers %v after the move, want [2]", vid, h)
	}
	s.waitProjection("a committed-unreported move", vids, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != moveSpec.Size || v.ProjectedSize != moveSpec.Size {
			return fmt.Errorf("master %d, projected %d; want both %d", v.MasterSize, v.ProjectedSize, moveSpec.Size)
		}
		if err := oneAdjustment(v, done.Id, balanceT, pb.Adjustment_COMMITTED_UNREPORTED, 0); err != nil {
			return err
		}
		return checkServers(p.srvs, master, projected)
	})

	if err := s.Sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	s.waitProjection("the master's view of the move", vids, names, func(p projection) error {
		v := p.vols[0]
		if v.MasterSize != moveSpec.Size || v.ProjectedSize != moveSpec.Size || len(v.Adjustments) != 0 {
			return fmt.Errorf("master %d, projected %d, adjustments %v", v.MasterSize, v.ProjectedSize, v.Adjustments)
		}
		return checkServers(p.srvs, projected, projected)
	})
	testutil.EventuallyTrue(t, admintest.Wait, "the change to retire", func() bool { return !admintest.HasChange(s.Changes(), done.Id) })
}

// TestSystemWatchVacuum: a WatchCapacity stream on a follower sees a
// vacuum's adjustment IN_PROGRESS, then COMMITTED_UNREPORTED (completed
// while the master is down), then retired once the master reports the new
// size, each update stamped with the state's index and the topology time.
func TestSystemWatchVacuum(t *testing.T) {
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 0)
	s.StartAdmins(admintest.SchedConfig())
	follower := (s.WaitLeader() + 1) % len(s.Cfgs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := pb.NewCapacityOracleClient(s.Conn(s.Cfgs[follower].GRPCAddr))
	var st pb.CapacityOracle_WatchCapacityClient
	testutil.EventuallyTrue(t, admintest.Wait, "a watch to open", func() bool {
		var err error
		st, err = c.WatchCapacity(ctx, &pb.WatchCapacityRequest{VolumeIds: []uint32{vid}})
		return err == nil
	})
	updates := make(chan *pb.CapacityUpdate, 100)
	ended := make(chan error, 1)
	go func() {
		for {
			u, err := st.Recv()
			if err != nil {
				ended <- err
				close(updates)
				return
			}
			updates <- u
		}
	}()
	var lastIndex uint64
	var seen []string
	// await reads updates until one satisfies cond.
	await := func(what string, cond func(v *pb.VolumeCapacity) bool) *pb.VolumeCapacity {
		t.Helper()
		deadline := time.After(admintest.Wait)
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					t.Fatalf("the watch ended while waiting for %s: %v (seen %v)", what, <-ended, seen)
				}
				if u.AppliedIndex < lastIndex || u.TopologyAt == 0 {
					t.Fatalf("update at index %d after %d, topology_at %d", u.AppliedIndex, lastIndex, u.TopologyAt)
				}
				lastIndex = u.AppliedIndex
				if len(u.Volumes) != 1 || u.Volumes[0].VolumeId != vid {
					t.Fatalf("update %v; want volume %d only", u, vid)
				}
				v := u.Volumes[0]
				seen = append(seen, fmt.Sprintf("%d/%d%v", v.MasterSize, v.ProjectedSize, v.Adjustments))
				if cond(v) {
					return v
				}
			case <-deadline:
				t.Fatalf("no update with %s within %s (seen %v)", what, admintest.Wait, seen)
			}
		}
	}
	kind := func(v *pb.VolumeCapacity, k pb.Adjustment_Kind) bool {
		return len(v.Adjustments) == 1 && v.Adjustments[0].Kind == k
	}

	v := await("the vacuum in progress", func(v *pb.VolumeCapacity) bool { return kind(v, pb.Adjustment_IN_PROGRESS) })
	masterSize := v.MasterSize
	if masterSize != admintest.GarbageSpec.Size || v.ProjectedSize != admintest.GarbageSpec.Size-admintest.GarbageSpec.DeletedBytes {
		t.Fatalf("in progress: master %d, projected %d; want %d and %d", masterSize, v.ProjectedSize, admintest.GarbageSpec.Size, admintest.GarbageSpec.Size-admintest.GarbageSpec.DeletedBytes)
	}
	s.Sim.StopMaster()
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	v = await("a committed-unreported vacuum", func(v *pb.VolumeCapacity) bool { return kind(v, pb.Adjustment_COMMITTED_UNREPORTED) })
	newSize := admintest.GarbageSpec.Size - admintest.GarbageSpec.DeletedBytes
	if v.MasterSize != masterSize || v.ProjectedSize != newSize || v.Adjustments[0].DeltaBytes != int64(newSize)-int64(masterSize) {
		t.Fatalf("committed unreported: %v; want master %d, projected %d", v, masterSize, newSize)
	}
	if err := s.Sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	await("the master's new size", func(v *pb.VolumeCapacity) bool {
		return len(v.Adjustments) == 0 && v.MasterSize == newSize && v.ProjectedSize == newSize
	})
	t.Logf("updates seen: %v", seen)

	cancel()
	select {
	case err := <-ended:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("the watch ended with %v after cancel", err)
		}
	case <-time.After(admintest.Wait):
		t.Fatal("the watch did not end after cancel")
	}
	// The metrics count the stream once it ended.
	testutil.EventuallyTrue(t, admintest.Wait, "the ended watch to be counted", func() bool {
		mfs, err := s.Node(follower).Metrics().Gather()
		if err != nil {
			return false
		}
		for _, mf := range mfs {
			if mf.GetName() != "groundskeeper_oracle_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["method"] == "WatchCapacity" && labels["code"] == codes.Canceled.String() {
					return m.GetCounter().GetValue() == 1
				}
			}
		}
		return false
	})
}
