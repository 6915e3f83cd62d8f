package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// Remove-extra steps.
const (
	StepRemoveExtraSurvey = "survey"
	StepRemoveExtraDelete = "delete"
)

// NewRemoveExtraExecutor returns the executor of remove_extra tasks: it
// deletes one copy beyond what the volume's placement asks for, as `weed
// shell volume.fix.replication` trims an over-replicated volume and
// ec.balance deduplicates shards, but only after it has verified, on the
// volume servers themselves, that every copy the placement asks for stays
// in place: present, mounted, readable and at least as up to date as the
// copy it removes. It never trusts the topology for that. Any doubt (a
// server that does not answer, copies that disagree in a way it cannot
// order) aborts the attempt with nothing deleted.
//
// A regular volume (spec.Replicas, best candidate first): every replica
// is surveyed (VolumeStatus: mounted; ReadVolumeFileStatus: last append;
// LiveNeedles: the needles it holds). The copies holding what the newest
// one holds are fresh; any other is stale (it missed writes or deletes,
// typically on a server that came back after the volume was repaired
// elsewhere). A stale copy is removed first (the stalest), and a fresh one
// only when every copy is identical (then the spec's first). It deletes
// only while at least the placement's copies stay, all fresh, and the
// victim appended nothing after the newest of them.
//
// An EC volume (spec.Source: the planned victim; spec.PresentShards: every
// holder): every holder is surveyed (the shards it mounts, their sizes).
// The victim is the planned one, else another holder (most shards first),
// that mounts a shard another server mounts at the same size, or mounts
// one truncated (shorter than its other shards) that another server
// mounts whole; it loses every such shard, so each removed shard stays
// mounted whole elsewhere. When
// that leaves it no shard, SeaweedFS deletes its .ecx and .ecj too: then
// every delete its .ecj journals must be journalled by a server that keeps
// shards (SeaweedFS journals an EC delete on one holder only), or the
// delete would be undone; a holder that fails this is passed over for
// the next (typically the planned victim is the rebuilt copy, whose .ecj
// took the deletes, and the next the server come back, whose .ecj missed
// them).
//
// Rollback deletes nothing: an attempt either deleted its victim (which a
// retry finds gone, and fails on as nothing is extra any more) or did not.
func NewRemoveExtraExecutor(c *seaweed.VolumeClient) Executor { return &removeExtraExecutor{c: c} }

type removeExtraExecutor struct{ c *seaweed.VolumeClient }

func (e *removeExtraExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepRemoveExtraSurvey, 0)
	if len(spec.GetShardTargets()) > 0 {
		return e.shards(ctx, spec, p)
	}
	return e.replica(ctx, spec, p)
}

// surveyed is one replica as the survey saw it.
type surveyed struct {
	server  string
	status  *volume_server_pb.ReadVolumeFileStatusResponse
	needles seaweed.NeedleSet
}

// newer reports whether a's last append is after b's, as far as the file
// status tells: its .dat modified later (seconds), or in the same second
// with a longer index (every write and delete appends an index entry).
func (a surveyed) newer(b surveyed) bool {
	ta, tb := a.status.GetDatFileTimestampSeconds(), b.status.GetDatFileTimestampSeconds()
	if ta != tb {
		return ta > tb
	}
	return a.status.GetIdxFileSize() > b.status.GetIdxFileSize()
}

func (e *removeExtraExecutor) replica(ctx context.Context, spec *pb.TaskSpec, p *progressReporter) (*fsmpb.CapacityChange, error) {
	vid, collection := volumeOf(spec)
	want := placement.Copies(spec.GetReplicaPlacement())
	replicas, err := parseServers("replica", spec.GetReplicas())
	if err != nil {
		return nil, failure(ctx, StepRemoveExtraSurvey, err, true, nil)
	}
	var copies []surveyed
	for _, s := range replicas {
		held, err := probeVolume(ctx, e.c, s, vid)
		if err != nil {
			return nil, failure(ctx, StepRemoveExtraSurvey, fmt.Errorf("cannot tell whether %s holds volume %d; deleting nothing: %w", s, vid, err), true, nil)
		}
		if !held {
			continue // gone since the plan: one copy fewer to choose from
		}
		cctx, cancel := call(ctx)
		_, err = e.c.VolumeStatus(cctx, s, vid)
		var fs *volume_server_pb.ReadVolumeFileStatusResponse
		if err == nil {
			fs, err = e.c.ReadVolumeFileStatus(cctx, s, vid)
		}
		cancel()
		if err != nil {
			return nil, failure(ctx, StepRemoveExtraSurvey, fmt.Errorf("the copy of volume %d on %s is not mounted or not readable; deleting nothing: %w", vid, s, err), true, nil)
		}
		set, err := e.c.LiveNeedles(ctx, s, vid, collection)
		if err != nil {
			return nil, failure(ctx, StepRemoveExtraSurvey, fmt.Errorf("deleting nothing: %w", err), true, nil)
		}
		copies = append(copies, surveyed{server: s, status: fs, needles: set})
	}
	if len(copies) <= want {
		return nil, failure(ctx, StepRemoveExtraSurvey, permanent("volume %d has %d copies and its placement %03d asks for %d: none is extra any more; deleting nothing", vid, len(copies), spec.GetReplicaPlacement(), want), true, nil)
	}
	victim, keep, err := chooseReplicaVictim(copies, want)
	if err != nil {
		return nil, failure(ctx, StepRemoveExtraSurvey, fmt.Errorf("volume %d: %w", vid, err), true, nil)
	}
	p.begin(StepRemoveExtraDelete, 50)
	if err := ctx.Err(); err != nil {
		return nil, failure(ctx, StepRemoveExtraDelete, err, true, nil)
	}
	dctx, cancel := detached(ctx, finishTimeout)
	err = deleteVolume(dctx, e.c, victim.server, vid, true)
	cancel()
	if err != nil {
		return nil, failure(ctx, StepRemoveExtraDelete, fmt.Errorf("delete the extra copy of volume %d on %s (kept %v): %w", vid, victim.server, keep, err), true, nil)
	}
	p.done()
	return &fsmpb.CapacityChange{
		TaskId: spec.GetTask().GetId(), Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeId: vid, Collection: collection,
		OldSize: victim.status.GetDatFileSize(), Source: victim.server, CompletedAt: time.Now().UnixNano(),
	}, nil
}

