package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// DefaultGarbageThreshold is the garbage ratio at or above which a replica is
// compacted when the spec gives none (SeaweedFS's own default).
const DefaultGarbageThreshold = 0.3

// Vacuum steps.
const (
	StepVacuumCheck   = "check"
	StepVacuumCompact = "compact"
	StepVacuumCommit  = "commit"
	StepVacuumVerify  = "verify"
)

// NewVacuumExecutor returns the executor of vacuum tasks. It follows
// SeaweedFS's own sequence (docs/seaweedfs-rpcs.md §5.1): check every
// replica, compact those at or above the threshold, commit each of them,
// clean up on failure, and check again.
func NewVacuumExecutor(c *seaweed.VolumeClient) Executor { return &vacuumExecutor{c: c} }

type vacuumExecutor struct{ c *seaweed.VolumeClient }

// vacuumReplica is what an attempt knows about one replica.
type vacuumReplica struct {
	server   string
	ratio    float64
	revision uint32 // compaction revision before the attempt
	size     uint64 // .dat size before (or after the commit)
	// compactStarted: temp files of this attempt may exist.
	compactStarted bool
	committed      bool
	// keepTemp: the temp files are not ours (another compaction is running)
	// or the commit state is unknown; cleanup must not touch them.
	keepTemp bool
	// uncertain: the commit may have left the replica changed or unloaded.
	uncertain bool
}

func committedOn(targets []*vacuumReplica) string {
	var s string
	for _, r := range targets {
		if r.committed {
			if s != "" {
				s += ", "
			}
			s += r.server
		}
	}
	return s
}

func (e *vacuumExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	vid, collection := volumeOf(spec)
	p := newProgress(report)
	threshold := spec.GetGarbageThreshold()
	if threshold <= 0 {
		threshold = DefaultGarbageThreshold
	}

	p.begin(StepVacuumCheck, 0)
	servers, err := parseServers("replicas", spec.GetReplicas())
	if err == nil && len(servers) == 0 {
		err = permanent("the spec names no replica of volume %d", vid)
	}
	if err != nil {
		return nil, failure(ctx, StepVacuumCheck, err, true, nil)
	}
	replicas := make([]*vacuumReplica, 0, len(servers))
	for _, s := range servers {
		r, err := e.check(ctx, s, vid)
		if err != nil {
			// Any check error aborts the whole volume, as in SeaweedFS.
			return nil, failure(ctx, StepVacuumCheck, err, true, nil)
		}
		replicas = append(replicas, r)
	}
	var targets []*vacuumReplica
	for _, r := range replicas {
		if r.ratio >= threshold {
			targets = append(targets, r)
		}
	}
	if len(targets) == 0 {
		p.done()
		return vacuumChange(spec, replicas), nil
	}

	// Compact every target; any failure cleans them all up.
	p.begin(StepVacuumCompact, 10)
	for i, r := range targets {
		if err := ctx.Err(); err != nil {
			return nil, failure(ctx, StepVacuumCompact, err, true, e.cleanup(ctx, vid, targets))
		}
		r.compactStarted = true
		base := 10 + 60*float64(i)/float64(len(targets))
		err := e.c.VacuumVolumeCompact(ctx, r.server, vid, func(processed int64) {
			if r.size > 0 {
				p.within(base + 60/float64(len(targets))*min(1, float64(processed)/float64(r.size)))
			}
		})
		if err != nil {
			return nil, failure(ctx, StepVacuumCompact, err, true, e.cleanup(ctx, vid, targets))
		}
		p.within(10 + 60*float64(i+1)/float64(len(targets)))
	}

	// Commit each target once. A commit is never retried: a second commit
	// (or one after a failed compaction or a restart) unloads the volume.
	p.begin(StepVacuumCommit, 70)
	for i, r := range targets {
		if err := ctx.Err(); err != nil {
			return nil, failure(ctx, StepVacuumCommit, err, true, e.cleanup(ctx, vid, targets))
		}
		if err := e.commit(ctx, r, vid, collection); err != nil {
			if done := committedOn(targets); done != "" {
				// Harmless: a committed replica holds the same live needles.
				err = fmt.Errorf("%w (already committed on %s)", err, done)
			}
			return nil, failure(ctx, StepVacuumCommit, err, !r.uncertain, e.cleanup(ctx, vid, targets))
		}
		p.within(70 + 20*float64(i+1)/float64(len(targets)))
	}

	// Verify: every replica answers after its swap. The commits are done,
	// so a cancellation now does not turn the completed vacuum into a
	// failure. The garbage ratio is not held against the attempt: commit
	// already saw each replica's compaction revision advance, and garbage
	// found now was deleted while the compaction ran (SeaweedFS carries
	// those deletes into the new files); detection vacuums it again later.
	p.begin(StepVacuumVerify, 90)
	vctx, vcancel := detached(ctx, finishTimeout)
	defer vcancel()
	for _, r := range targets {
		cctx, cancel := call(vctx)
		_, err := e.c.VacuumVolumeCheck(cctx, r.server, vid)
		cancel()
		if err != nil {
			return nil, failure(ctx, StepVacuumVerify, fmt.Errorf("after a successful commit: %w", err), false, nil)
		}
	}
	p.done()
	return vacuumChange(spec, replicas), nil
}

