package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// Replicate steps.
const (
	StepReplicateProbe  = "probe"
	StepReplicateCopy   = "copy"
	StepReplicateTail   = "tail"
	StepReplicateVerify = "verify"
	StepReplicateMount  = "mount"
)

// NewReplicateExecutor returns the executor of replicate tasks (restoring a
// lost copy of a volume). It does what `weed shell volume.fix.replication`
// does for one under-replicated volume (VolumeCopy onto the target from a
// healthy replica), and then what a move does before it trusts its copy:
// tail what the source appended meanwhile and check the copy is not behind
// the source. The copy is left writable when the source is. The source is
// never changed; a planned source that does not answer, or is in
// maintenance, is replaced by another replica of the spec. A failure deletes the copy it made, and only that: a
// target that held the volume before the attempt keeps it.
func NewReplicateExecutor(c *seaweed.VolumeClient) Executor { return &replicateExecutor{c: c} }

type replicateExecutor struct{ c *seaweed.VolumeClient }

func (e *replicateExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	vid, collection := volumeOf(spec)
	p := newProgress(report)
	p.begin(StepReplicateProbe, 0)
	source, target, err := planBalance(spec)
	if err != nil {
		return nil, failure(ctx, StepReplicateProbe, err, true, nil)
	}
	source, st, err := e.pickSource(ctx, spec, source, target, vid)
	if err != nil {
		return nil, failure(ctx, StepReplicateProbe, err, true, nil)
	}
	held, err := probeVolume(ctx, e.c, target, vid)
	if err != nil {
		return nil, failure(ctx, StepReplicateProbe, err, true, nil)
	}
	earlier := held && slices.ContainsFunc(spec.GetTask().GetEarlierServers(), func(s string) bool { return sameServer(s, target) })
	if held && !earlier {
		// A copy would replace it; never point a copy at a server that may
		// hold the authoritative data.
		return nil, failure(ctx, StepReplicateProbe, permanent("target %s already holds volume %d, and no earlier attempt of this task put it there", target, vid), true, nil)
	}
	cp := volumeCopy{c: e.c, vid: vid, collection: collection, source: source, target: target, diskType: spec.GetDiskType(),
		size: max(spec.GetSize(), st.GetVolumeSize())}
	// copied: the target may hold a copy this attempt made, which a
	// failure deletes.
	copied := false
	fail := func(step string, err error) (*fsmpb.CapacityChange, error) {
		var rerr error
		if copied {
			rctx, rcancel := detached(ctx, rollbackTimeout)
			rerr = deleteVolume(rctx, e.c, target, vid, true)
			rcancel()
		}
		return nil, failure(ctx, step, err, true, rerr)
	}

	if earlier {
		// An earlier attempt's copy: adopted if it holds every live needle
		// of the source. One that lacks some is this task's own partial copy
		// and is replaced; one holding needles the source lacks may be the
		// only copy of them, and is left to an operator.
		srcSet, err := e.c.LiveNeedles(ctx, source, vid, collection)
		if err != nil {
			return fail(StepReplicateProbe, err)
		}
		dstSet, err := e.c.LiveNeedles(ctx, target, vid, collection)
		if err != nil {
			return fail(StepReplicateProbe, err)
		}
		switch srcOnly, dstOnly := srcSet.Diff(dstSet); {
		case dstOnly > 0:
			return nil, failure(ctx, StepReplicateProbe, permanent("target %s holds an earlier attempt's copy of volume %d with %d needles the source %s lacks: keeping both; reconcile them (weed shell volume.check.disk)", target, vid, dstOnly, source), true, nil)
		case srcOnly > 0:
			if err := deleteVolume(ctx, e.c, target, vid, true); err != nil {
				return fail(StepReplicateProbe, fmt.Errorf("delete the earlier attempt's partial copy of volume %d on %s: %w", vid, target, err))
			}
			earlier = false
		}
	}

	if !earlier {
		p.begin(StepReplicateCopy, 5)
		if err := ctx.Err(); err != nil {
			return fail(StepReplicateCopy, err)
		}
		copied = true
		if step, err := cp.copyAndTail(ctx, p, StepReplicateCopy, StepReplicateTail, 5, 85); err != nil {
			return fail(step, err)
		}
	}

	p.begin(StepReplicateVerify, 90)
	if err := ctx.Err(); err != nil {
		return fail(StepReplicateVerify, err)
	}
	dst, err := cp.verify(ctx)
	if err != nil {
		return fail(StepReplicateVerify, err)
	}

	// Mounted (VolumeCopy mounts it; VolumeStatus answers only for a
	// mounted volume) and writable as the source is: a copy mounted
	// read-only would keep the volume from taking writes.
	p.begin(StepReplicateMount, 95)
	cctx, cancel := call(ctx)
	tst, err := e.c.VolumeStatus(cctx, target, vid)
	cancel()
	if err != nil {
		return fail(StepReplicateMount, fmt.Errorf("the copy on %s is not mounted: %w", target, err))
	}
	if tst.GetIsReadOnly() && !st.GetIsReadOnly() {
		cctx, cancel = call(ctx)
		err = e.c.VolumeMarkWritable(cctx, target, vid)
		cancel()
		if err != nil {
			return fail(StepReplicateMount, fmt.Errorf("make the copy on %s writable as the source is: %w", target, err))
		}
	}
	p.done()
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_REPLICATE,
		VolumeId:    vid,
		Collection:  collection,
		OldSize:     spec.GetSize(),
		NewSize:     dst.GetDatFileSize(),
		Source:      source,
		Target:      target,
		CompletedAt: time.Now().UnixNano(),
	}, nil
}