// chooseReplicaVictim picks the copy to delete among copies (in the
// spec's order of preference) and the ones that stay, or says why none
// may go. The reference is the copy appended to last (surveyed.newer; the
// first such); the fresh copies hold exactly its needles. The victim is
// the stale copy appended to least recently (the first such), or, with
// none stale, the first copy. Refused unless at least want fresh copies
// stay and a stale victim was appended to strictly before the reference
// (one appended to as late may hold writes the others missed).
func chooseReplicaVictim(copies []surveyed, want int) (victim surveyed, keep []string, err error) {
	ref := copies[0]
	for _, c := range copies[1:] {
		if c.newer(ref) {
			ref = c
		}
	}
	fresh := func(c surveyed) bool {
		a, b := c.needles.Diff(ref.needles)
		return a == 0 && b == 0
	}
	vi := -1
	for i, c := range copies {
		if !fresh(c) && (vi < 0 || copies[vi].newer(c)) {
			vi = i
		}
	}
	stale := vi >= 0
	if !stale {
		vi = 0
	}
	victim = copies[vi]
	freshKept := 0
	for i, c := range copies {
		if i == vi {
			continue
		}
		keep = append(keep, c.server)
		if fresh(c) {
			freshKept++
		}
	}
	switch {
	case freshKept < want:
		return victim, nil, permanent("only %d of the copies that would stay hold what the newest copy (%s) holds, and the placement asks for %d: the copies disagree; deleting nothing (reconcile them: weed shell volume.check.disk)", freshKept, ref.server, want)
	case stale && !ref.newer(victim):
		return victim, nil, permanent("the copy on %s differs from the newest (%s) but was appended to as late: it may hold writes the others missed; deleting nothing (reconcile them: weed shell volume.check.disk)", victim.server, ref.server)
	}
	return victim, keep, nil
}

