package worker_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// staleThird adds a 001 volume on servers 0, 1 and 2 and makes server
// stale's copy stale: it is down while the volume takes writes and
// deletes, then comes back. It returns the volume once the master lists
// all three copies again.
func staleThird(t *testing.T, e *simEnv, stale int) uint32 {
	t.Helper()
	vid := e.volume(t, sim.VolumeSpec{Size: 4 << 20, FileCount: 20, ReplicaPlacement: 1, Servers: []int{0, 1, 2}})
	if err := e.c.Write(vid, 1<<20, 5); err != nil {
		t.Fatal(err)
	}
	e.c.Server(stale).Stop()
	waitUnlisted(t, e, stale)
	// The deletes first: a copy that missed only deletes is as large as
	// the fresh ones, so only a comparison of the copies tells it stale.
	if err := e.c.DeleteDataUp(vid, 1<<19, 3); err != nil {
		t.Fatal(err)
	}
	if err := e.c.WriteUp(vid, 1<<19, 2); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Server(stale).Start(); err != nil {
		t.Fatal(err)
	}
	waitCopies(t, e, vid, 3)
	return vid
}

func waitCopies(t *testing.T, e *simEnv, vid uint32, n int) {
	t.Helper()
	testutil.EventuallyTrue(t, 30*time.Second, fmt.Sprintf("the master to list %d copies of volume %d", n, vid), func() bool {
		v, ok := e.topo(t).Volumes[vid]
		return ok && len(v.Replicas) == n
	})
}

func removeExtraTask(vid uint32) *fsmpb.Task {
	return &fsmpb.Task{Id: 9, Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeId: vid, Attempt: 1, Fence: 3}
}

// preferFirst puts server i's address first in the spec's replicas, as a
// plan preferring it would.
func preferFirst(e *simEnv, spec *pb.TaskSpec, i int) {
	a := e.addr(i)
	spec.Replicas = slices.DeleteFunc(spec.Replicas, func(r string) bool { return r == a })
	spec.Replicas = append([]string{a}, spec.Replicas...)
	spec.Source = a
}

// TestRemoveExtraStaleCopy: the stale copy goes even when the plan
// prefers a fresh one; the fresh copies stay untouched, and the
// durability check at rest (every replica holds exactly the acknowledged
// writes) is clean again.
func TestRemoveExtraStaleCopy(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid := staleThird(t, e, 2)
	if v := e.c.DurabilityAtRest(); len(v) == 0 {
		t.Fatal("durability at rest clean with a stale copy back: the fixture does not make one")
	}
	spec := e.plan(t, removeExtraTask(vid))
	preferFirst(e, spec, 0)
	before0, _ := e.c.Server(0).Volume(vid)
	change, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := holders(e, vid); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("volume %d on servers %v after the removal; want the fresh copies on 0 and 1", vid, got)
	}
	if change.Source != e.addr(2) || change.Type != fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA || change.VolumeId != vid {
		t.Fatalf("change %v; want the removal on %s", change, e.addr(2))
	}
	if after0, _ := e.c.Server(0).Volume(vid); after0 != before0 {
		t.Fatalf("fresh copy changed: %+v -> %+v", before0, after0)
	}
	if v := e.c.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
}

// TestRemoveExtraIdenticalCopies: with every copy identical, the plan's
// first candidate goes.
func TestRemoveExtraIdenticalCopies(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{Size: 4 << 20, FileCount: 20, ReplicaPlacement: 1, Servers: []int{0, 1, 2}})
	if err := e.c.Write(vid, 1<<20, 5); err != nil {
		t.Fatal(err)
	}
	spec := e.plan(t, removeExtraTask(vid))
	preferFirst(e, spec, 1)
	if _, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	if got := holders(e, vid); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("volume %d on servers %v; want the planned victim 1 gone", vid, got)
	}
	if v := e.c.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
}

// TestRemoveExtraRefuses: nothing is deleted while a copy that would stay
// does not answer, nor when the copies that would stay are not all as up
// to date as the newest (each of two copies missed different writes).
func TestRemoveExtraRefuses(t *testing.T) {
	t.Run("required copy down", func(t *testing.T) {
		e := newSimEnv(t, 4)
		ctx := testCtx(t)
		vid := staleThird(t, e, 2)
		spec := e.plan(t, removeExtraTask(vid))
		e.c.Server(1).Stop()
		_, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil)
		var f *worker.Failure
		if !errors.As(err, &f) || !f.Retryable || !strings.Contains(err.Error(), "deleting nothing") {
			t.Fatalf("err %v; want a retryable failure deleting nothing", err)
		}
		if got := holders(e, vid); !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("volume %d on servers %v; want all three kept", vid, got)
		}
	})
	t.Run("copies disagree", func(t *testing.T) {
		e := newSimEnv(t, 4)
		ctx := testCtx(t)
		vid := staleThird(t, e, 2)
		// Server 1 misses a later write: only server 0 is up to date.
		e.c.Server(1).Stop()
		waitUnlisted(t, e, 1)
		if err := e.c.WriteUp(vid, 1<<19, 2); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Server(1).Start(); err != nil {
			t.Fatal(err)
		}
		waitCopies(t, e, vid, 3)
		spec := e.plan(t, removeExtraTask(vid))
		_, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil)
		var f *worker.Failure
		if !errors.As(err, &f) || f.Retryable || !strings.Contains(err.Error(), "copies disagree") {
			t.Fatalf("err %v; want a permanent failure: the copies disagree", err)
		}
		if got := holders(e, vid); !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("volume %d on servers %v; want all three kept", vid, got)
		}
	})
}

