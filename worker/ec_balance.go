package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// EC balance steps.
const (
	StepECBalancePrepare = "prepare"
	StepECBalanceCopy    = "copy"
	StepECBalanceMount   = "mount"
	StepECBalanceVerify  = "verify"
	StepECBalanceRemove  = "remove_source"
)

// NewECBalanceExecutor returns the executor of ec_balance tasks: the move of
// one mounted EC shard from one server to another, as `weed shell
// ec.balance` moves one (moveMountedShardToEcNode): the target copies the
// shard from the source (VolumeEcShardsCopy, with the .ecx, .vif and
// .ecsum only if it holds no shard of the volume yet, and the .ecj), mounts
// it, and is asked that it has it mounted at the source's size; only then
// does the source unmount and delete its copy. A shard is never deleted
// while it is the only mounted copy, and a rollback deletes only the copy
// this task made on the target, and only while the source still has its
// own mounted.
func NewECBalanceExecutor(c *seaweed.VolumeClient) Executor { return &ecBalanceExecutor{c: c} }

type ecBalanceExecutor struct{ c *seaweed.VolumeClient }

// ecBalancePlan is a validated ec_balance spec.
type ecBalancePlan struct {
	vid            uint32
	collection     string
	shard          uint32
	source, target string
	// disk: the target's disk a copy to it names (spec.shard_disks).
	disk uint32
}

func planECBalance(spec *pb.TaskSpec) (*ecBalancePlan, error) {
	vid, collection := volumeOf(spec)
	if len(spec.GetShardTargets()) != 1 {
		return nil, permanent("an ec_balance spec moves exactly one shard; this one lists %d", len(spec.GetShardTargets()))
	}
	st := spec.GetShardTargets()[0]
	if st.GetShardId() >= seaweed.EcTotalShards {
		return nil, permanent("shard %d: only shards 0..%d exist", st.GetShardId(), seaweed.EcTotalShards-1)
	}
	for what, addr := range map[string]string{"source": spec.GetSource(), "target": spec.GetTarget()} {
		if _, err := seaweed.ParseAddress(addr); err != nil {
			return nil, permanent("%s: %v", what, err)
		}
	}
	if !sameServer(st.GetServer(), spec.GetTarget()) {
		return nil, permanent("the shard's target %s is not the spec's target %s", st.GetServer(), spec.GetTarget())
	}
	if sameServer(spec.GetSource(), spec.GetTarget()) {
		return nil, permanent("source and target are the same server %s", spec.GetSource())
	}
	return &ecBalancePlan{vid: vid, collection: collection, shard: st.GetShardId(), source: spec.GetSource(), target: spec.GetTarget(), disk: spec.GetShardDisks()[spec.GetTarget()]}, nil
}

// mounted asks server which shards of the volume it has mounted, and
// their sizes.
func (pl *ecBalancePlan) mounted(ctx context.Context, c *seaweed.VolumeClient, server string) (map[uint32]int64, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	m, err := c.MountedEcShards(cctx, server, pl.vid)
	if err != nil {
		return nil, stepOn("list the mounted shards", server, err)
	}
	return m, nil
}