func (e *removeExtraExecutor) shards(ctx context.Context, spec *pb.TaskSpec, p *progressReporter) (*fsmpb.CapacityChange, error) {
	vid, collection := volumeOf(spec)
	planned := spec.GetSource()
	if _, err := seaweed.ParseAddress(planned); err != nil {
		return nil, failure(ctx, StepRemoveExtraSurvey, permanent("victim %q: %v", planned, err), true, nil)
	}
	// Survey every server listed with shards of the volume, the planned
	// victim first: which shards each has mounted, at what size.
	servers := []string{planned}
	for _, ps := range spec.GetPresentShards() {
		if !slices.ContainsFunc(servers, func(o string) bool { return sameServer(o, ps.GetServer()) }) {
			servers = append(servers, ps.GetServer())
		}
	}
	mounted := map[string]map[uint32]int64{}
	for _, srv := range servers {
		cctx, cancel := call(ctx)
		m, err := e.c.MountedEcShards(cctx, srv, vid)
		cancel()
		if err != nil {
			// A server that does not answer may be the only other holder
			// of a shard: no doubt is allowed.
			return nil, failure(ctx, StepRemoveExtraSurvey, fmt.Errorf("survey the shards of volume %d on %s; deleting nothing: %w", vid, srv, err), true, nil)
		}
		mounted[srv] = m
	}
	for sh := uint32(0); sh < placement.TotalShards; sh++ {
		if !slices.ContainsFunc(servers, func(srv string) bool { _, ok := mounted[srv][sh]; return ok }) {
			return nil, failure(ctx, StepRemoveExtraSurvey, permanent("shard %d of volume %d is mounted nowhere: the volume is short of shards, which its rebuild restores first; deleting nothing", sh, vid), true, nil)
		}
	}
	// Candidates: the planned victim, then the other servers, most shards
	// first. The first one with a duplicate whose removal loses no
	// journalled delete is the victim.
	cands := slices.Clone(servers[1:])
	slices.SortStableFunc(cands, func(a, b string) int { return len(mounted[b]) - len(mounted[a]) })
	cands = append([]string{planned}, cands...)
	var victim string
	var remove []uint32
	var refusals []error
	for _, c := range cands {
		dups := duplicatesOn(c, servers, mounted)
		if len(dups) == 0 {
			continue
		}
		if len(dups) == len(mounted[c]) {
			// The victim would keep no shard: SeaweedFS deletes its .ecx
			// and .ecj with the last one.
			if err := e.journalCovered(ctx, vid, collection, c, servers, mounted); err != nil {
				if !errors.Is(err, errPermanent) {
					return nil, failure(ctx, StepRemoveExtraSurvey, err, true, nil)
				}
				refusals = append(refusals, err)
				continue
			}
		}
		victim, remove = c, dups
		break
	}
	if victim == "" {
		if len(refusals) == 0 {
			return nil, failure(ctx, StepRemoveExtraSurvey, permanent("no shard of volume %d is mounted at the same size on two servers any more; deleting nothing", vid), true, nil)
		}
		return nil, failure(ctx, StepRemoveExtraSurvey, errors.Join(refusals...), true, nil)
	}
	p.begin(StepRemoveExtraDelete, 50)
	if err := ctx.Err(); err != nil {
		return nil, failure(ctx, StepRemoveExtraDelete, err, true, nil)
	}
	dctx, cancel := detached(ctx, finishTimeout)
	defer cancel()
	if err := e.c.VolumeEcShardsUnmount(dctx, victim, vid, remove); err != nil {
		return nil, failure(ctx, StepRemoveExtraDelete, fmt.Errorf("unmount the extra shards %v of volume %d on %s: %w", remove, vid, victim, err), true, nil)
	}
	if err := e.c.VolumeEcShardsDelete(dctx, victim, vid, collection, remove); err != nil {
		// Unmounted but not deleted: the shards stay on disk and return at
		// the server's next start, where a later round finds them again.
		return nil, failure(ctx, StepRemoveExtraDelete, fmt.Errorf("delete the extra shards %v of volume %d on %s (unmounted): %w", remove, vid, victim, err), true, nil)
	}
	p.done()
	ch := &fsmpb.CapacityChange{TaskId: spec.GetTask().GetId(), Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeId: vid, Collection: collection,
		Source: victim, CompletedAt: time.Now().UnixNano()}
	for _, sh := range remove {
		ch.Shards = append(ch.Shards, &fsmpb.ShardPlacement{ShardId: sh, Server: victim})
		ch.OldSize += uint64(mounted[victim][sh])
	}
	return ch, nil
}

// duplicatesOn lists, ascending, the shards mounted on c that another of
// servers mounts at the same size, and those c mounts truncated (shorter
// than another shard c mounts: c's shards are of one encode run, beside
// one .ecx, all of one size; see splitShort) that another server mounts at
// the size of c's whole ones. Sizes alone never make c's copy the one to
// go when it is whole on c: another server may hold another encode run.
func duplicatesOn(c string, servers []string, mounted map[string]map[uint32]int64) []uint32 {
	var out []uint32
	long := longestShard(mounted[c])
	for sh, size := range mounted[c] {
		for _, o := range servers {
			if o != c {
				if other, ok := mounted[o][sh]; ok && (other == size || size < long && other == long) {
					out = append(out, sh)
					break
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// journalCovered checks that every needle id the victim's .ecj journals
// is journalled by some other server that has shards of the volume
// mounted.
func (e *removeExtraExecutor) journalCovered(ctx context.Context, vid uint32, collection, victim string, servers []string, mounted map[string]map[uint32]int64) error {
	own, err := e.c.EcJournal(ctx, victim, vid, collection)
	if err != nil {
		return fmt.Errorf("deleting nothing: %w", err)
	}
	if len(own) == 0 {
		return nil
	}
	covered := map[uint64]bool{}
	for _, o := range servers {
		if o == victim || len(mounted[o]) == 0 {
			continue
		}
		ids, err := e.c.EcJournal(ctx, o, vid, collection)
		if err != nil {
			return fmt.Errorf("deleting nothing: %w", err)
		}
		for _, id := range ids {
			covered[id] = true
		}
	}
	missing := 0
	for _, id := range own {
		if !covered[id] {
			missing++
		}
	}
	if missing > 0 {
		return permanent("the .ecj of volume %d on %s journals %d deletes no server keeping shards journals: removing its last shards would delete that journal and undo them; deleting nothing", vid, victim, missing)
	}
	return nil
}

// Rollback deletes nothing: see NewRemoveExtraExecutor.
func (e *removeExtraExecutor) Rollback(context.Context, *pb.TaskSpec) error { return nil }
