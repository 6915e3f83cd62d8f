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
)

// Balance steps.
const (
	StepBalanceProbe  = "probe"
	StepBalanceFreeze = "freeze"
	StepBalanceCopy   = "copy"
	StepBalanceTail   = "tail"
	StepBalanceVerify = "verify"
	StepBalanceDelete = "delete-source"
)

// tailIdleSeconds is the idle window VolumeTailReceiver waits for (the
// sender really waits about twice as long). The source is read-only by then,
// so nothing new is expected; the tail only catches appends that were in
// flight when it was frozen.
const tailIdleSeconds = 1

// NewBalanceExecutor returns the executor of balance tasks (moving one
// volume). It follows `weed shell volume.move` (docs/seaweedfs-rpcs.md §5.3):
// probe both ends, mark the source read-only, copy the volume to the target,
// tail what the source appended meanwhile, check the target is not behind,
// and delete the source. Before that delete, a failure deletes the target's
// copy and makes the source writable again (if it was).
func NewBalanceExecutor(c *seaweed.VolumeClient) Executor { return &balanceExecutor{c: c} }

type balanceExecutor struct{ c *seaweed.VolumeClient }

type balanceAttempt struct {
	c                 *seaweed.VolumeClient
	vid               uint32
	collection        string
	source, target    string
	sourceWasWritable bool
	frozen            bool
	copied            bool // a copy to the target may exist
}

func planBalance(spec *pb.TaskSpec) (source, target string, err error) {
	source, target = spec.GetSource(), spec.GetTarget()
	if source == "" {
		source = spec.GetTask().GetSource()
	}
	if target == "" {
		target = spec.GetTask().GetTarget()
	}
	if _, err := seaweed.ParseAddress(source); err != nil {
		return "", "", permanent("source: %v", err)
	}
	if _, err := seaweed.ParseAddress(target); err != nil {
		return "", "", permanent("target: %v", err)
	}
	if sameServer(source, target) {
		return "", "", permanent("source and target are the same server %s", source)
	}
	return source, target, nil
}