// pickSource is the replica to copy from: the planned source if it
// answers for the volume and is not in maintenance, else the first other
// replica of the spec (not the target) that does.
func (e *replicateExecutor) pickSource(ctx context.Context, spec *pb.TaskSpec, planned, target string, vid uint32) (string, *volume_server_pb.VolumeStatusResponse, error) {
	var errs []error
	tried := map[string]bool{}
	for _, s := range append([]string{planned}, spec.GetReplicas()...) {
		if tried[s] || sameServer(s, target) {
			continue
		}
		tried[s] = true
		if _, err := seaweed.ParseAddress(s); err != nil {
			errs = append(errs, permanent("replica %q: %v", s, err))
			continue
		}
		cctx, cancel := call(ctx)
		st, err := e.c.VolumeStatus(cctx, s, vid)
		var maint bool
		if err == nil {
			maint, err = e.c.InMaintenance(cctx, s)
		}
		cancel()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("source %s: %w", s, err))
		case maint:
			errs = append(errs, fmt.Errorf("source %s is in maintenance mode", s))
		default:
			return s, st, nil
		}
	}
	return "", nil, fmt.Errorf("no replica of volume %d to copy from: %w", vid, errors.Join(errs...))
}

// Rollback undoes what an interrupted replicate left (after a worker
// restart, with no memory of the attempt): a copy on the target that
// lacks live needles of the source, and holds none the source lacks, is a
// partial copy and is deleted; a complete one is kept (it restores the
// volume's redundancy, and a retry verifies it). A
// target of an earlier attempt is never touched here (its copy may be
// complete already; the retry judges it), nor is anything when the source
// cannot be read to compare with.
func (e *replicateExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	vid, collection := volumeOf(spec)
	source, target, err := planBalance(spec)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(spec.GetTask().GetEarlierServers(), func(s string) bool { return sameServer(s, target) }) {
		return nil
	}
	held, err := probeVolume(ctx, e.c, target, vid)
	if err != nil || !held {
		return err
	}
	srcSet, err := e.c.LiveNeedles(ctx, source, vid, collection)
	if err != nil {
		return fmt.Errorf("cannot compare the copy of volume %d on %s with the source %s; changing nothing: %w", vid, target, source, err)
	}
	dstSet, err := e.c.LiveNeedles(ctx, target, vid, collection)
	if err != nil {
		return fmt.Errorf("cannot read the copy of volume %d on %s; changing nothing: %w", vid, target, err)
	}
	if srcOnly, dstOnly := srcSet.Diff(dstSet); srcOnly == 0 || dstOnly > 0 {
		// Complete, or holding needles the source lacks (then it may not
		// be this attempt's copy at all): kept.
		return nil
	}
	return deleteVolume(ctx, e.c, target, vid, true)
}
