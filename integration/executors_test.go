package integration

// The maintenance executors against a real SeaweedFS cluster: every step is
// a real volume-server RPC, and every result is checked through the master's
// VolumeList, the volume servers themselves and reading the files back.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
	"google.golang.org/protobuf/proto"
)

// execTimeout bounds one Execute or Rollback.
const execTimeout = 3 * time.Minute

func execCtx(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), execTimeout)
}

// executeSteps runs spec with a recorder, logs how long what took, and
// requires exactly the checkpoints want.
func executeSteps(ctx context.Context, t *testing.T, ex worker.Executor, spec *pb.TaskSpec, what string, want []string) (*fsmpb.CapacityChange, *recorder) {
	t.Helper()
	rec := &recorder{}
	began := time.Now()
	change, err := ex.Execute(ctx, spec, rec.report)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	t.Logf("%s took %s", what, time.Since(began).Round(time.Millisecond))
	if got := rec.checkpoints(); !slices.Equal(got, want) {
		t.Fatalf("checkpoints %v, want %v", got, want)
	}
	return change, rec
}

// rollbackTwice rolls spec back, runs check on what it left, and rolls back
// again: Rollback must be idempotent.
func rollbackTwice(ctx context.Context, t *testing.T, ex worker.Executor, spec *pb.TaskSpec, check func()) {
	t.Helper()
	if err := ex.Rollback(ctx, spec); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	check()
	if err := ex.Rollback(ctx, spec); err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
}

// requireFailure checks err is a *worker.Failure at step.
func requireFailure(t *testing.T, err error, step string) *worker.Failure {
	t.Helper()
	var f *worker.Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *worker.Failure at step %q, got %T: %v", step, err, err)
	}
	if f.Step != step {
		t.Fatalf("failed at step %q, want %q: %v", f.Step, step, f)
	}
	return f
}

// requireNotFound checks the failure a spec for a missing volume gives.
func requireNotFound(t *testing.T, change *fsmpb.CapacityChange, err error, step string) {
	t.Helper()
	if change != nil {
		t.Fatalf("a missing volume returned a change: %v", change)
	}
	f := requireFailure(t, err, step)
	if !errors.Is(err, worker.ErrVolumeNotFound) {
		t.Fatalf("error is not ErrVolumeNotFound: %v", err)
	}
	if f.Retryable {
		t.Fatalf("a missing volume is marked retryable: %v", f)
	}
	if !f.RolledBack {
		t.Fatalf("nothing was changed but RolledBack is false: %v", f)
	}
}

// requireCancelled checks a cancelled attempt's failure.
func requireCancelled(t *testing.T, err error, step string) {
	t.Helper()
	f := requireFailure(t, err, step)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled attempt does not wrap context.Canceled: %v", err)
	}
	if !f.RolledBack {
		t.Fatalf("a cancelled attempt did not roll back: %v", f)
	}
}

// requireWritableOn checks the volume is on exactly these servers, writable,
// on each of them and in the master's view.
func requireWritableOn(t *testing.T, c *weedCluster, vid uint32, servers ...string) {
	t.Helper()
	ctx, cancel := execCtx(t)
	defer cancel()
	for _, s := range servers {
		st, err := c.vc.VolumeStatus(ctx, s, vid)
		if err != nil {
			t.Fatalf("volume %d on %s: %v", vid, s, err)
		}
		if st.GetIsReadOnly() {
			t.Fatalf("volume %d on %s is still read-only", vid, s)
		}
	}
	var want []string
	for _, s := range servers {
		want = append(want, httpOf(t, s))
	}
	sort.Strings(want)
	c.waitTopology(t, fmt.Sprintf("the master to list volume %d writable on %v only", vid, want), func(topo *seaweed.Topology) (bool, string) {
		got := holders(topo, vid)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			return false, fmt.Sprintf("held by %v", got)
		}
		if topo.Volumes[vid].ReadOnly {
			return false, "listed read-only"
		}
		return true, ""
	})
}