func (e *ecBalanceExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepECBalancePrepare, 0)
	pl, err := planECBalance(spec)
	if err != nil {
		return nil, failure(ctx, StepECBalancePrepare, err, true, nil)
	}
	onSource, err := pl.mounted(ctx, e.c, pl.source)
	if err != nil {
		return nil, failure(ctx, StepECBalancePrepare, err, true, nil)
	}
	onTarget, err := pl.mounted(ctx, e.c, pl.target)
	if err != nil {
		return nil, failure(ctx, StepECBalancePrepare, err, true, nil)
	}
	size, srcHas := onSource[pl.shard]
	_, dstHas := onTarget[pl.shard]
	copied := false
	rollback := func() error {
		if !copied {
			return nil
		}
		return e.removeTargetCopy(ctx, pl)
	}
	fail := func(step string, err error) (*fsmpb.CapacityChange, error) {
		return nil, failure(ctx, step, err, true, rollback())
	}
	if srcHas {
		if long := longestShard(onSource); size < long {
			return nil, failure(ctx, StepECBalancePrepare, permanent("shard %d of volume %d on the source %s is %d bytes where its other shards there are %d: a truncated file, not moved (rebuild the shard)", pl.shard, pl.vid, pl.source, size, long), true, nil)
		}
	}
	copyIt := false
	switch {
	case !srcHas && !dstHas:
		return nil, failure(ctx, StepECBalancePrepare, fmt.Errorf("shard %d of volume %d is mounted on neither the source %s nor the target %s: planning again", pl.shard, pl.vid, pl.source, pl.target), true, nil)
	case !srcHas:
		// An earlier attempt finished the move but could not report it.
		p.done()
		return pl.change(spec, onTarget[pl.shard]), nil
	case dstHas && onTarget[pl.shard] < longestShard(onTarget) && onTarget[pl.shard] < size:
		// Shorter than the target's other shards and the source's copy: a
		// copy an earlier attempt began and a crash of the target cut
		// short, mounted when the target started again beside the .ecx of
		// its other shards (SeaweedFS mounts every shard file it finds).
		// It is this task's, the source still serves the shard, and the
		// target keeps its other shards (and its .ecx): removed, and
		// copied again.
		if err := e.removeTargetCopy(ctx, pl); err != nil {
			return nil, failure(ctx, StepECBalancePrepare, fmt.Errorf("shard %d of volume %d on %s is %d bytes, %d on the source %s: a copy cut short, not removed: %w", pl.shard, pl.vid, pl.target, onTarget[pl.shard], size, pl.source, err), true, nil)
		}
		delete(onTarget, pl.shard)
		copyIt = true
	case dstHas:
		// An earlier attempt copied and mounted it, then stopped before
		// removing the source's: verify and finish.
		if onTarget[pl.shard] != size {
			return nil, failure(ctx, StepECBalancePrepare, permanent("shard %d of volume %d is mounted on both %s (%d bytes) and %s (%d bytes): they differ; compare them before removing either", pl.shard, pl.vid, pl.source, size, pl.target, onTarget[pl.shard]), true, nil)
		}
	default:
		copyIt = true
	}
	if copyIt {
		p.begin(StepECBalanceCopy, 5)
		// The index files only to a server holding no shard of the volume
		// (one that does keeps its own, mounted, .ecx); the .ecj always, as
		// ec.rebuild gathers.
		withIndex := len(onTarget) == 0
		copied = true
		// The disk the plan names only on a target holding no shard of the
		// volume: one that does keeps the copy beside its own.
		var disk uint32
		if withIndex {
			var err error
			if disk, err = copyDisk(ctx, e.c, pl.target, pl.vid, pl.collection, []uint32{pl.shard}, pl.disk); err != nil {
				return fail(StepECBalanceCopy, err)
			}
		}
		if err := e.c.VolumeEcShardsGather(ctx, pl.target, pl.vid, pl.collection, []uint32{pl.shard}, pl.source, withIndex, disk); err != nil {
			return fail(StepECBalanceCopy, err)
		}
		p.begin(StepECBalanceMount, 60)
		if err := ctx.Err(); err != nil {
			return fail(StepECBalanceMount, err)
		}
		cctx, cancel := call(ctx)
		err := e.c.VolumeEcShardsMount(cctx, pl.target, pl.vid, pl.collection, []uint32{pl.shard})
		cancel()
		if err != nil {
			return fail(StepECBalanceMount, err)
		}
	}
	p.begin(StepECBalanceVerify, 75)
	if err := ctx.Err(); err != nil {
		return fail(StepECBalanceVerify, err)
	}
	after, err := pl.mounted(ctx, e.c, pl.target)
	if err != nil {
		return fail(StepECBalanceVerify, err)
	}
	if got, ok := after[pl.shard]; !ok || got != size {
		return fail(StepECBalanceVerify, fmt.Errorf("shard %d of volume %d on %s: mounted %v with %d bytes after the copy, want %d bytes as on %s", pl.shard, pl.vid, pl.target, ok, got, size, pl.source))
	}
	// The target serves the shard: the source's copy goes. Not stopped by
	// a cancellation now: half-way it would leave a duplicate.
	p.begin(StepECBalanceRemove, 90)
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	cctx, ccancel := call(rctx)
	err = e.c.VolumeEcShardsUnmount(cctx, pl.source, pl.vid, []uint32{pl.shard})
	ccancel()
	if err != nil && !seaweed.IsNotFound(err) {
		// The source still serves it: the target's copy is a duplicate
		// this attempt made, removed by the rollback.
		return fail(StepECBalanceRemove, stepOn("unmount the moved shard", pl.source, err))
	}
	cctx, ccancel = call(rctx)
	err = e.c.VolumeEcShardsDelete(cctx, pl.source, pl.vid, pl.collection, []uint32{pl.shard})
	ccancel()
	if err != nil {
		// Unmounted there and mounted on the target: the move is done,
		// an unmounted file is left on the source.
		return nil, failure(ctx, StepECBalanceRemove, fmt.Errorf("%w: shard %d of volume %d now mounted on %s, but its unmounted file on %s was not deleted: %w", errPermanent, pl.shard, pl.vid, pl.target, pl.source, err), false, nil)
	}
	p.done()
	return pl.change(spec, size), nil
}

