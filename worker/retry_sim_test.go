package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// Retries after abandoned attempts and replica agreement, against the
// simulator (which speaks SeaweedFS's gRPC): each attempt is planned by the
// scheduler's PlanSpec from the master's topology, as the leader does.

type simEnv struct {
	c  *sim.Cluster
	vc *seaweed.VolumeClient
	m  *seaweed.Master
}

func newSimEnv(t *testing.T, servers int) *simEnv {
	t.Helper()
	// One machine per server: balance never moves a copy of a replicated
	// volume onto a machine holding another.
	return newSimEnvConfig(t, sim.Config{Servers: servers, MaxVolumesPerServer: 10, DistinctHosts: true})
}

func newSimEnvConfig(t *testing.T, cfg sim.Config) *simEnv {
	t.Helper()
	c := simtest.Start(t, cfg)
	m := simtest.Master(t, c)
	vc := simtest.VolumeClient(t)
	return &simEnv{c: c, vc: vc, m: m}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *simEnv) topo(t *testing.T) *seaweed.Topology {
	t.Helper()
	e.c.Flush()
	topo, err := e.m.Topology(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func (e *simEnv) plan(t *testing.T, task *fsmpb.Task) *pb.TaskSpec {
	t.Helper()
	spec, err := scheduler.PlanSpec(task, e.topo(t), scheduler.DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	return spec
}

func (e *simEnv) addr(i int) string { return e.c.Server(i).Address().String() }

// volume adds a volume of spec to the cluster.
func (e *simEnv) volume(t *testing.T, spec sim.VolumeSpec) uint32 {
	t.Helper()
	vid, err := e.c.AddVolume(spec)
	if err != nil {
		t.Fatal(err)
	}
	return vid
}

// planFirstMove adds an 8 MiB volume on server 0 and plans the first
// attempt of balance task 2, moving it to server 1.
func (e *simEnv) planFirstMove(t *testing.T) (vid uint32, task *fsmpb.Task, first *pb.TaskSpec) {
	t.Helper()
	vid = e.volume(t, sim.VolumeSpec{Size: 8 << 20, FileCount: 20, Servers: []int{0}})
	task = &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: vid, Source: e.addr(0), Target: e.addr(1), Attempt: 1, Fence: 10}
	return vid, task, e.plan(t, task)
}

// planFirstEC adds a 20 MiB volume on server 0 and plans the first attempt
// of EC task 1 of it.
func (e *simEnv) planFirstEC(t *testing.T) (vid uint32, task *fsmpb.Task, first *pb.TaskSpec) {
	t.Helper()
	vid = e.volume(t, sim.VolumeSpec{Size: 20 << 20, FileCount: 40, Servers: []int{0}})
	task = &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10}
	return vid, task, e.plan(t, task)
}

// firstTargetOffSource returns the first server after src among spec's
// shard targets and the shards planned there: where an attempt abandoned
// mid-spread moved its first shards before its worker died.
func firstTargetOffSource(spec *pb.TaskSpec, src string) (other string, moved []uint32) {
	for _, st := range spec.ShardTargets {
		if st.Server != src && (other == "" || st.Server == other) {
			other = st.Server
			moved = append(moved, st.ShardId)
		}
	}
	return other, moved
}

// mountedShards counts the shards of vid mounted on the first servers of
// e's cluster.
func mountedShards(e *simEnv, vid uint32, servers int) int {
	n := 0
	for i := 0; i < servers; i++ {
		if st, ok := e.c.Server(i).EcShards(vid); ok {
			n += len(st.Mounted)
		}
	}
	return n
}

// requireShardsOnce checks that the master lists the volume as 14 distinct
// shards, each on exactly one server, and no longer as a regular volume.
func requireShardsOnce(t *testing.T, e *simEnv, vid uint32) {
	t.Helper()
	topo := e.topo(t)
	if _, ok := topo.Volumes[vid]; ok {
		t.Errorf("volume %d is still listed as a regular volume", vid)
	}
	ev, ok := topo.EcVolumes[vid]
	if !ok {
		t.Fatalf("volume %d is not erasure coded", vid)
	}
	for id := uint32(0); id < seaweed.EcTotalShards; id++ {
		if n := len(ev.Shards[id]); n != 1 {
			t.Errorf("shard %d of volume %d is listed %d times: %v", id, vid, n, ev.Shards[id])
		}
	}
	if n := ev.ShardCount(); n != seaweed.EcTotalShards {
		t.Errorf("volume %d has %d distinct shards, want %d", vid, n, seaweed.EcTotalShards)
	}
}

// TestECRetrySweepsAbandonedShardsElsewhere: an attempt abandoned in the
// middle of spreading (its worker killed: nothing rolled back) left shards
// mounted on a server; free slots change so that the retry is planned onto
// other servers. The retry must sweep the old shards: afterwards every shard
// is listed exactly once.
func TestECRetrySweepsAbandonedShardsElsewhere(t *testing.T) {
	e := newSimEnv(t, 8)
	ctx := testCtx(t)
	vid, task, first := e.planFirstEC(t)
	src := first.Replicas[0]
	// The first target after the source: where the abandoned attempt moved
	// its first shards before its worker died.
	other, moved := firstTargetOffSource(first, src)
	steps := []error{
		e.vc.VolumeMarkReadonly(ctx, src, vid, false),
		e.vc.VolumeEcShardsGenerate(ctx, src, vid, ""),
		e.vc.VolumeEcShardsMount(ctx, src, vid, "", seaweed.AllEcShards()),
		e.vc.VolumeEcShardsCopy(ctx, other, vid, "", moved, src, 0),
		e.vc.VolumeEcShardsMount(ctx, other, vid, "", moved),
		// Killed before unmounting them at the source: the generation is
		// not complete as placed (two shards are listed twice), so the
		// retry sweeps it rather than finish it.
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatalf("abandoned attempt: %v", err)
	}
	// The lease expired: the task is requeued, the assignment's servers are
	// its history. The abandoned target fills up, so the retry avoids it.
	task = &fsmpb.Task{Id: 1, Type: task.Type, VolumeId: vid, Attempt: 2, Fence: 20, EarlierServers: scheduler.SpecServers(first), EarlierMoves: movesOf(first)}
	s, _ := e.c.ServerByAddress(other)
	s.SetMaxVolumes(1)
	retry := e.plan(t, task)
	for _, st := range retry.ShardTargets {
		if st.Server == other {
			t.Fatalf("the retry is planned onto %s again; the test needs it elsewhere: %v", other, retry.ShardTargets)
		}
	}
	t.Logf("abandoned shards %v on %s; retry over %v", moved, other, scheduler.SpecServers(retry))

	change, err := worker.NewECExecutor(e.vc).Execute(ctx, retry, nil)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(change.Shards) != seaweed.EcTotalShards {
		t.Fatalf("retry change places %d shards", len(change.Shards))
	}
	if st, ok := s.EcShards(vid); ok && len(st.Files) > 0 {
		t.Errorf("%s still has EC files of volume %d: %+v", other, vid, st)
	}
	requireShardsOnce(t, e, vid)
}

// abandonedMove plans a first move (planFirstMove) and leaves what the move
// killed after its copy leaves: the source frozen (not persisted) and a
// writable copy on the target.
func (e *simEnv) abandonedMove(t *testing.T) (vid uint32, task *fsmpb.Task, first *pb.TaskSpec) {
	t.Helper()
	vid, task, first = e.planFirstMove(t)
	ctx := testCtx(t)
	if err := e.vc.VolumeMarkReadonly(ctx, first.Source, vid, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.vc.VolumeCopy(ctx, first.Target, vid, "", first.Source, "", nil); err != nil {
		t.Fatal(err)
	}
	return vid, task, first
}

// TestBalanceRetryAfterAbandonedMove: the retry of a move whose attempt was
// abandoned after copying (no rollback) recognises its own copy: identical,
// it is adopted; behind the source, it is replaced; holding needles the
// source lacks, both are kept read-only and the task fails saying why.
func TestBalanceRetryAfterAbandonedMove(t *testing.T) {
	for _, tc := range []struct {
		name string
		// diverge runs after the abandoned attempt (source and target given).
		diverge func(e *simEnv, vid uint32, source, target string) error
		wantErr string
	}{
		{name: "identical copy is adopted"},
		{name: "partial copy is replaced", diverge: func(e *simEnv, vid uint32, source, target string) error {
			// A rollback that got as far as making the source writable,
			// which then took a write the copy lacks.
			if err := e.vc.VolumeMarkWritable(context.Background(), source, vid); err != nil {
				return err
			}
			return e.c.WriteReplica(vid, source, 1<<20, 3)
		}},
		{name: "copy with writes of its own is kept", diverge: func(e *simEnv, vid uint32, source, target string) error {
			return e.c.WriteReplica(vid, target, 1<<20, 2)
		}, wantErr: "needles the source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, 3)
			ctx := testCtx(t)
			vid, task, first := e.abandonedMove(t)
			if tc.diverge != nil {
				if err := tc.diverge(e, vid, first.Source, first.Target); err != nil {
					t.Fatal(err)
				}
			}
			task = retryMove(task, first)
			retry := e.plan(t, task)
			if retry.Target != first.Target {
				t.Fatalf("retry moves to %s, want the earlier target %s", retry.Target, first.Target)
			}
			change, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, retry, nil)
			src, _ := e.c.ServerByAddress(first.Source)
			dst, _ := e.c.ServerByAddress(first.Target)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("retry = %v, %v; want a failure saying %q", change, err, tc.wantErr)
				}
				var f *worker.Failure
				if !errors.As(err, &f) || f.Retryable {
					t.Fatalf("want a permanent failure: %#v", err)
				}
				// Both kept, both read-only: neither takes a write the
				// other lacks until an operator reconciles them.
				for _, s := range []*sim.VolumeServer{src, dst} {
					if st, ok := s.Volume(vid); !ok || !st.ReadOnly {
						t.Fatalf("volume %d on %s: present %v read-only %v; want kept and read-only", vid, s.ID(), ok, st.ReadOnly)
					}
				}
				if !strings.Contains(err.Error(), "read-only") {
					t.Errorf("the refusal does not say both stay read-only: %v", err)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if change.Target != first.Target {
				t.Fatalf("change %v", change)
			}
			if _, ok := src.Volume(vid); ok {
				t.Errorf("the source still holds volume %d", vid)
			}
			dv, ok := dst.Volume(vid)
			if !ok || dv.ReadOnly {
				t.Fatalf("target: present %v read-only %v", ok, dv.ReadOnly)
			}
			sv := e.topo(t).Volumes[vid]
			if sv == nil || len(sv.Replicas) != 1 || sv.Replicas[0].Server.Addr.String() != first.Target {
				t.Fatalf("the master lists volume %d as %+v, want one replica on %s", vid, sv, first.Target)
			}
			want := uint64(20)
			if tc.diverge != nil {
				want = 23
			}
			if dv.FileCount != want {
				t.Errorf("target holds %d files, want %d", dv.FileCount, want)
			}
		})
	}
}

