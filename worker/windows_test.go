package worker_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// A rollback inside one attempt must not destroy a copy that took
// acknowledged changes the original lacks: the EC shards once mounted (the
// server routes deletes of the volume to their .ecj) and a move's target
// once mounted (writable until the source is deleted). The client's change
// lands in the window through a fault's OnFire, and the fault fails the
// attempt's next step so that it rolls back.

// requireKeptBoth checks the attempt failed for good, not rolled back,
// saying why, with nothing lost.
func requireKeptBoth(t *testing.T, c *sim.Cluster, err error, texts ...string) {
	t.Helper()
	if v := c.Durability(); len(v) > 0 {
		for _, x := range v {
			t.Errorf("durability: %s", x)
		}
		t.FailNow()
	}
	var f *worker.Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *worker.Failure, got %v", err)
	}
	t.Logf("attempt: %v", f)
	if f.Retryable || f.RolledBack {
		t.Errorf("retryable %v, rolled back %v: want neither (both copies kept)", f.Retryable, f.RolledBack)
	}
	for _, text := range texts {
		if !strings.Contains(f.Error(), text) {
			t.Errorf("the failure does not say %q", text)
		}
	}
}

// TestECRollbackKeepsShardsThatTookDeletes: a client deletes a file while
// the shards are mounted (on the source only, or spread in part), then a
// shard copy fails. Tearing the shards down would lose the delete, which
// only their .ecj holds.
func TestECRollbackKeepsShardsThatTookDeletes(t *testing.T) {
	for _, skip := range []int{0, 1} {
		t.Run(map[int]string{0: "before-spread", 1: "mid-spread"}[skip], func(t *testing.T) {
			e := newSimEnv(t, 6)
			ctx := testCtx(t)
			vid, _, spec := e.planFirstEC(t)
			var delErr error
			e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: vid, Skip: skip, FailNext: 1,
				OnFire: func() { delErr = e.c.DeleteData(vid, 1<<10, 3) }})
			_, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
			if err == nil {
				t.Fatal("the attempt succeeded despite the failed shard copy")
			}
			if delErr != nil {
				t.Fatalf("the delete the test needs was refused: %v", delErr)
			}
			requireKeptBoth(t, e.c, err, "took 3 deletes", "read-only")
			requireReadOnlyAfterRestart(t, e.c, vid, e.c.Server(0))
		})
	}
}

// TestBalanceRollbackKeepsTargetThatTookChanges: a client deletes a file,
// or overwrites one with data of the same size, through the move's
// mounted target (a single-copy volume: the target alone acknowledges it),
// then the tail fails. The live needle sets cannot tell the overwrite, nor
// a delete from a copy that is behind; deleting the target loses the change.
func TestBalanceRollbackKeepsTargetThatTookChanges(t *testing.T) {
	for _, kind := range []string{"delete", "overwrite"} {
		t.Run(kind, func(t *testing.T) {
			e := newSimEnv(t, 3)
			ctx := testCtx(t)
			vid, _, spec := e.planFirstMove(t)
			dst, _ := e.c.ServerByAddress(spec.Target)
			var werr error
			e.c.InjectFault(sim.Fault{Method: "VolumeTailReceiver", VolumeID: vid, FailNext: 1, OnFire: func() {
				if kind == "delete" {
					werr = e.c.DeleteDataOn(vid, dst.ID(), 1<<10, 1)
				} else {
					werr = e.c.OverwriteOn(vid, dst.ID(), 1)
				}
			}})
			_, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, spec, nil)
			if err == nil {
				t.Fatal("the move succeeded despite the failed tail")
			}
			if werr != nil {
				t.Fatalf("the %s the test needs was refused: %v", kind, werr)
			}
			requireKeptBoth(t, e.c, err, "1 index entries the source", "read-only", "volume.check.disk -volumeId")
			requireReadOnlyAfterRestart(t, e.c, vid, dst, e.c.Server(0))
		})
	}
}

// requireReadOnlyAfterRestart restarts each server and checks it still
// holds the volume read-only: a kept copy's mark must be persisted, since a
// restart drops one that is not and two writable copies would diverge.
func requireReadOnlyAfterRestart(t *testing.T, c *sim.Cluster, vid uint32, servers ...*sim.VolumeServer) {
	t.Helper()
	for _, s := range servers {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		if st, ok := s.Volume(vid); !ok || !st.ReadOnly {
			t.Errorf("after a restart of %s: present %v %+v; want the kept copy read-only", s.ID(), ok, st)
		}
	}
}

