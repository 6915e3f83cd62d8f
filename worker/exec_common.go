package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Time limits of the RPCs. The stream and long-running calls (compact, copy,
// generate) are bounded only by the attempt's context.
const (
	// callTimeout bounds a metadata RPC (status, marks, mount, delete).
	callTimeout = time.Minute
	// commitTimeout bounds a vacuum commit, which may wait for a commit slot.
	commitTimeout = 10 * time.Minute
	// rollbackTimeout bounds a whole rollback, which runs on a context that is
	// no longer cancelled by the attempt's.
	rollbackTimeout = 3 * time.Minute
	// finishTimeout bounds an irreversible step once it has started; it runs
	// to completion even if the attempt is cancelled meanwhile.
	finishTimeout = 3 * time.Minute
	// busyRetryEvery spaces the retries of a delete refused while a copy of
	// the volume is still in flight.
	busyRetryEvery = 200 * time.Millisecond
)

// progressReporter wraps a Reporter (which may be nil) for one attempt.
type progressReporter struct {
	report Reporter
	step   string
	pct    float64
}

func newProgress(r Reporter) *progressReporter { return &progressReporter{report: r} }

// begin enters a step at pct: a checkpoint.
func (p *progressReporter) begin(step string, pct float64) {
	p.step, p.pct = step, pct
	if p.report != nil {
		p.report(step, pct, true)
	}
}

// within reports progress inside the current step (not a checkpoint).
func (p *progressReporter) within(pct float64) {
	if pct <= p.pct {
		return
	}
	p.pct = pct
	if p.report != nil {
		p.report(p.step, pct, false)
	}
}

// done reports the attempt complete.
func (p *progressReporter) done() {
	p.step, p.pct = "done", 100
	if p.report != nil {
		p.report("done", 100, true)
	}
}

// call returns a context for one metadata RPC.
func call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// detached returns a context that ignores the attempt's cancellation, for
// rollbacks and for irreversible steps that must not stop half-way.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// classify maps a volume server's "no such volume" answer to
// ErrVolumeNotFound, keeping the original error in the chain.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrVolumeNotFound) {
		return err
	}
	if seaweed.IsNotFound(err) {
		return fmt.Errorf("%w: %w", ErrVolumeNotFound, err)
	}
	return err
}

// failure builds the *Failure an attempt returns. A cancelled attempt wraps
// ctx.Err(); a missing volume is never retryable.
func failure(ctx context.Context, step string, err error, rolledBack bool, rollbackErr error) *Failure {
	err = classify(err)
	// A rollback that refused to destroy a copy holding acknowledged
	// changes leaves a state only an operator resolves: not retryable.
	retryable := !errors.Is(err, ErrVolumeNotFound) && !errors.Is(err, errPermanent) && !errors.Is(rollbackErr, errPermanent)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if rollbackErr != nil {
		err = fmt.Errorf("%w; rollback: %v", err, rollbackErr)
		rolledBack = false
	}
	return &Failure{Step: step, Err: err, Retryable: retryable, RolledBack: rolledBack}
}

// errPermanent marks a failure that the same spec cannot overcome (a bad
// spec, a volume in a state the task must not touch).
var errPermanent = errors.New("not retryable")

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errPermanent, fmt.Sprintf(format, args...))
}

// volumeOf returns the task's volume id and collection.
func volumeOf(spec *pb.TaskSpec) (uint32, string) {
	return spec.GetTask().GetVolumeId(), spec.GetTask().GetCollection()
}

// parseServers checks every address of a spec and drops duplicates (two
// forms of one server count once).
func parseServers(what string, addrs []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		p, err := seaweed.ParseAddress(a)
		if err != nil {
			return nil, permanent("%s: %v", what, err)
		}
		if seen[p.GRPC] {
			continue
		}
		seen[p.GRPC] = true
		out = append(out, a)
	}
	return out, nil
}

// sameServer reports whether two addresses name the same volume server.
func sameServer(a, b string) bool {
	x, err1 := seaweed.ParseAddress(a)
	y, err2 := seaweed.ParseAddress(b)
	return err1 == nil && err2 == nil && x.GRPC == y.GRPC
}

// deleteVolume deletes a volume on a server, treating "not there" as done
// and waiting out a copy of it that is still in flight (the server refuses
// the delete until the copy has settled).
func deleteVolume(ctx context.Context, c *seaweed.VolumeClient, server string, vid uint32, keepRemoteData bool) error {
	for {
		cctx, cancel := call(ctx)
		err := c.VolumeDelete(cctx, server, vid, keepRemoteData)
		cancel()
		switch {
		case err == nil, seaweed.IsNotFound(err):
			return nil
		case !seaweed.IsBeingCopied(err):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(busyRetryEvery):
		}
	}
}

// probeVolume reports whether the server holds the volume: (true, nil),
// (false, nil) for a clear "not found", or an error when it cannot tell.
func probeVolume(ctx context.Context, c *seaweed.VolumeClient, server string, vid uint32) (bool, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	_, err := c.ReadVolumeFileStatus(cctx, server, vid)
	switch {
	case err == nil:
		return true, nil
	case seaweed.IsNotFound(err):
		return false, nil
	default:
		return false, err
	}
}

// frozenUnpersisted reports whether the volume is read-only on the server
// without the mark being persisted in its .vif. Executors freeze with
// persist=false; an operator's `volume.mark -readonly` persists, and a
// Rollback after a restart must not undo that.
func frozenUnpersisted(ctx context.Context, c *seaweed.VolumeClient, server string, vid uint32) (bool, error) {
	cctx, cancel := call(ctx)
	defer cancel()
	st, err := c.VolumeStatus(cctx, server, vid)
	if err != nil || !st.GetIsReadOnly() {
		return false, err
	}
	fs, err := c.ReadVolumeFileStatus(cctx, server, vid)
	if err != nil {
		return false, err
	}
	return !fs.GetVolumeInfo().GetReadOnly(), nil
}