func (e *balanceExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	vid, collection := volumeOf(spec)
	p := newProgress(report)
	p.begin(StepBalanceProbe, 0)
	source, target, err := planBalance(spec)
	if err != nil {
		return nil, failure(ctx, StepBalanceProbe, err, true, nil)
	}
	a := &balanceAttempt{c: e.c, vid: vid, collection: collection, source: source, target: target}
	fail := func(step string, err error) (*fsmpb.CapacityChange, error) {
		return nil, failure(ctx, step, err, true, a.rollback(ctx))
	}

	// Probe: the source has the volume, the target does not.
	cctx, cancel := call(ctx)
	st, err := e.c.VolumeStatus(cctx, source, vid)
	cancel()
	if seaweed.IsNotFound(err) && slices.ContainsFunc(spec.GetTask().GetEarlierMoves(), func(m *fsmpb.Move) bool {
		return sameServer(m.GetSource(), source) && sameServer(m.GetTarget(), target)
	}) {
		return e.finishEarlier(ctx, spec, p, source, target)
	}
	if err != nil {
		return nil, failure(ctx, StepBalanceProbe, err, true, nil)
	}
	a.sourceWasWritable = !st.GetIsReadOnly()
	present, err := probeVolume(ctx, e.c, target, vid)
	if err != nil {
		return nil, failure(ctx, StepBalanceProbe, err, true, nil)
	}
	// earlier: the target holds the copy an abandoned attempt of this task
	// made (an earlier attempt moved from this source to this target). That
	// attempt froze the source with a mark that is not persisted; the
	// source was writable before it.
	earlier := false
	if present {
		if !slices.ContainsFunc(spec.GetTask().GetEarlierMoves(), func(m *fsmpb.Move) bool {
			return sameServer(m.GetSource(), source) && sameServer(m.GetTarget(), target)
		}) {
			// A copy would replace that replica; never point a copy at a
			// server that may hold the authoritative data.
			return nil, failure(ctx, StepBalanceProbe, permanent("target %s already holds volume %d", target, vid), true, nil)
		}
		earlier = true
		if !a.sourceWasWritable {
			frozen, err := frozenUnpersisted(ctx, e.c, source, vid)
			if err != nil {
				return nil, failure(ctx, StepBalanceProbe, err, true, nil)
			}
			a.sourceWasWritable = frozen
		}
	}

	p.begin(StepBalanceFreeze, 5)
	if err := ctx.Err(); err != nil {
		return fail(StepBalanceFreeze, err)
	}
	a.frozen = true
	cctx, cancel = call(ctx)
	err = e.c.VolumeMarkReadonly(cctx, source, vid, false)
	cancel()
	if err != nil {
		return fail(StepBalanceFreeze, err)
	}

	adopted := false
	if earlier {
		// Freeze the earlier copy too before comparing: it is writable (a
		// replica the master lists), and a write it took between the
		// comparison and its delete would be lost.
		a.copied = true
		cctx, cancel = call(ctx)
		err = e.c.VolumeMarkReadonly(cctx, target, vid, false)
		cancel()
		if err != nil {
			return fail(StepBalanceFreeze, err)
		}
		// Compare the earlier copy with the frozen source: identical (the
		// same live needles and the same index entries), it is adopted;
		// holding nothing the source lacks, it is replaced; holding needles
		// or index entries the source lacks, it may be the only good copy
		// of them and neither side is touched: both stay read-only, the
		// marks persisted, so that neither takes writes the other lacks.
		srcSet, err := e.c.LiveNeedles(ctx, source, vid, collection)
		if err != nil {
			return fail(StepBalanceFreeze, err)
		}
		dstSet, err := e.c.LiveNeedles(ctx, target, vid, collection)
		if err != nil {
			return fail(StepBalanceFreeze, err)
		}
		switch srcOnly, dstOnly := srcSet.Diff(dstSet); {
		case dstOnly > 0:
			return nil, failure(ctx, StepBalanceFreeze, permanent("target %s holds an earlier attempt's copy of volume %d with %d needles the source %s lacks; keeping both, read-only: reconcile them (weed shell volume.check.disk), then make the volume writable (weed shell volume.mark -writable)", target, vid, dstOnly, source), false, keepReadOnly(ctx, e.c, vid, source, target))
		default:
			// Fewer live needles may be deletes the copy took itself, and
			// the same live needles may hide a same-size overwrite: a copy
			// whose index is not a prefix of the source's is kept.
			if err := keepChangedCopy(ctx, e.c, source, target, vid, collection); err != nil {
				return nil, failure(ctx, StepBalanceFreeze, err, false, keepIfChanged(ctx, e.c, err, vid, source, target))
			}
			if srcOnly == 0 {
				// Adopted only if it is not behind either: a same-size
				// overwrite the source took since the copy hides in equal
				// live needles.
				behind, err := indexBeyond(ctx, e.c, source, target, vid, collection)
				if err != nil {
					return fail(StepBalanceFreeze, fmt.Errorf("cannot tell whether the earlier attempt's copy of volume %d on %s lacks changes of the source: %w", vid, target, err))
				}
				if adopted = behind == 0; adopted {
					break
				}
			}
			if err := deleteVolume(ctx, e.c, target, vid, true); err != nil {
				return fail(StepBalanceFreeze, fmt.Errorf("delete the earlier attempt's partial copy of volume %d on %s: %w", vid, target, err))
			}
		}
	}

	p.begin(StepBalanceCopy, 10)
	if err := ctx.Err(); err != nil {
		return fail(StepBalanceCopy, err)
	}
	a.copied = true
	cp := volumeCopy{c: e.c, vid: vid, collection: collection, source: source, target: target, diskType: spec.GetDiskType(),
		size: max(spec.GetSize(), st.GetVolumeSize())}
	if !adopted {
		if step, err := cp.copyAndTail(ctx, p, StepBalanceCopy, StepBalanceTail, 10, 80); err != nil {
			return fail(step, err)
		}
	}

	p.begin(StepBalanceVerify, 90)
	if err := ctx.Err(); err != nil {
		return fail(StepBalanceVerify, err)
	}
	dst, err := cp.verify(ctx)
	if err != nil {
		return fail(StepBalanceVerify, err)
	}

	// The irreversible step: delete the source. It runs to the end even if
	// the attempt is cancelled now; a failure keeps the source read-only and
	// never deletes the target.
	p.begin(StepBalanceDelete, 95)
	if err := ctx.Err(); err != nil {
		return fail(StepBalanceDelete, err)
	}
	dctx, dcancel := detached(ctx, finishTimeout)
	err = deleteVolume(dctx, e.c, source, vid, true)
	dcancel()
	if err != nil {
		return nil, failure(ctx, StepBalanceDelete, fmt.Errorf("the copy on %s is complete; the source stays read-only: %w", target, err), false, nil)
	}
	if adopted {
		// The adopted copy was frozen for the comparison; it is the volume
		// now. It is unfrozen only after the source's delete, never before:
		// writable beside the frozen source, a write it took would make it
		// look to a rollback (source present) like a copy to compare and
		// maybe delete. Stopped between the two, the attempt leaves the
		// copy frozen and the source gone; its retry finds exactly that
		// and unfreezes it (finishEarlier).
		cctx, cancel = call(ctx)
		err = e.c.VolumeMarkWritable(cctx, target, vid)
		cancel()
		if err != nil {
			return nil, failure(ctx, StepBalanceDelete, fmt.Errorf("the source is deleted and the copy on %s is complete but stays read-only: %w", target, err), false, nil)
		}
	}
	p.done()
	return moveChange(spec, source, target, dst.GetDatFileSize()), nil
}