// requireNoEcShards checks that no server has shards of vid mounted, by
// asking each server and the master.
func requireNoEcShards(t *testing.T, c *weedCluster, vid uint32) {
	t.Helper()
	ctx, cancel := execCtx(t)
	defer cancel()
	for _, s := range c.servers {
		m, err := c.vc.MountedEcShards(ctx, s.Addr, vid)
		if err != nil {
			t.Fatalf("EC shards of %d on %s: %v", vid, s.Addr, err)
		}
		if len(m) != 0 {
			t.Fatalf("%s still has EC shards %v of volume %d mounted", s.Addr, m, vid)
		}
	}
	c.waitTopology(t, fmt.Sprintf("the master to list no EC shard of volume %d", vid), func(topo *seaweed.Topology) (bool, string) {
		if e := topo.EcVolumes[vid]; e != nil {
			return false, fmt.Sprintf("shards %v", e.Shards)
		}
		return true, ""
	})
}

// ---------------------------------------------------------------------------

func TestVacuumExecutor(t *testing.T) {
	t.Parallel() // each test has its own SeaweedFS cluster
	start := time.Now()
	c := startWeedCluster(t, 2)
	const collection = "vac"
	files := c.writeFiles(t, collection, 40, 24<<10)
	vid, holder := files[0].Vid, files[0].URL
	c.deleteFiles(t, holder, files[:26])
	topo := c.waitTopology(t, "the master to see the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 40 && v.DeleteCount >= 26 && v.DeletedBytes > 0, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	spec := &pb.TaskSpec{
		Task:             &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vid, Collection: collection, Attempt: 1},
		Replicas:         replicaServers(v),
		Size:             v.Size,
		DeletedBytes:     v.DeletedBytes,
		GarbageThreshold: 0.3,
	}
	ex := worker.NewVacuumExecutor(c.vc)
	revision := func() uint32 {
		t.Helper()
		ctx, cancel := execCtx(t)
		defer cancel()
		st, err := c.vc.ReadVolumeFileStatus(ctx, spec.Replicas[0], vid)
		if err != nil {
			t.Fatal(err)
		}
		return st.GetCompactionRevision()
	}
	garbage := func() float64 {
		t.Helper()
		ctx, cancel := execCtx(t)
		defer cancel()
		r, err := c.vc.VacuumVolumeCheck(ctx, spec.Replicas[0], vid)
		if err != nil {
			t.Fatal(err)
		}
		return r.GetGarbageRatio()
	}
	tempFiles := func() bool {
		t.Helper()
		ctx, cancel := execCtx(t)
		defer cancel()
		has, err := c.vc.HasVolumeFile(ctx, spec.Replicas[0], vid, collection, ".cpd")
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	rev0 := revision()
	g0 := garbage()
	t.Logf("volume %d on %v: size %d, %d deleted bytes; garbage ratio %.4f by the master's deleted/size, %.4f by VacuumVolumeCheck",
		vid, holders(topo, vid), v.Size, v.DeletedBytes, v.GarbageRatio(), g0)
	if g0 < 0.3 {
		t.Fatalf("setup: garbage ratio %.3f is below the threshold", g0)
	}

	t.Run("cancelled before the commit rolls back", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := &recorder{onBegin: map[string]func(){worker.StepVacuumCommit: cancel}}
		change, err := ex.Execute(ctx, spec, rec.report)
		if change != nil {
			t.Fatalf("cancelled attempt returned a change: %v", change)
		}
		requireCancelled(t, err, worker.StepVacuumCommit)
		if got := revision(); got != rev0 {
			t.Fatalf("compaction revision went from %d to %d: the cancelled attempt committed", rev0, got)
		}
		if tempFiles() {
			t.Fatal("the compacted copy (.cpd) is still there after the rollback")
		}
		if g := garbage(); g < 0.3 {
			t.Fatalf("garbage ratio %.3f: something was vacuumed", g)
		}
		c.checkFiles(t, files, holder)
	})

	t.Run("Rollback after a restart removes a compaction's leftovers", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		// What a worker killed between compact and commit leaves behind.
		if err := c.vc.VacuumVolumeCompact(ctx, spec.Replicas[0], vid, nil); err != nil {
			t.Fatal(err)
		}
		if !tempFiles() {
			t.Fatal("setup: compaction left no .cpd")
		}
		rollbackTwice(ctx, t, ex, spec, func() {
			if tempFiles() {
				t.Fatal("the .cpd is still there after Rollback")
			}
			if got := revision(); got != rev0 {
				t.Fatalf("Rollback changed the compaction revision from %d to %d", rev0, got)
			}
		})
	})

	t.Run("compacts the garbage away", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		change, rec := executeSteps(ctx, t, ex, spec, "vacuum",
			[]string{worker.StepVacuumCheck, worker.StepVacuumCompact, worker.StepVacuumCommit, worker.StepVacuumVerify, "done"})
		t.Logf("vacuum: %d -> %d bytes", change.GetOldSize(), change.GetNewSize())
		if !rec.monotonic() {
			t.Fatalf("progress went backwards: %v", rec.events)
		}
		if change.GetType() != fsmpb.TaskType_TASK_TYPE_VACUUM || change.GetVolumeId() != vid || change.GetTaskId() != 1 {
			t.Fatalf("change names the wrong task: %v", change)
		}
		if change.GetOldSize() != spec.Size || change.GetNewSize() == 0 || change.GetNewSize() >= change.GetOldSize() {
			t.Fatalf("change %d -> %d: want a smaller non-zero new size", change.GetOldSize(), change.GetNewSize())
		}
		if got := revision(); got != rev0+1 {
			t.Fatalf("compaction revision %d, want %d", got, rev0+1)
		}
		if g := garbage(); g != 0 {
			t.Fatalf("garbage ratio %.3f after the vacuum", g)
		}
		c.waitTopology(t, "the master to report the vacuumed size", func(topo *seaweed.Topology) (bool, string) {
			v := topo.Volumes[vid]
			if v == nil {
				return false, "volume missing"
			}
			return v.Size == change.GetNewSize() && v.DeletedBytes == 0 && v.DeleteCount == 0,
				fmt.Sprintf("size %d (want %d), %d deleted bytes, %d deletions", v.Size, change.GetNewSize(), v.DeletedBytes, v.DeleteCount)
		})
		c.checkFiles(t, files, holder)
	})

	t.Run("nothing to do below the threshold", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		rec := &recorder{}
		change, err := ex.Execute(ctx, spec, rec.report)
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if got := rec.checkpoints(); slices.Contains(got, worker.StepVacuumCompact) {
			t.Fatalf("compacted a clean volume: %v", got)
		}
		if got := revision(); got != rev0+1 {
			t.Fatalf("compaction revision moved to %d", got)
		}
		if change.GetNewSize() == 0 {
			t.Fatalf("change without the current size: %v", change)
		}
	})

	t.Run("missing volume", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		missing := &pb.TaskSpec{Task: &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 4242, Collection: collection}, Replicas: spec.Replicas}
		change, err := ex.Execute(ctx, missing, nil)
		requireNotFound(t, change, err, worker.StepVacuumCheck)
		if err := ex.Rollback(ctx, missing); err != nil {
			t.Fatalf("Rollback of a missing volume: %v", err)
		}
	})
	t.Logf("TestVacuumExecutor took %s", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------

func TestErasureCodingExecutor(t *testing.T) {
	t.Parallel() // each test has its own SeaweedFS cluster
	start := time.Now()
	c := startWeedCluster(t, 5)
	const collection = "ec"
	files := c.writeFiles(t, collection, 30, 32<<10)
	vid, holder := files[0].Vid, files[0].URL
	c.deleteFiles(t, holder, files[:5])
	topo := c.waitTopology(t, "the master to see the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 30 && v.DeleteCount >= 5, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	replicas := replicaServers(v)
	// Shard i goes to server i mod 5: every server gets 2 or 3 shards.
	servers := c.serverAddrs()
	var placement []*fsmpb.ShardPlacement
	for i := uint32(0); i < seaweed.EcTotalShards; i++ {
		placement = append(placement, &fsmpb.ShardPlacement{ShardId: i, Server: servers[int(i)%len(servers)]})
	}
	spec := &pb.TaskSpec{
		Task:         &fsmpb.Task{Id: 10, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: collection, Attempt: 1},
		Replicas:     replicas,
		ShardTargets: placement,
		Size:         v.Size,
	}
	t.Logf("volume %d (%d bytes) on %v; shards over %v", vid, v.Size, replicas, servers)
	ex := worker.NewECExecutor(c.vc)
	intact := func(t *testing.T) {
		t.Helper()
		requireNoEcShards(t, c, vid)
		requireWritableOn(t, c, vid, replicas...)
		c.checkFiles(t, files, holder)
	}

	t.Run("unreachable shard target is refused before anything changes", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		p := testutil.FreePortPair(t, 10000) // nothing listens there
		bad := fmt.Sprintf("127.0.0.1:%d.%d", p, p+10000)
		spec := cloneSpec(spec)
		for _, st := range spec.ShardTargets {
			if st.ShardId >= 12 {
				st.Server = bad
			}
		}
		rec := &recorder{}
		change, err := ex.Execute(ctx, spec, rec.report)
		if change != nil {
			t.Fatalf("failed attempt returned a change: %v", change)
		}
		// Every server that may hold shards is asked before anything is
		// swept or frozen; one that cannot answer fails the attempt there.
		f := requireFailure(t, err, worker.StepEcPrepare)
		if !f.Retryable || !strings.Contains(err.Error(), "changing nothing") {
			t.Fatalf("want a retryable failure that changes nothing: %+v", f)
		}
		if !strings.Contains(err.Error(), bad) {
			t.Fatalf("the error does not name the unreachable target %s: %v", bad, err)
		}
		t.Logf("failed as expected: %v", err)
		intact(t)
	})

	t.Run("cancelled while spreading rolls back", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := &recorder{onBegin: map[string]func(){worker.StepEcSpread: cancel}}
		change, err := ex.Execute(ctx, spec, rec.report)
		if change != nil {
			t.Fatalf("cancelled attempt returned a change: %v", change)
		}
		requireCancelled(t, err, worker.StepEcSpread)
		intact(t)
	})

	t.Run("Rollback after a restart undoes a half-done encode", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		// What a worker killed in the middle of spreading leaves behind.
		src := replicas[0]
		other := servers[0]
		if other == src {
			other = servers[1]
		}
		steps := []error{
			c.vc.VolumeMarkReadonly(ctx, src, vid, false),
			c.vc.VolumeEcShardsGenerate(ctx, src, vid, collection),
			c.vc.VolumeEcShardsMount(ctx, src, vid, collection, seaweed.AllEcShards()),
			c.vc.VolumeEcShardsCopy(ctx, other, vid, collection, []uint32{1, 6}, src, 0),
			c.vc.VolumeEcShardsMount(ctx, other, vid, collection, []uint32{1, 6}),
		}
		if err := errors.Join(steps...); err != nil {
			t.Fatalf("setup: %v", err)
		}
		c.waitTopology(t, "the master to see the half-done encode", func(topo *seaweed.Topology) (bool, string) {
			e := topo.EcVolumes[vid]
			return e != nil && e.ShardCount() == seaweed.EcTotalShards && topo.Volumes[vid] != nil && topo.Volumes[vid].ReadOnly, fmt.Sprintf("%+v", e)
		})
		rollbackTwice(ctx, t, ex, spec, func() { intact(t) })
	})

	t.Run("encodes and spreads the shards", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		change, rec := executeSteps(ctx, t, ex, spec, "erasure coding",
			[]string{worker.StepEcPrepare, worker.StepEcFreeze, worker.StepEcGenerate, worker.StepEcMount, worker.StepEcSpread, worker.StepEcVerify, worker.StepEcDelete, "done"})
		if !rec.monotonic() {
			t.Fatalf("progress went backwards: %v", rec.events)
		}
		if change.GetType() != fsmpb.TaskType_TASK_TYPE_ERASURE_CODING || change.GetOldSize() != spec.Size || change.GetNewSize() != 0 {
			t.Fatalf("change %v", change)
		}
		if len(change.GetShards()) != seaweed.EcTotalShards {
			t.Fatalf("change places %d shards", len(change.GetShards()))
		}
		for i, s := range change.GetShards() {
			if s.GetShardId() != uint32(i) || s.GetServer() != placement[i].Server {
				t.Fatalf("change places shard %d on %s, the spec on %s", s.GetShardId(), s.GetServer(), placement[i].Server)
			}
		}
		// Every server has exactly its shards mounted.
		for _, s := range servers {
			m, err := c.vc.MountedEcShards(ctx, s, vid)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []uint32
			for id := range m {
				got = append(got, id)
			}
			for _, p := range placement {
				if p.Server == s {
					want = append(want, p.ShardId)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s has shards %v mounted, want %v", s, got, want)
			}
			if _, err := c.vc.ReadVolumeFileStatus(ctx, s, vid); !seaweed.IsNotFound(err) {
				t.Fatalf("regular volume %d still answers on %s: %v", vid, s, err)
			}
		}
		// And the master agrees: 14 shards where planned, the volume gone.
		c.waitTopology(t, "the master to list the 14 shards as placed and no regular volume", func(topo *seaweed.Topology) (bool, string) {
			if topo.Volumes[vid] != nil {
				return false, fmt.Sprintf("regular volume still on %v", holders(topo, vid))
			}
			e := topo.EcVolumes[vid]
			if e == nil || e.ShardCount() != seaweed.EcTotalShards {
				return false, fmt.Sprintf("EC volume %+v", e)
			}
			nodes := map[string]bool{}
			for _, p := range placement {
				h := e.Shards[p.ShardId]
				if len(h) != 1 || h[0] != httpOf(t, p.Server) {
					return false, fmt.Sprintf("shard %d on %v, want %s", p.ShardId, h, httpOf(t, p.Server))
				}
				nodes[h[0]] = true
			}
			if len(nodes) < 4 {
				return false, fmt.Sprintf("shards on only %d servers", len(nodes))
			}
			return true, ""
		})
		// Reads are served from the shards, through any volume server.
		var urls []string
		for _, s := range c.servers {
			urls = append(urls, s.HTTP)
		}
		c.checkFiles(t, files, urls...)
	})

	t.Run("Rollback after completion changes nothing", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		if err := ex.Rollback(ctx, spec); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		total := 0
		for _, s := range servers {
			m, err := c.vc.MountedEcShards(ctx, s, vid)
			if err != nil {
				t.Fatal(err)
			}
			total += len(m)
		}
		if total != seaweed.EcTotalShards {
			t.Fatalf("%d shards mounted after Rollback, want %d", total, seaweed.EcTotalShards)
		}
		c.checkFiles(t, files, c.servers[0].HTTP)
	})

	t.Run("missing volume", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		missing := cloneSpec(spec)
		missing.Task.VolumeId = 4243
		change, err := ex.Execute(ctx, missing, nil)
		requireNotFound(t, change, err, worker.StepEcPrepare)
	})
	t.Logf("TestErasureCodingExecutor took %s", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------

func TestBalanceExecutor(t *testing.T) {
	t.Parallel() // each test has its own SeaweedFS cluster
	start := time.Now()
	c := startWeedCluster(t, 3)
	const collection = "bal"
	files := c.writeFiles(t, collection, 30, 24<<10)
	vid := files[0].Vid
	c.deleteFiles(t, files[0].URL, files[:4])
	topo := c.waitTopology(t, "the master to see the writes and deletions", func(topo *seaweed.Topology) (bool, string) {
		v := topo.Volumes[vid]
		return v != nil && v.FileCount >= 30 && v.DeleteCount >= 4, fmt.Sprintf("volume %d: %+v", vid, v)
	})
	v := topo.Volumes[vid]
	source := v.Replicas[0].Server.Addr.String()
	var target string
	for _, s := range c.servers {
		if !slices.Contains(holders(topo, vid), s.HTTP) {
			target = s.Addr
			break
		}
	}
	if target == "" {
		t.Fatalf("setup: every server holds volume %d", vid)
	}
	spec := &pb.TaskSpec{
		Task:     &fsmpb.Task{Id: 20, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: vid, Collection: collection, Source: source, Target: target, Attempt: 1},
		Replicas: replicaServers(v),
		Source:   source,
		Target:   target,
		Size:     v.Size,
		DiskType: v.DiskType,
	}
	t.Logf("moving volume %d (%d bytes) from %s to %s", vid, v.Size, source, target)
	ex := worker.NewBalanceExecutor(c.vc)
	targetHas := func(t *testing.T) bool {
		t.Helper()
		ctx, cancel := execCtx(t)
		defer cancel()
		_, err := c.vc.ReadVolumeFileStatus(ctx, target, vid)
		if err != nil && !seaweed.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	intact := func(t *testing.T) {
		t.Helper()
		if targetHas(t) {
			t.Fatalf("the target %s still has volume %d", target, vid)
		}
		requireWritableOn(t, c, vid, source)
		c.checkFiles(t, files, httpOf(t, source))
	}

	t.Run("cancelled in the middle of the tail rolls back", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		copied := false
		// VolumeTailReceiver waits for the source to stay idle for about
		// 2 s, so a cancel 300 ms into it lands inside the RPC.
		rec := &recorder{onBegin: map[string]func(){worker.StepBalanceTail: func() {
			copied = targetHas(t)
			time.AfterFunc(300*time.Millisecond, cancel)
		}}}
		change, err := ex.Execute(ctx, spec, rec.report)
		if change != nil {
			t.Fatalf("cancelled attempt returned a change: %v", change)
		}
		requireCancelled(t, err, worker.StepBalanceTail)
		if !copied {
			t.Fatal("the copy was not on the target when the tail began")
		}
		intact(t)
	})

	t.Run("Rollback after a restart deletes a partial copy", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		if err := c.vc.VolumeMarkReadonly(ctx, source, vid, false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.vc.VolumeCopy(ctx, target, vid, collection, source, "", nil); err != nil {
			t.Fatal(err)
		}
		if !targetHas(t) {
			t.Fatal("setup: the copy is not on the target")
		}
		rollbackTwice(ctx, t, ex, spec, func() { intact(t) })
	})

	t.Run("moves the volume", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		change, _ := executeSteps(ctx, t, ex, spec, "move",
			[]string{worker.StepBalanceProbe, worker.StepBalanceFreeze, worker.StepBalanceCopy, worker.StepBalanceTail, worker.StepBalanceVerify, worker.StepBalanceDelete, "done"})
		if change.GetType() != fsmpb.TaskType_TASK_TYPE_BALANCE || change.GetSource() != source || change.GetTarget() != target ||
			change.GetOldSize() != spec.Size || change.GetNewSize() < spec.Size {
			t.Fatalf("change %v", change)
		}
		if _, err := c.vc.ReadVolumeFileStatus(ctx, source, vid); !seaweed.IsNotFound(err) {
			t.Fatalf("the source still answers for volume %d: %v", vid, err)
		}
		requireWritableOn(t, c, vid, target)
		var urls []string
		for _, s := range c.servers {
			urls = append(urls, s.HTTP)
		}
		c.checkFiles(t, files, urls...)
	})

	t.Run("Rollback after completion changes nothing", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		if err := ex.Rollback(ctx, spec); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		if !targetHas(t) {
			t.Fatal("Rollback deleted the moved volume")
		}
	})

	t.Run("Rollback keeps an operator's persistent read-only mark", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		// The volume now lives on target; a journalled move of it back to
		// the old source, after an operator marked it read-only for good.
		back := cloneSpec(spec)
		back.Source, back.Target = target, source
		if err := c.vc.VolumeMarkReadonly(ctx, target, vid, true); err != nil {
			t.Fatal(err)
		}
		if err := ex.Rollback(ctx, back); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		st, err := c.vc.VolumeStatus(ctx, target, vid)
		if err != nil {
			t.Fatal(err)
		}
		if !st.GetIsReadOnly() {
			t.Fatal("Rollback made a volume the operator marked read-only (persisted) writable")
		}
		if err := c.vc.VolumeMarkWritable(ctx, target, vid); err != nil {
			t.Fatal(err)
		}
		requireWritableOn(t, c, vid, target)
	})

	t.Run("missing volume", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		missing := cloneSpec(spec)
		missing.Task.VolumeId = 4244
		change, err := ex.Execute(ctx, missing, nil)
		requireNotFound(t, change, err, worker.StepBalanceProbe)
	})

	t.Run("a move onto the source itself is refused", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		twice := cloneSpec(spec)
		twice.Source, twice.Target = target, target
		_, err := ex.Execute(ctx, twice, nil)
		if f := requireFailure(t, err, worker.StepBalanceProbe); f.Retryable {
			t.Fatalf("a same-server move is retryable: %v", f)
		}
		requireWritableOn(t, c, vid, target)
	})
	t.Logf("TestBalanceExecutor took %s", time.Since(start).Round(time.Millisecond))
}

func cloneSpec(s *pb.TaskSpec) *pb.TaskSpec { return proto.Clone(s).(*pb.TaskSpec) }