// longestShard is the size of the largest of a server's mounted shards of
// a volume: every shard of one encode has the same size, so one shorter
// than another is a truncated file.
func longestShard(m map[uint32]int64) int64 {
	var long int64
	for _, n := range m {
		long = max(long, n)
	}
	return long
}

// change is the capacity change of the move: one shard from source to
// target (OldSize is the volume's size as the oracle counts it, ten
// shards).
func (pl *ecBalancePlan) change(spec *pb.TaskSpec, shardSize int64) *fsmpb.CapacityChange {
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_EC_BALANCE,
		VolumeId:    pl.vid,
		Collection:  pl.collection,
		Source:      pl.source,
		Target:      pl.target,
		OldSize:     uint64(shardSize) * seaweed.EcDataShards,
		Shards:      []*fsmpb.ShardPlacement{{ShardId: pl.shard, Server: pl.target}},
		CompletedAt: time.Now().UnixNano(),
	}
}

// removeTargetCopy deletes the target's copy of the shard, only while the
// source is seen with its own mounted (else the target's may be the only
// one: it is kept, and the error says so).
func (e *ecBalanceExecutor) removeTargetCopy(ctx context.Context, pl *ecBalancePlan) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	onSource, err := pl.mounted(rctx, e.c, pl.source)
	if err != nil {
		return fmt.Errorf("volume %d: kept the copy of shard %d on %s: cannot tell whether %s still serves it: %w", pl.vid, pl.shard, pl.target, pl.source, err)
	}
	if _, ok := onSource[pl.shard]; !ok {
		return fmt.Errorf("%w: volume %d: kept the copy of shard %d on %s: the source %s no longer has it mounted, so it may be the only copy", errPermanent, pl.vid, pl.shard, pl.target, pl.source)
	}
	if err := unmountAndDelete(rctx, e.c, pl.target, pl.vid, pl.collection, []uint32{pl.shard}); err != nil {
		return stepOn("remove the copied shard", pl.target, err)
	}
	return nil
}

// Rollback undoes what an interrupted attempt may have left, from the spec
// alone: while the source has the shard mounted, a copy on the target (its
// file, mounted or not) is this task's and is removed. If the source no
// longer has it mounted but the target does, the move got past its point
// of no return: the source's unmounted file is deleted and the move
// stands. Otherwise nothing is changed.
func (e *ecBalanceExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	pl, err := planECBalance(spec)
	if err != nil {
		return err
	}
	onSource, err := pl.mounted(ctx, e.c, pl.source)
	if err != nil {
		return fmt.Errorf("cannot tell what an interrupted move of shard %d of volume %d left; changing nothing: %w", pl.shard, pl.vid, err)
	}
	onTarget, err := pl.mounted(ctx, e.c, pl.target)
	if err != nil {
		return fmt.Errorf("cannot tell what an interrupted move of shard %d of volume %d left; changing nothing: %w", pl.shard, pl.vid, err)
	}
	_, srcHas := onSource[pl.shard]
	_, dstHas := onTarget[pl.shard]
	switch {
	case srcHas:
		return e.removeTargetCopy(ctx, pl)
	case dstHas:
		cctx, cancel := call(ctx)
		defer cancel()
		if err := e.c.VolumeEcShardsDelete(cctx, pl.source, pl.vid, pl.collection, []uint32{pl.shard}); err != nil && !seaweed.IsNotFound(err) {
			return stepOn("delete the moved shard's file", pl.source, err)
		}
		return nil
	}
	return fmt.Errorf("shard %d of volume %d is mounted on neither %s nor %s: changing nothing", pl.shard, pl.vid, pl.source, pl.target)
}