// finishEarlier completes a move an earlier attempt of this task got past
// its irreversible step: the source no longer has the volume and the target
// holds it. An adopting attempt deletes the source while its copy is still
// frozen (so that no write lands on either side while both exist: a
// rollback in that window could not tell a copy that took writes from a
// partial one) and unfreezes the copy after; stopped in between, it leaves
// the copy, now the volume, read-only. The copy is made writable here if the
// freeze is a non-persistent one, as the attempt's is (an operator's
// persisted `volume.mark -readonly` stays). Nothing is deleted: the only
// change is the unfreeze of the one copy this move has left.
func (e *balanceExecutor) finishEarlier(ctx context.Context, spec *pb.TaskSpec, p *progressReporter, source, target string) (*fsmpb.CapacityChange, error) {
	vid, _ := volumeOf(spec)
	frozen, err := frozenUnpersisted(ctx, e.c, target, vid)
	if err != nil {
		return nil, failure(ctx, StepBalanceProbe, fmt.Errorf("volume %d is gone from the source %s; cannot read its copy on %s: %w", vid, source, target, err), true, nil)
	}
	if frozen {
		cctx, cancel := call(ctx)
		err = e.c.VolumeMarkWritable(cctx, target, vid)
		cancel()
		if err != nil {
			return nil, failure(ctx, StepBalanceDelete, fmt.Errorf("the source is deleted and the copy on %s is complete but stays read-only: %w", target, err), true, nil)
		}
	}
	cctx, cancel := call(ctx)
	dst, err := e.c.ReadVolumeFileStatus(cctx, target, vid)
	cancel()
	if err != nil {
		return nil, failure(ctx, StepBalanceVerify, err, true, nil)
	}
	p.done()
	return moveChange(spec, source, target, dst.GetDatFileSize()), nil
}

// moveChange is the capacity change of a move of spec's volume from source
// to target, whose copy holds newSize bytes.
func moveChange(spec *pb.TaskSpec, source, target string, newSize uint64) *fsmpb.CapacityChange {
	vid, collection := volumeOf(spec)
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_BALANCE,
		VolumeId:    vid,
		Collection:  collection,
		OldSize:     spec.GetSize(),
		NewSize:     newSize,
		Source:      source,
		Target:      target,
		CompletedAt: time.Now().UnixNano(),
	}
}

// rollback deletes whatever copy reached the target (the target had none
// before) and makes the source writable again if the attempt froze it. A
// copy that holds needles the source lacks is kept and the source left
// read-only with it: two writable copies would diverge.
func (a *balanceAttempt) rollback(ctx context.Context) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	var errs []error
	kept := false
	if a.copied {
		// A copy whose stream broke may still finish and mount; the delete
		// waits out a copy in flight.
		if err := deleteCopy(rctx, a.c, a.source, a.target, a.vid, a.collection); err != nil {
			errs = append(errs, err)
			kept = true
		}
	}
	if kept {
		if err := keepIfChanged(rctx, a.c, errors.Join(errs...), a.vid, a.source, a.target); err != nil {
			errs = append(errs, err)
		}
	}
	if a.frozen && a.sourceWasWritable && !kept {
		cctx, ccancel := call(rctx)
		if err := a.c.VolumeMarkWritable(cctx, a.source, a.vid); err != nil {
			errs = append(errs, err)
		}
		ccancel()
	}
	return errors.Join(errs...)
}