// check reads a replica's garbage ratio, compaction revision and size.
func (e *vacuumExecutor) check(ctx context.Context, server string, vid uint32) (*vacuumReplica, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	chk, err := e.c.VacuumVolumeCheck(cctx, server, vid)
	if err != nil {
		return nil, err
	}
	st, err := e.c.ReadVolumeFileStatus(cctx, server, vid)
	if err != nil {
		return nil, err
	}
	if st.GetDatFileSize() == 0 {
		// FileStat reports zeros when the volume's data file is not loaded
		// (for instance after a failed commit): nothing may be done to it.
		return nil, permanent("volume %d on %s is registered but not loaded (no data file open); it returns when the volume server restarts", vid, server)
	}
	return &vacuumReplica{server: server, ratio: chk.GetGarbageRatio(), revision: st.GetCompactionRevision(), size: st.GetDatFileSize()}, nil
}

// commit commits one replica's compaction and finds out, from the
// compaction revision, what actually happened. It runs on a context the
// attempt's cancellation cannot cut short.
func (e *vacuumExecutor) commit(ctx context.Context, r *vacuumReplica, vid uint32, collection string) error {
	dctx, cancel := detached(ctx, commitTimeout)
	defer cancel()
	// The compacted files of this attempt must still be there: after a
	// volume-server restart (which discards them) or someone else's
	// commit/cleanup, a commit would unload the volume.
	has, err := e.c.HasVolumeFile(dctx, r.server, vid, collection, ".cpd")
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("the compacted copy of volume %d on %s is gone (volume server restarted, or another vacuum intervened); not committing", vid, r.server)
	}
	resp, commitErr := e.c.VacuumVolumeCommit(dctx, r.server, vid)
	st, statErr := e.c.ReadVolumeFileStatus(dctx, r.server, vid)
	switch {
	case statErr == nil && st.GetDatFileSize() > 0 && st.GetCompactionRevision() != r.revision:
		// The swap happened, whatever the commit call said.
		r.committed = true
		r.size = st.GetDatFileSize()
		if commitErr == nil && resp.GetVolumeSize() > 0 {
			r.size = resp.GetVolumeSize()
		}
		return nil
	case statErr == nil && st.GetDatFileSize() == 0:
		r.keepTemp, r.uncertain = true, true
		return fmt.Errorf("%w: volume %d on %s is unloaded after the commit (%v); it returns when the volume server restarts", errPermanent, vid, r.server, commitErr)
	case statErr != nil:
		r.keepTemp, r.uncertain = true, true
		if commitErr != nil {
			return fmt.Errorf("%w; and then: %w", commitErr, statErr)
		}
		return fmt.Errorf("commit answered but its outcome is unknown: %w", statErr)
	case commitErr == nil:
		// OK without a new revision: the server skipped the commit because
		// a compaction of the volume is running; its temp files are not ours.
		r.keepTemp = true
		return fmt.Errorf("commit of volume %d on %s did nothing (compaction revision still %d): another compaction of the volume is running", vid, r.server, r.revision)
	default:
		return commitErr
	}
}

// cleanup removes the temp files of every target not committed; it runs on a
// fresh context and reports what it could not do.
func (e *vacuumExecutor) cleanup(ctx context.Context, vid uint32, targets []*vacuumReplica) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	var errs []error
	for _, r := range targets {
		if !r.compactStarted || r.committed || r.keepTemp {
			continue
		}
		cctx, ccancel := call(rctx)
		err := e.c.VacuumVolumeCleanup(cctx, r.server, vid)
		ccancel()
		if err != nil && !seaweed.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Rollback removes temp files an interrupted attempt may have left on any
// replica. It never commits, and a committed compaction needs no undoing.
func (e *vacuumExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	vid, _ := volumeOf(spec)
	servers, err := parseServers("replicas", spec.GetReplicas())
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range servers {
		cctx, cancel := call(ctx)
		err := e.c.VacuumVolumeCleanup(cctx, s, vid)
		if err == nil {
			st, serr := e.c.ReadVolumeFileStatus(cctx, s, vid)
			switch {
			case serr != nil:
				err = serr
			case st.GetDatFileSize() == 0:
				err = fmt.Errorf("volume %d on %s is not loaded (an interrupted commit); it returns when the volume server restarts", vid, s)
			}
		}
		cancel()
		if err != nil && !seaweed.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func vacuumChange(spec *pb.TaskSpec, replicas []*vacuumReplica) *fsmpb.CapacityChange {
	vid, collection := volumeOf(spec)
	var newSize uint64
	for _, r := range replicas {
		newSize = max(newSize, r.size)
	}
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_VACUUM,
		VolumeId:    vid,
		Collection:  collection,
		OldSize:     spec.GetSize(),
		NewSize:     newSize,
		CompletedAt: time.Now().UnixNano(),
	}
}
