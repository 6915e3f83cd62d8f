package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Steps of a delete_empty attempt.
const (
	StepDeleteEmptyCheck  = "check"
	StepDeleteEmptyFreeze = "freeze"
	StepDeleteEmptyDelete = "delete"
)

// NewDeleteEmptyExecutor returns the executor of delete_empty tasks
// (SeaweedFS's volume.deleteEmpty), trusting no topology: every replica
// the spec lists is checked on its volume server (its status's file
// counts and the live needles of its .idx: none may be live), marked
// read-only (not persisted) so that no write lands between the check
// and the delete, checked again, and only then deleted, each with
// only_empty/only_garbage so that the server itself refuses a volume
// that holds a file. If any check fails nothing is deleted: the replicas
// it marked are made writable again and the attempt fails for good (the
// volume is not empty). A replica already gone (an earlier attempt
// deleted it) is skipped.
//
// Rollback (after a worker restart) makes writable again every replica
// still there that is read-only without a persisted mark: what an
// interrupted attempt froze.
func NewDeleteEmptyExecutor(c *seaweed.VolumeClient) Executor { return &deleteEmptyExecutor{c: c} }

type deleteEmptyExecutor struct{ c *seaweed.VolumeClient }

// emptyOn checks the replica on server: its status's counts say no live
// file and its .idx holds no live needle. It returns whether the replica
// was read-only.
func (e *deleteEmptyExecutor) emptyOn(ctx context.Context, server string, vid uint32, collection string) (readOnly bool, err error) {
	cctx, cancel := call(ctx)
	st, err := e.c.VolumeStatus(cctx, server, vid)
	cancel()
	if err != nil {
		return false, fmt.Errorf("status of volume %d on %s: %w", vid, server, err)
	}
	if n, d := st.GetFileCount(), st.GetFileDeletedCount(); n > d {
		return false, permanent("volume %d on %s holds %d files, %d deleted: not empty", vid, server, n, d)
	}
	set, err := e.c.LiveNeedles(ctx, server, vid, collection)
	if err != nil {
		return false, fmt.Errorf("index of volume %d on %s: %w", vid, server, err)
	}
	if set.Len() > 0 {
		return false, permanent("volume %d on %s has %d live needles in its index: not empty", vid, server, set.Len())
	}
	return st.GetIsReadOnly(), nil
}

func (e *deleteEmptyExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepDeleteEmptyCheck, 0)
	vid, collection := volumeOf(spec)
	replicas, err := parseServers("replica", spec.GetReplicas())
	if err != nil {
		return nil, failure(ctx, StepDeleteEmptyCheck, err, true, nil)
	}
	var held []string
	readOnly := map[string]bool{}
	for _, s := range replicas {
		ok, err := probeVolume(ctx, e.c, s, vid)
		if err != nil {
			return nil, failure(ctx, StepDeleteEmptyCheck, fmt.Errorf("cannot tell whether %s holds volume %d; deleting nothing: %w", s, vid, err), true, nil)
		}
		if !ok {
			continue // deleted by an earlier attempt
		}
		ro, err := e.emptyOn(ctx, s, vid, collection)
		if err != nil {
			return nil, failure(ctx, StepDeleteEmptyCheck, fmt.Errorf("deleting nothing: %w", err), true, nil)
		}
		held, readOnly[s] = append(held, s), ro
	}
	if len(held) == 0 {
		return nil, failure(ctx, StepDeleteEmptyCheck, permanent("volume %d is on none of %v", vid, replicas), true, nil)
	}
	// Freeze every replica, then check again: a write that landed after
	// the first check shows now, and none lands after.
	p.begin(StepDeleteEmptyFreeze, 30)
	var marked []string
	undo := func(cause error, step string) error {
		rctx, cancel := detached(ctx, finishTimeout)
		defer cancel()
		var errs []error
		for _, s := range marked {
			cctx, ccancel := call(rctx)
			if err := e.c.VolumeMarkWritable(cctx, s, vid); err != nil && !seaweed.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("mark volume %d writable again on %s: %w", vid, s, err))
			}
			ccancel()
		}
		return failure(ctx, step, cause, true, errors.Join(errs...))
	}
	for _, s := range held {
		if readOnly[s] {
			continue
		}
		cctx, cancel := call(ctx)
		err := e.c.VolumeMarkReadonly(cctx, s, vid, false)
		cancel()
		if err != nil {
			return nil, undo(fmt.Errorf("mark volume %d read-only on %s; deleting nothing: %w", vid, s, err), StepDeleteEmptyFreeze)
		}
		marked = append(marked, s)
	}
	for _, s := range held {
		if _, err := e.emptyOn(ctx, s, vid, collection); err != nil {
			return nil, undo(fmt.Errorf("after marking it read-only, deleting nothing: %w", err), StepDeleteEmptyFreeze)
		}
	}
	p.begin(StepDeleteEmptyDelete, 60)
	if err := ctx.Err(); err != nil {
		return nil, undo(err, StepDeleteEmptyDelete)
	}
	// From here the deletes run to their end: a replica left behind
	// alone would be a volume short of a copy.
	dctx, cancel := detached(ctx, finishTimeout)
	defer cancel()
	var deleted []string
	for _, s := range held {
		cctx, ccancel := call(dctx)
		err := e.c.VolumeDeleteEmpty(cctx, s, vid)
		ccancel()
		if err != nil && !seaweed.IsNotFound(err) {
			if len(deleted) == 0 {
				return nil, undo(fmt.Errorf("delete empty volume %d on %s; nothing deleted: %w", vid, s, err), StepDeleteEmptyDelete)
			}
			return nil, failure(ctx, StepDeleteEmptyDelete, fmt.Errorf("delete empty volume %d on %s (deleted on %v already; a retry deletes the rest): %w", vid, s, deleted, err), false, nil)
		}
		deleted = append(deleted, s)
	}
	p.done()
	return &fsmpb.CapacityChange{TaskId: spec.GetTask().GetId(), Type: fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, VolumeId: vid, Collection: collection,
		OldSize: spec.GetSize()}, nil
}

// Rollback makes writable again the replicas an interrupted attempt
// froze (read-only, not persisted) that still exist.
func (e *deleteEmptyExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	vid, _ := volumeOf(spec)
	replicas, err := parseServers("replica", spec.GetReplicas())
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range replicas {
		frozen, err := frozenUnpersisted(ctx, e.c, s, vid)
		switch {
		case seaweed.IsNotFound(err):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("cannot tell whether volume %d on %s is frozen: %w", vid, s, err))
			continue
		}
		if frozen {
			cctx, cancel := call(ctx)
			if err := e.c.VolumeMarkWritable(cctx, s, vid); err != nil && !seaweed.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("mark volume %d writable again on %s: %w", vid, s, err))
			}
			cancel()
		}
	}
	return errors.Join(errs...)
}