// Rollback undoes what an interrupted move left. If the source no longer
// has the volume, the move got past its irreversible step (or never had
// anything to move) and nothing is changed. Otherwise a copy on the target
// is this task's partial copy (a balance target never holds the volume
// before the move) and is deleted, and a source frozen by a non-persistent
// mark (as the attempt freezes it) is made writable again; a mark persisted
// in the .vif, as an operator's `volume.mark -readonly` is, stays. A copy
// that cannot be deleted keeps the source read-only.
func (e *balanceExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	vid, _ := volumeOf(spec)
	source, target, err := planBalance(spec)
	if err != nil {
		return err
	}
	frozen, err := frozenUnpersisted(ctx, e.c, source, vid)
	switch {
	case seaweed.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("cannot tell whether volume %d is still on %s; changing nothing: %w", vid, source, err)
	}
	if err := deleteCopy(ctx, e.c, source, target, vid, spec.GetTask().GetCollection()); err != nil {
		return errors.Join(err, keepIfChanged(ctx, e.c, err, vid, source, target))
	}
	if frozen {
		cctx, cancel := call(ctx)
		defer cancel()
		return e.c.VolumeMarkWritable(cctx, source, vid)
	}
	return nil
}

// deleteCopy deletes the move's copy on the target unless its .idx holds
// entries the source's lacks. The copy is mounted and writable from the end
// of its VolumeCopy until the source is deleted, and of a single-copy volume
// it acknowledges a client's write or delete alone: it may be the only copy
// of that change. Raw index entries are compared, not live needle sets: a
// delete on the copy looks like a copy that is behind, and an overwrite
// with data of the same size changes no live needle's id or size. A copy
// made from the source holds the source's entries in order (VolumeCopy
// copies the .idx, the tail appends), so one whose index is a prefix of the
// source's took nothing of its own. A copy that took something is kept,
// and the source with it, both read-only, and the task fails for good:
// neither rolling forward (the move has not verified its copy) nor
// deleting either side keeps every acknowledged change, and two writable
// copies would diverge. The copy is frozen first, so that no write lands
// between the comparison and the delete; a kept copy stays frozen. A
// target without the volume, or with a copy still in flight (not mounted
// yet), is deleted as before: the delete waits the copy out.
func deleteCopy(ctx context.Context, c *seaweed.VolumeClient, source, target string, vid uint32, collection string) error {
	cctx, cancel := call(ctx)
	err := c.VolumeMarkReadonly(cctx, target, vid, false)
	cancel()
	if err != nil && !seaweed.IsNotFound(err) {
		return fmt.Errorf("cannot freeze the copy of volume %d on %s to compare it with the source; keeping it and the source read-only: %w", vid, target, err)
	}
	if err := keepChangedCopy(ctx, c, source, target, vid, collection); err != nil {
		return err
	}
	return deleteVolume(ctx, c, target, vid, true)
}

// keepChangedCopy returns a permanent error when the frozen copy of the
// volume on target holds index entries the source lacks (see deleteCopy),
// and nil when it may be deleted: it took nothing of its own, or it is not
// there (not mounted yet).
func keepChangedCopy(ctx context.Context, c *seaweed.VolumeClient, source, target string, vid uint32, collection string) error {
	beyond, err := indexBeyond(ctx, c, target, source, vid, collection)
	switch {
	case err != nil && seaweed.IsNotFound(err):
		if present, perr := probeVolume(ctx, c, target, vid); perr == nil && !present {
			return nil
		}
		return fmt.Errorf("cannot compare the copy of volume %d on %s with the source %s; keeping both read-only: %w", vid, target, source, err)
	case err != nil:
		return fmt.Errorf("cannot tell whether the copy of volume %d on %s holds changes of its own; keeping it and the source read-only: %w", vid, target, err)
	case beyond > 0:
		return permanent("the copy of volume %d on %s has %d index entries the source %s lacks (writes or deletes it may have acknowledged after it was mounted); keeping both, read-only: %s", vid, target, beyond, source, compactedHint(vid, source, target))
	}
	return nil
}

// keepIfChanged persists the read-only marks of source and target when err
// (from keepChangedCopy or deleteCopy) is permanent: both copies are kept
// and must not diverge further after a volume server restart.
func keepIfChanged(ctx context.Context, c *seaweed.VolumeClient, err error, vid uint32, source, target string) error {
	if !errors.Is(err, errPermanent) {
		return nil
	}
	return keepReadOnly(ctx, c, vid, source, target)
}