// TestECRefusesAKeptPairThatDiffers: a move kept both copies of a
// single-copy volume because its target took a same-size overwrite alone.
// A later EC task of the volume finds two replicas with equal live needles;
// encoding one and deleting both would lose the overwrite or the original.
func TestECRefusesAKeptPairThatDiffers(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, _, spec := e.planFirstMove(t)
	dst, _ := e.c.ServerByAddress(spec.Target)
	var werr error
	e.c.InjectFault(sim.Fault{Method: "VolumeTailReceiver", VolumeID: vid, FailNext: 1, OnFire: func() {
		werr = e.c.OverwriteOn(vid, dst.ID(), 1)
	}})
	if _, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, spec, nil); err == nil || werr != nil {
		t.Fatalf("the move: %v; the overwrite: %v", err, werr)
	}
	ecSpec := e.plan(t, &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 20})
	if len(ecSpec.GetReplicas()) != 2 {
		t.Fatalf("the EC spec names replicas %v, want the kept pair", ecSpec.GetReplicas())
	}
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, ecSpec, nil)
	if err == nil {
		t.Fatal("the EC task encoded one of two differing copies")
	}
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable {
		t.Fatalf("want a permanent *worker.Failure, got %v", err)
	}
	for _, text := range []string{"more than the 1 its placement asks for", "index entries", "not encoding"} {
		if !strings.Contains(f.Error(), text) {
			t.Errorf("the failure does not say %q: %v", text, f)
		}
	}
	for _, v := range e.c.Durability() {
		t.Errorf("durability: %s", v)
	}
	for _, s := range []*sim.VolumeServer{e.c.Server(0), dst} {
		if st, ok := s.Volume(vid); !ok || !st.ReadOnly {
			t.Errorf("%s: present %v %+v; want the copy kept read-only", s.ID(), ok, st)
		}
	}
}

// TestBalanceRetryReplacesACopyBehindASameSizeOverwrite: an abandoned move
// left a complete copy; the source, made writable again, took a same-size
// overwrite. The live needle sets are equal, but the copy lacks the
// overwrite: the retry must copy again, not adopt the copy and delete the
// source.
func TestBalanceRetryReplacesACopyBehindASameSizeOverwrite(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	vid, task, first := e.abandonedMove(t)
	if err := e.vc.VolumeMarkWritable(ctx, first.Source, vid); err != nil {
		t.Fatal(err)
	}
	if err := e.c.OverwriteOn(vid, first.Source, 1); err != nil {
		t.Fatal(err)
	}
	task = retryMove(task, first)
	if _, err := worker.NewBalanceExecutor(e.vc).Execute(ctx, e.plan(t, task), nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for _, v := range e.c.Durability() {
		t.Errorf("durability: %s", v)
	}
}

// TestECRollbackUnmountsReplicaServersFirst: the rollback unmounts the
// shards everywhere before reading the journals. A server holding an
// original replica takes client deletes while it mounts shards and sends
// each to the holder of the needle's primary shard; a holder already
// unmounted acknowledges it without journalling. So the replica servers
// must be unmounted first: the test puts the original on the server whose
// address sorts last, and deletes through it as the first shard target
// is unmounted.
func TestECRollbackUnmountsReplicaServersFirst(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	last := 0
	for i := range 6 {
		if e.addr(i) > e.addr(last) {
			last = i
		}
	}
	vid := e.volume(t, sim.VolumeSpec{Size: 20 << 20, FileCount: 40, Servers: []int{last}})
	spec := e.plan(t, &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 10})
	src := e.addr(last)
	first, moved := firstTargetOffSource(spec, src)
	if !slices.ContainsFunc(moved, func(id uint32) bool { return id < 10 }) {
		t.Fatalf("the first target %s gets no data shard (%v)", first, moved)
	}
	// The second target's copy fails: the first holds its shards.
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: vid, Skip: 1, FailNext: 1})
	// As the rollback unmounts the first target (its first unmount is the
	// sweep's), clients send ten deletes, one needle each, through the
	// original's server: the oldest live needles, whose primary shards
	// run through the data shards until one is on the first target.
	acked, fired := 0, false
	firstSrv, _ := e.c.ServerByAddress(first)
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsUnmount", Server: firstSrv.ID(), VolumeID: vid, Skip: 1, FailNext: 1, After: true,
		OnFire: func() {
			fired = true
			for range 10 {
				if e.c.DeleteDataOn(vid, src, 1<<10, 1) == nil {
					acked++
				}
			}
		}})
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
	if err == nil {
		t.Fatal("the attempt succeeded despite the failed shard copy")
	}
	if !fired {
		t.Fatalf("the rollback never unmounted %s: %v", first, err)
	}
	t.Logf("attempt: %v; %d of 10 deletes acknowledged", err, acked)
	for _, v := range e.c.Durability() {
		t.Errorf("durability: %s", v)
	}
	// The frozen original refuses a delete; one the shards acknowledged
	// must be in some .ecj, or a rollback cannot tell it happened.
	if acked > 0 {
		n := 0
		for i := range 6 {
			ids, err := e.vc.EcJournal(ctx, e.addr(i), vid, "")
			if err != nil {
				t.Fatal(err)
			}
			n += len(ids)
		}
		if n != acked {
			t.Errorf("%d deletes acknowledged, %d journalled: the rest are lost", acked, n)
		}
	}
}