// TestECRefusesDisagreeingReplicas: vacuum compacted one replica (its
// compaction revision differs) and that replica missed a write the other
// took. Encoding it would replace both with the stale one: the attempt
// fails for good, naming the replicas, and leaves both writable. Replicas
// with different revisions but the same needles are encoded.
func TestECRefusesDisagreeingReplicas(t *testing.T) {
	for _, behind := range []bool{true, false} {
		t.Run(fmt.Sprintf("behind=%v", behind), func(t *testing.T) {
			e := newSimEnv(t, 5)
			ctx := testCtx(t)
			vid := e.volume(t, sim.VolumeSpec{Size: 10 << 20, FileCount: 30, DeleteCount: 5, DeletedBytes: 1 << 20, ReplicaPlacement: 1, Servers: []int{0, 1}})
			task := &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10}
			spec := e.plan(t, task)
			stale, complete := spec.Replicas[0], spec.Replicas[1] // the first replica keeps the most shards
			// Vacuum compacts the first replica only.
			if err := e.vc.VacuumVolumeCompact(ctx, stale, vid, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := e.vc.VacuumVolumeCommit(ctx, stale, vid); err != nil {
				t.Fatal(err)
			}
			if behind {
				if err := e.c.WriteReplica(vid, complete, 1<<20, 4); err != nil {
					t.Fatal(err)
				}
			}
			spec = e.plan(t, task)
			change, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
			if !behind {
				if err != nil {
					t.Fatalf("replicas with the same needles at different revisions: %v", err)
				}
				requireShardsOnce(t, e, vid)
				return
			}
			if err == nil {
				t.Fatalf("encoded from disagreeing replicas: %v", change)
			}
			var f *worker.Failure
			if !errors.As(err, &f) || f.Retryable || !f.RolledBack {
				t.Fatalf("want a permanent, rolled back failure: %#v", err)
			}
			for _, want := range []string{stale, complete, "disagree"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not name %q: %v", want, err)
				}
			}
			for _, r := range spec.Replicas {
				s, _ := e.c.ServerByAddress(r)
				if st, ok := s.Volume(vid); !ok || st.ReadOnly {
					t.Errorf("replica on %s: present %v read-only %v; want kept and writable", r, ok, st.ReadOnly)
				}
			}
			if _, ok := e.topo(t).EcVolumes[vid]; ok {
				t.Errorf("shards of volume %d are left", vid)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

// movesOf is the history an assignment of spec records (AssignTask.move).
// retryEC is the EC task id's second attempt as the leader requeues it
// after first's lease expired: fence 20, first's servers as its history.
func retryEC(id uint64, first *pb.TaskSpec) *fsmpb.Task {
	return &fsmpb.Task{Id: id, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: first.Task.VolumeId, Attempt: 2, Fence: 20,
		EarlierServers: scheduler.SpecServers(first)}
}

// retryMove is the move task's second attempt as the leader requeues it
// after first's lease expired: fence 20, first's servers and move as its
// history.
func retryMove(task *fsmpb.Task, first *pb.TaskSpec) *fsmpb.Task {
	return &fsmpb.Task{Id: task.Id, Type: task.Type, VolumeId: task.VolumeId, Source: task.Source, Target: task.Target, Attempt: 2, Fence: 20,
		EarlierServers: scheduler.SpecServers(first), EarlierMoves: movesOf(first)}
}

func movesOf(spec *pb.TaskSpec) []*fsmpb.Move {
	if m := scheduler.SpecMove(spec); m != nil {
		return []*fsmpb.Move{m}
	}
	return nil
}
