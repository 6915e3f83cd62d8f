package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Keeping two copies that may differ: when a task cannot tell that one copy
// of a volume holds every acknowledged change of another, it deletes
// neither and leaves both read-only for an operator.

// indexTimeout bounds one IndexBeyond comparison, which streams two whole
// .idx files (16 bytes an entry: a volume of millions of needles is tens
// of MiB).
const indexTimeout = 10 * time.Minute

// indexBeyond is c.IndexBeyond under indexTimeout.
func indexBeyond(ctx context.Context, c *seaweed.VolumeClient, a, b string, vid uint32, collection string) (int, error) {
	ictx, cancel := context.WithTimeout(ctx, indexTimeout)
	defer cancel()
	return c.IndexBeyond(ictx, a, b, vid, collection)
}

// keepReadOnly persists the read-only mark of the volume on each server (in
// its .vif), so that a volume server restart, which drops a mark that is
// not persisted, does not make copies writable that must not diverge
// further. A persisted mark is also what tells a later rollback of any
// task (frozenUnpersisted) that the volume was read-only before it: it
// stays read-only until an operator runs `weed shell volume.mark
// -writable`. A server without the volume is skipped.
func keepReadOnly(ctx context.Context, c *seaweed.VolumeClient, vid uint32, servers ...string) error {
	var errs []error
	for _, s := range servers {
		cctx, cancel := call(ctx)
		err := c.VolumeMarkReadonly(cctx, s, vid, true)
		cancel()
		if err != nil && !seaweed.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("keep volume %d read-only across restarts on %s: %w", vid, s, err))
		}
	}
	return errors.Join(errs...)
}

// compactedHint tells the operator how to check two copies that IndexBeyond
// found apart: the difference may be only the source's compaction, which
// rewrites its .idx, since the copy was made (or a tail that started again
// from a rounded timestamp and appended entries twice), and how to resolve
// either case.
func compactedHint(vid uint32, source, target string) string {
	return fmt.Sprintf("the copies may differ only because the source was compacted (vacuumed) after the copy was made, or a tail that started again appended entries twice; check with `weed shell volume.check.disk -volumeId %d` (it compares the live needles of the two copies): if they hold the same needles, delete the copy on %s (volume.delete -node %s -volumeId %d) and make the source writable (volume.mark -node %s -volumeId %d -writable); otherwise reconcile them first (volume.check.disk -force)", vid, target, target, vid, source, vid)
}