// TestECRetryKeepsReplicasFrozenBesideAJournal: an earlier attempt left a
// complete, spread generation whose .ecj holds a delete, and kept the
// original read-only; an operator made it writable and it took writes. The
// retry freezes the original to compare it with the generation, finds it
// differs, and must not make it writable again: beside shards holding a
// delete it lacks, it would diverge further.
func TestECRetryKeepsReplicasFrozenBesideAJournal(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, _, first := e.planFirstEC(t)
	deleted := false
	var delErr error
	e.c.InjectFault(sim.Fault{Method: "VolumeDelete", VolumeID: vid, FailNext: 100, OnFire: func() {
		if !deleted {
			deleted, delErr = true, e.c.DeleteData(vid, 1<<10, 1)
		}
	}})
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, first, nil)
	e.c.ClearFaults()
	if !deleted || delErr != nil {
		t.Fatalf("the delete the test needs: reached %v, %v", deleted, delErr)
	}
	requireKeptBoth(t, e.c, err, "took 1 deletes")
	orig := first.Replicas[0]
	if err := e.vc.VolumeMarkWritable(ctx, orig, vid); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WriteReplica(vid, orig, 1<<20, 2); err != nil {
		t.Fatal(err)
	}
	task := retryEC(1, first)
	_, err = worker.NewECExecutor(e.vc).Execute(ctx, e.plan(t, task), nil)
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable || !strings.Contains(err.Error(), "took 1 deletes") {
		t.Fatalf("retry: %v; want a permanent refusal naming the journalled delete", err)
	}
	t.Logf("retry: %v", err)
	s, _ := e.c.ServerByAddress(orig)
	if st, ok := s.Volume(vid); !ok || !st.ReadOnly {
		t.Errorf("the original: present %v %+v; want it kept read-only", ok, st)
	}
	requireReadOnlyAfterRestart(t, e.c, vid, s)
}

// TestECSweepKeepsLeftoversThatTookADelete: an abandoned attempt left
// mounted shards (not a generation to finish) beside the frozen original.
// The retry sweeps them; a client delete landing as the sweep starts is
// journalled in their .ecj, which the sweep must read after unmounting
// everything and before tearing anything down.
func TestECSweepKeepsLeftoversThatTookADelete(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, _, first := e.planFirstEC(t)
	src := first.Replicas[0]
	other, moved := firstTargetOffSource(first, src)
	if err := errors.Join(
		e.vc.VolumeMarkReadonly(ctx, src, vid, false),
		e.vc.VolumeEcShardsGenerate(ctx, src, vid, ""),
		e.vc.VolumeEcShardsMount(ctx, src, vid, "", seaweed.AllEcShards()),
		e.vc.VolumeEcShardsCopy(ctx, other, vid, "", moved, src, 0),
		e.vc.VolumeEcShardsMount(ctx, other, vid, "", moved),
	); err != nil {
		t.Fatalf("abandoned attempt: %v", err)
	}
	var delErr error
	fired := false
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsUnmount", VolumeID: vid, FailNext: 1, Pass: true,
		OnFire: func() { fired, delErr = true, e.c.DeleteData(vid, 1<<10, 1) }})
	task := retryEC(1, first)
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, e.plan(t, task), nil)
	if !fired || delErr != nil {
		t.Fatalf("the delete the test needs: reached %v, %v", fired, delErr)
	}
	t.Logf("retry: %v", err)
	for _, v := range e.c.Durability() {
		t.Errorf("durability: %s", v)
	}
	var f *worker.Failure
	if !errors.As(err, &f) || f.Retryable || !strings.Contains(err.Error(), "took 1 deletes") {
		t.Fatalf("retry: %v; want a permanent refusal naming the journalled delete", err)
	}
}

// TestECRollbackErrorsNameServerAndStep: a rollback that cannot list the
// source's mounted shards keeps everything and says which server failed
// at which step.
func TestECRollbackErrorsNameServerAndStep(t *testing.T) {
	e := newSimEnv(t, 6)
	ctx := testCtx(t)
	vid, _, spec := e.planFirstEC(t)
	src, _ := e.c.ServerByAddress(spec.Replicas[0])
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: vid, FailNext: 1})
	// The survey and the sweep ask first; the rollback's is the third.
	e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsInfo", Server: src.ID(), VolumeID: vid, Skip: 2, FailNext: 1})
	_, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
	if err == nil {
		t.Fatal("the attempt succeeded despite the failed shard copy")
	}
	if want := "list the mounted shards on " + spec.Replicas[0]; !strings.Contains(err.Error(), want) {
		t.Fatalf("the failure does not say %q: %v", want, err)
	}
	for _, v := range e.c.Durability() {
		t.Errorf("durability: %s", v)
	}
}
