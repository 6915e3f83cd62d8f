package worker

import (
	"context"
	"fmt"
	"slices"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// noteReplica records replica r of the attempt's volume, whose status is
// st: whether it was read-only before the attempt. A retry finds the
// replicas an abandoned attempt froze (a mark that is not persisted, as
// attempts freeze) read-only: they were writable.
func (a *ecAttempt) noteReplica(ctx context.Context, r string, st *volume_server_pb.VolumeStatusResponse, retry bool) error {
	a.wasReadOnly[r] = st.GetIsReadOnly()
	if a.wasReadOnly[r] && retry {
		frozen, err := frozenUnpersisted(ctx, a.c, r, a.vid)
		if err != nil {
			return err
		}
		a.wasReadOnly[r] = !frozen
	}
	return nil
}

// probeOriginals asks every server that may hold an original of the volume
// (the plan's, the earlier attempts', the master's shard holders) whether
// it does, on every retry, once each (the spec's replicas already
// answered): the leader plans from a topology (up to a poll old) that does
// not list a replica whose server is restarting, has not re-registered or
// is cut off from the master, whether the spec it plans is a finish spec
// or names the replicas the topology shows. One that holds it is a
// replica: it joins the plan, and is compared with the generation by
// finishEarlier, or frozen, encoded and deleted with the others. One that
// answers "not found" is noted (a.gone) and asked again by confirmGone.
// Any other answer fails the attempt, retryably, before anything changed:
// finishing beside a surviving original would leave it to come back
// writable next to the EC volume.
func (a *ecAttempt) probeOriginals(ctx context.Context, spec *pb.TaskSpec) error {
	for _, s := range a.sweepServers(spec) {
		known := func(x string) bool { return sameServer(x, s) }
		if slices.ContainsFunc(a.replicas, known) || slices.ContainsFunc(a.gone, known) {
			continue
		}
		found, err := a.probeOriginal(ctx, s)
		if err != nil {
			return err
		}
		if !found {
			a.gone = append(a.gone, s)
		}
	}
	return nil
}

// probeOriginal asks s for the volume. One it holds is noted and joins the
// plan as a replica (true); "not found" gives false; any other answer is
// an error: the attempt waits for s.
func (a *ecAttempt) probeOriginal(ctx context.Context, s string) (bool, error) {
	cctx, cancel := call(ctx)
	st, err := a.c.VolumeStatus(cctx, s, a.vid)
	cancel()
	switch {
	case err == nil:
		if err := a.noteReplica(ctx, s, st, true); err != nil {
			return false, waitingFor(s, a.vid, err)
		}
		a.replicas = append(a.replicas, s)
		return true, nil
	case seaweed.IsNotFound(err):
		return false, nil
	default:
		return false, waitingFor(s, a.vid, err)
	}
}

// confirmGone asks again, once the survey and the generation checks are
// done and before finishEarlier freezes or deletes anything, every server
// that answered "not found": SeaweedFS gives that answer for a deleted
// volume, but also for one an operator unmounted (weed shell
// volume.unmount; volume.mount brings it back), one whose disk failed to
// load it, and one a copy is still receiving (VolumeCopy mounts it only
// once its files are written). Not for one still loading at startup: in
// this SeaweedFS version NewStore loads every disk's volumes before the
// volume server starts serving gRPC. A "not found" counts only when both
// probes give it and the server answered the survey in between (it is
// reachable: the survey asks every server probeOriginals asked, and fails
// the attempt on any other answer). One that now holds the volume joins
// the plan as a replica.
//
// What remains: a replica that stays unmounted or failed to load (a bad
// disk) answers "not found" every time and is treated as lost; from then
// on the generation is the volume's redundancy. That never leaves the
// volume less redundant than the completed encode would: the generation
// was verified complete (14 distinct shards of one encode run, spread as a
// plan spreads them, equal sizes and indexes), an unmounted or unloadable
// replica serves nothing whether or not the task completes, and every
// replica that does answer is compared with the generation and deleted
// only if it agrees. If it is mounted again or the disk repaired, the
// volume comes back beside the EC volume, as it would after any encode
// (weed shell ec.encode included) that could not see it.
func (a *ecAttempt) confirmGone(ctx context.Context) error {
	for _, s := range slices.Clone(a.gone) {
		found, err := a.probeOriginal(ctx, s)
		if err != nil {
			return err
		}
		if found {
			a.gone = slices.DeleteFunc(a.gone, func(x string) bool { return x == s })
		}
	}
	return nil
}

func waitingFor(server string, vid uint32, err error) error {
	return fmt.Errorf("waiting for %s to answer: an original of volume %d may still be there; changing nothing until it answers (if it is gone for good with its disks, cancel this task and submit a new one, which does not look there): %w", server, vid, err)
}