// TestRemoveExtraDuplicateShards: a server come back with shards that
// were rebuilt elsewhere meanwhile loses them (it holds the most shards
// of the volume), the other holders keep theirs, and every shard stays
// mounted once.
func TestRemoveExtraDuplicateShards(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	const vid = 40
	err := e.c.AddEcVolume(sim.EcVolumeSpec{ID: vid, Size: 10 << 20, FileCount: 30, Shards: map[int][]uint32{
		0: {0, 1, 2, 3, 4}, 1: {0, 1, 5, 6}, 2: {2, 3, 4, 7}, 3: {8, 9, 10, 11, 12, 13},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := e.plan(t, removeExtraTask(vid))
	if spec.Source != e.addr(0) || len(spec.ShardTargets) != 5 {
		t.Fatalf("planned victim %s with %d shards; want server 0's five", spec.Source, len(spec.ShardTargets))
	}
	change, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(change.Shards) != 5 || change.Source != e.addr(0) {
		t.Fatalf("change %v", change)
	}
	count := map[uint32]int{}
	for _, s := range e.c.Servers() {
		if st, ok := s.EcShards(vid); ok {
			for _, sh := range st.Mounted {
				count[sh]++
			}
		}
	}
	for sh := uint32(0); sh < 14; sh++ {
		if count[sh] != 1 {
			t.Fatalf("shard %d mounted %d times after the removal; want once (%v)", sh, count[sh], count)
		}
	}
	if v := e.c.DurabilityAtRest(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
}

// TestRemoveExtraShardNotVerified: a duplicate whose other holder does
// not answer is kept.
func TestRemoveExtraShardNotVerified(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	const vid = 41
	err := e.c.AddEcVolume(sim.EcVolumeSpec{ID: vid, Size: 10 << 20, FileCount: 30, Shards: map[int][]uint32{
		0: {0, 1, 2, 3, 4}, 1: {0, 1, 5, 6}, 2: {2, 3, 4, 7}, 3: {8, 9, 10, 11, 12, 13},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spec := e.plan(t, removeExtraTask(vid))
	e.c.Server(2).Stop()
	if _, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil); err == nil || !strings.Contains(err.Error(), "deleting nothing") {
		t.Fatalf("err %v; want a failure deleting nothing", err)
	}
	if st, _ := e.c.Server(0).EcShards(vid); len(st.Mounted) != 5 {
		t.Fatalf("server 0 mounts %v; want its five shards kept", st.Mounted)
	}
}

// TestRemoveExtraKeepsJournal: the planned victim would lose its last
// shards, and with them the .ecj journalling deletes no other holder
// journals (SeaweedFS journals an EC delete on one holder): it is passed
// over, and the duplicates go from the next holder, which keeps shards
// (and its .ecj) after the removal.
func TestRemoveExtraKeepsJournal(t *testing.T) {
	e := newSimEnv(t, 4)
	ctx := testCtx(t)
	const vid = 42
	err := e.c.AddEcVolume(sim.EcVolumeSpec{ID: vid, Size: 10 << 20, FileCount: 30, Shards: map[int][]uint32{
		0: {0, 1, 2, 3, 4}, 1: {0, 1, 5, 6}, 2: {2, 3, 4, 7}, 3: {8, 9, 10, 11, 12, 13},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Ten deletes: one per primary data shard, those of shards 0-4
	// journalled on server 0 (the first holder up).
	if err := e.c.DeleteData(vid, 1<<16, 10); err != nil {
		t.Fatal(err)
	}
	spec := e.plan(t, removeExtraTask(vid))
	if spec.Source != e.addr(0) {
		t.Fatalf("planned victim %s; want server 0 (most shards)", spec.Source)
	}
	change, err := worker.NewRemoveExtraExecutor(e.vc).Execute(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if change.Source != e.addr(1) || len(change.Shards) != 2 {
		t.Fatalf("removed %v from %s; want shards 0 and 1 from server 1", change.Shards, change.Source)
	}
	if st, _ := e.c.Server(0).EcShards(vid); len(st.Mounted) != 5 || !st.HasIndex {
		t.Fatalf("server 0 mounts %v (index %v); want its five shards and its journal kept", st.Mounted, st.HasIndex)
	}
	if v := e.c.Durability(); len(v) != 0 {
		t.Fatalf("durability after the removal: %v", v)
	}
}
