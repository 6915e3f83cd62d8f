package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Erasure-coding steps.
const (
	StepEcPrepare  = "prepare"
	StepEcFreeze   = "freeze"
	StepEcGenerate = "generate"
	StepEcMount    = "mount"
	StepEcSpread   = "spread"
	StepEcVerify   = "verify"
	StepEcDelete   = "delete-original"
)

// NewECExecutor returns the executor of erasure-coding tasks. It
// follows `weed shell ec.encode` (docs/seaweedfs-rpcs.md §5.2): sweep EC
// leftovers of the volume, mark every replica read-only, generate the 14
// shards on one replica, mount them there, move each shard whose target is
// another server (copy, mount, check, then unmount and delete at the
// source), verify with every server that each shard is mounted where the
// spec says, and only then delete the original replicas. Any failure before
// that delete tears the new shards down everywhere and makes the replicas
// writable again.
func NewECExecutor(c *seaweed.VolumeClient) Executor { return &ecExecutor{c: c} }

type ecExecutor struct{ c *seaweed.VolumeClient }

// ecPlan is a validated erasure-coding spec.
type ecPlan struct {
	vid        uint32
	collection string
	replicas   []string
	// placement: shard id -> server, as the spec names it.
	placement map[uint32]string
	// servers: every server involved (replicas and shard targets), once.
	servers []string
}

func planEc(spec *pb.TaskSpec) (*ecPlan, error) {
	vid, collection := volumeOf(spec)
	replicas, err := parseServers("replicas", spec.GetReplicas())
	if err != nil {
		return nil, err
	}
	if len(replicas) == 0 {
		return nil, permanent("the spec names no replica of volume %d", vid)
	}
	pl := &ecPlan{vid: vid, collection: collection, replicas: replicas, placement: map[uint32]string{}}
	for _, st := range spec.GetShardTargets() {
		if st.GetShardId() >= seaweed.EcTotalShards {
			return nil, permanent("shard target for shard %d: only shards 0..%d exist", st.GetShardId(), seaweed.EcTotalShards-1)
		}
		if _, dup := pl.placement[st.GetShardId()]; dup {
			return nil, permanent("shard %d has two targets", st.GetShardId())
		}
		if _, err := seaweed.ParseAddress(st.GetServer()); err != nil {
			return nil, permanent("shard %d target: %v", st.GetShardId(), err)
		}
		pl.placement[st.GetShardId()] = st.GetServer()
	}
	if len(pl.placement) != seaweed.EcTotalShards {
		return nil, permanent("the spec places %d of the %d shards", len(pl.placement), seaweed.EcTotalShards)
	}
	all := slices.Clone(replicas)
	for _, id := range seaweed.AllEcShards() {
		all = append(all, pl.placement[id])
	}
	pl.servers, _ = parseServers("servers", all)
	return pl, nil
}

// shardsOn returns the shards placed on server, sorted.
func (pl *ecPlan) shardsOn(server string) []uint32 {
	var ids []uint32
	for id, s := range pl.placement {
		if sameServer(s, server) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ecAttempt is the state of one Execute, for its rollback.
type ecAttempt struct {
	*ecPlan
	c *seaweed.VolumeClient
	// wasReadOnly by replica, before the attempt.
	wasReadOnly map[string]bool
	// frozen: replicas this attempt may have marked read-only.
	frozen []string
	// touched: servers where this attempt may have created EC files.
	touched map[string]string // gRPC address -> server
	source  string
}

func (a *ecAttempt) touch(server string, err error) {
	if err != nil && seaweed.IsUnreachable(err) {
		return // nothing was delivered
	}
	if p, perr := seaweed.ParseAddress(server); perr == nil {
		a.touched[p.GRPC] = server
	}
}

func (e *ecExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*pb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepEcPrepare, 0)
	pl, err := planEc(spec)
	if err != nil {
		return nil, failure(ctx, StepEcPrepare, err, true, nil)
	}
	a := &ecAttempt{ecPlan: pl, c: e.c, wasReadOnly: map[string]bool{}, touched: map[string]string{}}
	fail := func(step string, err error) (*pb.CapacityChange, error) {
		return nil, failure(ctx, step, err, true, a.rollback(ctx))
	}

	// Every replica must be there; remember which were read-only already. A
	// retry finds the replicas an abandoned attempt froze (a mark that is
	// not persisted, as attempts freeze) read-only: they were writable.
	retry := len(spec.GetEarlierServers()) > 0
	for _, r := range pl.replicas {
		cctx, cancel := call(ctx)
		st, err := e.c.VolumeStatus(cctx, r, pl.vid)
		cancel()
		if err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil)
		}
		a.wasReadOnly[r] = st.GetIsReadOnly()
		if a.wasReadOnly[r] && retry {
			frozen, err := frozenUnpersisted(ctx, e.c, r, pl.vid)
			if err != nil {
				return nil, failure(ctx, StepEcPrepare, err, true, nil)
			}
			a.wasReadOnly[r] = !frozen
		}
	}
	// Shards the master lists on a server no earlier attempt of this task
	// used are not this task's: never swept (the leader refuses to plan
	// this too; a spec from an older leader may not).
	var foreign []string
	for _, h := range spec.GetEcShardHolders() {
		if !slices.ContainsFunc(spec.GetEarlierServers(), func(e string) bool { return sameServer(e, h) }) {
			foreign = append(foreign, h)
		}
	}
	if len(foreign) > 0 {
		return nil, failure(ctx, StepEcPrepare, permanent("volume %d already has EC shards on %s, where no earlier attempt of this task put any: not encoding over them", pl.vid, strings.Join(foreign, ", ")), true, nil)
	}
	// Ask every server that may hold EC shards of the volume (of this
	// plan, of earlier attempts, listed by the master) what it has, before
	// anything is finished or torn down: a server that cannot answer may
	// hold shards that are all that is left of a deleted original, and a
	// sweep that stops halfway leaves a generation neither complete nor
	// gone. Any answer but "none here" fails the attempt, touching nothing.
	holders, err := a.survey(ctx, spec)
	if err != nil {
		return nil, failure(ctx, StepEcPrepare, err, true, nil)
	}
	if len(holders) > 0 {
		// An earlier attempt that got past its verify step left a
		// complete generation and may have deleted some originals: finish
		// its deletes rather than sweep the generation that may be all
		// that is left of the deleted replicas.
		if retry {
			if change, err, ok := a.finishEarlier(ctx, spec, holders, p); ok {
				return change, err
			}
		}
		// Otherwise the leftovers are swept, but only while every original
		// is there: with one missing, they may be all that is left of it.
		if len(pl.replicas) < placementCopies(spec.GetReplicaPlacement()) {
			return nil, failure(ctx, StepEcPrepare, fmt.Errorf("volume %d has EC shards left on %s that are not a complete, spread generation to finish, and only %d of the %d replicas its placement %03d asks for: an earlier attempt may have deleted the others, so those shards may be all that is left of them; changing nothing (bring the missing replica back, or check the shards with weed shell ec.decode)",
				pl.vid, strings.Join(holderNames(holders), ", "), len(pl.replicas), placementCopies(spec.GetReplicaPlacement()), spec.GetReplicaPlacement()), true, nil)
		}
		// A generation that took deletes (its .ecj) holds them alone: the
		// frozen replicas never saw them.
		if n, on, err := a.journalled(ctx, holders); err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil)
		} else if n > 0 {
			return nil, failure(ctx, StepEcPrepare, permanent("an earlier attempt's EC shards of volume %d took %d deletes (journalled on %s) that the replicas do not have; re-encoding would sweep those shards and bring the deleted files back: apply the deletes to the replicas, or finish the encode by hand, then submit a new task", pl.vid, n, strings.Join(on, ", ")), true, nil)
		}
	}
	// Sweep EC leftovers so that no generation mixes with the new one: on
	// the servers of this plan, of every earlier attempt, and every server
	// the master lists with shards of the volume (a retry is planned from
	// current free slots, so an abandoned attempt's shards can be anywhere).
	// Every one answered the survey; one that fails now fails the attempt
	// (retryable; every original is there).
	//
	// A server of an earlier attempt that is down is not skipped, although
	// `weed shell ec.encode` skips servers the master no longer lists: a
	// volume server mounts the EC files it finds on disk when it starts, so
	// the old generation's shards would be listed again beside the new ones.
	// The failure is retryable: the task waits for the server. If it is gone
	// for good, a new task submitted without this one's history does not
	// look for it.
	for _, s := range a.sweepServers(spec) {
		if err := a.teardown(ctx, s); err != nil {
			return nil, failure(ctx, StepEcPrepare, fmt.Errorf("cannot sweep EC leftovers of volume %d from %s: %w", pl.vid, s, err), true, nil)
		}
	}
	// Freeze every replica: writes after the index is cut would be lost.
	p.begin(StepEcFreeze, 5)
	for _, r := range pl.replicas {
		if err := ctx.Err(); err != nil {
			return fail(StepEcFreeze, err)
		}
		if broken(breakEcSkipFreeze) {
			break
		}
		a.frozen = append(a.frozen, r)
		cctx, cancel := call(ctx)
		err := e.c.VolumeMarkReadonly(cctx, r, pl.vid, false)
		cancel()
		if err != nil {
			return fail(StepEcFreeze, err)
		}
	}
	if err := a.chooseSource(ctx); err != nil {
		return fail(StepEcFreeze, err)
	}

	p.begin(StepEcGenerate, 10)
	if err := ctx.Err(); err != nil {
		return fail(StepEcGenerate, err)
	}
	err = e.c.VolumeEcShardsGenerate(ctx, a.source, pl.vid, pl.collection)
	a.touch(a.source, err)
	if err != nil {
		return fail(StepEcGenerate, err)
	}

	p.begin(StepEcMount, 30)
	cctx, cancel := call(ctx)
	err = e.c.VolumeEcShardsMount(cctx, a.source, pl.vid, pl.collection, seaweed.AllEcShards())
	cancel()
	if err != nil {
		return fail(StepEcMount, err)
	}
	if broken(breakEcDeleteBeforeVerify) {
		if f := a.deleteOriginals(ctx); f != nil {
			return nil, f
		}
	}

	// Move every shard whose target is not the source, one target at a time.
	p.begin(StepEcSpread, 35)
	// Targets in the order of their lowest shard id.
	moves := map[string][]uint32{}
	var targets []string
	for _, id := range seaweed.AllEcShards() {
		if t := pl.placement[id]; !sameServer(t, a.source) {
			if moves[t] == nil {
				targets = append(targets, t)
			}
			moves[t] = append(moves[t], id)
		}
	}
	for i, t := range targets {
		if err := ctx.Err(); err != nil {
			return fail(StepEcSpread, err)
		}
		if err := a.move(ctx, t, moves[t]); err != nil {
			return fail(StepEcSpread, err)
		}
		p.within(35 + 50*float64(i+1)/float64(len(targets)))
	}

	// Ask every server what it has mounted.
	p.begin(StepEcVerify, 85)
	if err := ctx.Err(); err != nil {
		return fail(StepEcVerify, err)
	}
	if err := a.verify(ctx); err != nil {
		return fail(StepEcVerify, err)
	}

	// The irreversible step: delete the original replicas. It runs to the
	// end even if the attempt is cancelled now.
	p.begin(StepEcDelete, 90)
	if err := ctx.Err(); err != nil {
		return fail(StepEcDelete, err)
	}
	if err := a.deleteOriginals(ctx); err != nil {
		return nil, err
	}
	p.done()
	return &pb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        pb.TaskType_TASK_TYPE_ERASURE_CODING,
		VolumeId:    pl.vid,
		Collection:  pl.collection,
		OldSize:     spec.GetSize(),
		NewSize:     0,
		Shards:      placementList(pl.placement),
		CompletedAt: time.Now().UnixNano(),
	}, nil
}

// ecHolder is a server that has shards of the volume mounted.
type ecHolder struct {
	server string
	shards map[uint32]int64 // shard id -> size
	// entries in its .ecx (VolumeEcShardsInfo walks it: files + deleted).
	entries uint64
}

func holderNames(hs []ecHolder) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.server
	}
	return out
}

// survey asks every server of sweepServers which shards of the volume it
// has mounted. Any error but "not found" is returned: the caller then
// changes nothing.
func (a *ecAttempt) survey(ctx context.Context, spec *pb.TaskSpec) ([]ecHolder, error) {
	var out []ecHolder
	for _, s := range a.sweepServers(spec) {
		cctx, cancel := call(ctx)
		resp, err := a.c.VolumeEcShardsInfo(cctx, s, a.vid)
		cancel()
		if err != nil {
			if seaweed.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("cannot ask %s which EC shards of volume %d it holds; changing nothing until every server that may hold some answers (if it is gone for good, cancel this task and submit a new one, which does not look there): %w", s, a.vid, err)
		}
		h := ecHolder{server: s, shards: map[uint32]int64{}, entries: resp.GetFileCount() + resp.GetFileDeletedCount()}
		for _, si := range resp.GetEcShardInfos() {
			if si.GetSize() > 0 && si.GetShardId() < seaweed.EcTotalShards {
				h.shards[si.GetShardId()] = si.GetSize()
			}
		}
		if len(h.shards) > 0 {
			out = append(out, h)
		}
	}
	return out, nil
}

// journalled counts the deletes in the .ecj of every holder and names the
// holders that have some.
func (a *ecAttempt) journalled(ctx context.Context, holders []ecHolder) (int, []string, error) {
	n := 0
	var on []string
	for _, h := range holders {
		ids, err := a.c.EcJournal(ctx, h.server, a.vid, a.collection)
		if err != nil {
			return 0, nil, err
		}
		if len(ids) > 0 {
			n += len(ids)
			on = append(on, h.server)
		}
	}
	return n, on, nil
}

// generation returns the placement of the holders' shards if they are one
// complete generation an encode of this task could have left to finish:
// each of the 14 shards mounted once, spread as a fresh plan spreads them
// (placement.CheckSpread), all of one encode run (EncodeTsNs from every
// holder's .vif, known and equal), with equal shard sizes and .ecx
// lengths. why says what is not so; err is set when a holder could not be
// read.
func (a *ecAttempt) generation(ctx context.Context, holders []ecHolder) (layout map[uint32]string, why string, err error) {
	layout = map[uint32]string{}
	per := map[string]int{}
	var size int64
	for _, h := range holders {
		for id, sz := range h.shards {
			if prev, dup := layout[id]; dup {
				return nil, fmt.Sprintf("shard %d is mounted on both %s and %s", id, prev, h.server), nil
			}
			if size != 0 && sz != size {
				return nil, fmt.Sprintf("shard sizes differ (%d and %d bytes)", size, sz), nil
			}
			layout[id], size = h.server, sz
			per[h.server]++
		}
		if h.entries != holders[0].entries {
			return nil, fmt.Sprintf("the .ecx on %s has %d entries, on %s %d", h.server, h.entries, holders[0].server, holders[0].entries), nil
		}
	}
	if err := placement.CheckSpread(per); err != nil {
		return nil, err.Error(), nil
	}
	var ts int64
	for i, h := range holders {
		t, err := a.c.EcEncodeTsNs(ctx, h.server, a.vid, a.collection)
		if err != nil {
			return nil, "", err
		}
		if t == 0 {
			return nil, fmt.Sprintf("the .vif on %s does not name the encode run", h.server), nil
		}
		if i > 0 && t != ts {
			return nil, fmt.Sprintf("the shards are of two encode runs (%d on %s, %d on %s)", ts, holders[0].server, t, h.server), nil
		}
		ts = t
	}
	return layout, "", nil
}

// finishEarlier finishes an earlier attempt that left a complete
// generation (see generation). The remaining replicas are frozen and
// compared with the generation's index: its .ecx with the deletes every
// holder journalled (.ecj; SeaweedFS journals each EC delete on one
// holder) taken out; a needle only a replica has counts as agreement when
// the journal deleted it. Each replica that agrees is deleted, as that
// attempt would have. ok is false when there is no such generation, or
// when a replica differs while the placement's every copy is still there
// (the replicas are the volume then): the caller decides whether to sweep.
// With copies missing, a differing replica is refused and left read-only:
// the generation may be all that is left of the deleted ones.
func (a *ecAttempt) finishEarlier(ctx context.Context, spec *pb.TaskSpec, holders []ecHolder, p *progressReporter) (*pb.CapacityChange, error, bool) {
	placement, _, err := a.generation(ctx, holders)
	if err != nil {
		return nil, failure(ctx, StepEcPrepare, fmt.Errorf("cannot tell whether the EC shards of volume %d are one generation; changing nothing: %w", a.vid, err), true, nil), true
	}
	if placement == nil {
		return nil, nil, false
	}
	p.begin(StepEcVerify, 85)
	var journal []uint64
	for _, h := range holders {
		ids, err := a.c.EcJournal(ctx, h.server, a.vid, a.collection)
		if err != nil {
			return nil, failure(ctx, StepEcVerify, err, true, nil), true
		}
		journal = append(journal, ids...)
	}
	genSet, err := a.c.EcLiveNeedles(ctx, placement[0], a.vid, a.collection)
	if err != nil {
		return nil, failure(ctx, StepEcVerify, err, true, nil), true
	}
	genSet = genSet.Without(journal)
	for _, r := range a.replicas {
		a.frozen = append(a.frozen, r)
		cctx, cancel := call(ctx)
		err := a.c.VolumeMarkReadonly(cctx, r, a.vid, false)
		cancel()
		if err != nil {
			return nil, failure(ctx, StepEcFreeze, err, true, a.rollback(ctx)), true
		}
	}
	var differ []string
	for _, r := range a.replicas {
		set, err := a.c.LiveNeedles(ctx, r, a.vid, a.collection)
		if err != nil {
			return nil, failure(ctx, StepEcVerify, err, true, a.rollback(ctx)), true
		}
		if genOnly, rOnly := genSet.Diff(set.Without(journal)); genOnly > 0 || rOnly > 0 {
			differ = append(differ, fmt.Sprintf("%s lacks %d and adds %d of the generation's %d live needles", r, genOnly, rOnly, genSet.Len()))
		}
	}
	if len(differ) > 0 {
		if len(a.replicas) >= placementCopies(spec.GetReplicaPlacement()) {
			// Every copy is there: unfreeze, and let the caller decide.
			if err := a.rollback(ctx); err != nil {
				return nil, failure(ctx, StepEcVerify, err, true, nil), true
			}
			a.frozen = nil
			return nil, nil, false
		}
		return nil, failure(ctx, StepEcVerify, permanent("an earlier attempt left a complete EC generation of volume %d and deleted original replicas, but the rest differ from it (%s); deleting nothing, the replicas left read-only: compare them (weed shell volume.check.disk) and keep the complete data", a.vid, strings.Join(differ, "; ")), false, nil), true
	}
	p.begin(StepEcDelete, 90)
	if f := a.deleteOriginals(ctx); f != nil {
		return nil, f, true
	}
	p.done()
	return &pb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        pb.TaskType_TASK_TYPE_ERASURE_CODING,
		VolumeId:    a.vid,
		Collection:  a.collection,
		OldSize:     spec.GetSize(),
		Shards:      placementList(placement),
		CompletedAt: time.Now().UnixNano(),
	}, nil, true
}

// placementCopies is the number of copies a SeaweedFS replica placement
// asks for ("xyz": 1 + x + y + z).
func placementCopies(rp uint32) int {
	return 1 + int(rp/100%10) + int(rp/10%10) + int(rp%10)
}

// sweepServers lists, once each, the servers of the plan, of earlier
// attempts and those the master lists with shards of the volume.
func (a *ecAttempt) sweepServers(spec *pb.TaskSpec) []string {
	all := slices.Clone(a.servers)
	all = append(all, spec.GetEarlierServers()...)
	all = append(all, spec.GetEcShardHolders()...)
	var out []string
	for _, s := range all {
		if _, err := seaweed.ParseAddress(s); err != nil {
			continue // planEc checked the plan's own; history is best effort
		}
		if !slices.ContainsFunc(out, func(o string) bool { return sameServer(o, s) }) {
			out = append(out, s)
		}
	}
	return out
}

// chooseSource checks that the frozen replicas hold the same volume and
// picks the one that keeps the most shards, so that the fewest shards
// travel. Replicas are compared on their live needle sets, read from each
// .idx as `weed shell volume.check.disk` does: vacuum compacts replicas
// independently, so compaction revisions, index sizes and file counts
// differ between replicas that hold the same needles. Replicas that
// disagree are refused, not repaired: the shards replace every replica, so
// encoding one that is behind (or ahead) would lose what the others hold.
func (a *ecAttempt) chooseSource(ctx context.Context) error {
	if len(a.replicas) > 1 {
		var ref seaweed.NeedleSet
		var disagree []string
		for i, r := range a.replicas {
			set, err := a.c.LiveNeedles(ctx, r, a.vid, a.collection)
			if err != nil {
				return err
			}
			if i == 0 {
				ref = set
				continue
			}
			if refOnly, rOnly := ref.Diff(set); refOnly > 0 || rOnly > 0 {
				disagree = append(disagree, fmt.Sprintf("%s lacks %d and adds %d of %s's %d live needles", r, refOnly, rOnly, a.replicas[0], ref.Len()))
			}
		}
		if len(disagree) > 0 {
			return permanent("replicas of volume %d disagree (%s); not encoding, which would replace every replica with one of them: reconcile them first (weed shell volume.check.disk)", a.vid, strings.Join(disagree, "; "))
		}
	}
	best, bestCount := "", -1
	for _, r := range a.replicas {
		if n := len(a.shardsOn(r)); n > bestCount {
			best, bestCount = r, n
		}
	}
	a.source = best
	return nil
}

// move copies shards from the source to target, mounts them there, checks
// them, and only then removes them from the source.
func (a *ecAttempt) move(ctx context.Context, target string, shards []uint32) error {
	err := a.c.VolumeEcShardsCopy(ctx, target, a.vid, a.collection, shards, a.source)
	a.touch(target, err)
	if err != nil {
		return err
	}
	cctx, cancel := call(ctx)
	defer cancel()
	if err := a.c.VolumeEcShardsMount(cctx, target, a.vid, a.collection, shards); err != nil {
		return err
	}
	mounted, err := a.c.MountedEcShards(cctx, target, a.vid)
	if err != nil {
		return err
	}
	for _, id := range shards {
		if mounted[id] <= 0 {
			return fmt.Errorf("shard %d of volume %d is not mounted on %s after the copy", id, a.vid, target)
		}
	}
	if err := a.c.VolumeEcShardsUnmount(cctx, a.source, a.vid, shards); err != nil {
		return err
	}
	return a.c.VolumeEcShardsDelete(cctx, a.source, a.vid, a.collection, shards)
}

// verify asks every involved server which shards it has mounted and
// requires exactly the placement.
func (a *ecAttempt) verify(ctx context.Context) error {
	for _, s := range a.servers {
		cctx, cancel := call(ctx)
		mounted, err := a.c.MountedEcShards(cctx, s, a.vid)
		cancel()
		if err != nil {
			return err
		}
		want := a.shardsOn(s)
		var got []uint32
		for id := range mounted {
			if id < seaweed.EcTotalShards {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		if !slices.Equal(want, got) {
			return fmt.Errorf("server %s has shards %v of volume %d mounted, the spec places %v there", s, got, a.vid, want)
		}
	}
	return nil
}

// deleteOriginals deletes every original replica. If none was deleted the
// attempt is rolled back; once one is gone, the shards are the volume.
func (a *ecAttempt) deleteOriginals(ctx context.Context) *Failure {
	dctx, cancel := detached(ctx, finishTimeout)
	defer cancel()
	var errs []error
	deleted := 0
	for _, r := range a.replicas {
		err := deleteVolume(dctx, a.c, r, a.vid, false)
		if err != nil {
			if present, perr := probeVolume(dctx, a.c, r, a.vid); perr == nil && !present {
				err = nil
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	if deleted == 0 {
		return failure(ctx, StepEcDelete, err, true, a.rollback(ctx))
	}
	return failure(ctx, StepEcDelete, fmt.Errorf("%w: the EC shards are complete and %d of %d original replicas are deleted; the rest must be deleted: %w", errPermanent, deleted, len(a.replicas), err), false, nil)
}

// teardown unmounts every shard of the volume on server and wipes its EC
// files there (keeping a regular volume's own files).
func (a *ecAttempt) teardown(ctx context.Context, server string) error {
	cctx, cancel := call(ctx)
	defer cancel()
	if err := a.c.VolumeEcShardsUnmount(cctx, server, a.vid, seaweed.EveryEcShardID()); err != nil {
		return err
	}
	return a.c.VolumeEcShardsTeardown(cctx, server, a.vid, a.collection)
}

// rollback undoes the attempt: tear the shards down wherever they may have
// been created, and make writable the replicas it froze.
func (a *ecAttempt) rollback(ctx context.Context) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(a.touched)) {
		if err := a.teardown(rctx, a.touched[k]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range a.frozen {
		if a.wasReadOnly[r] {
			continue
		}
		cctx, ccancel := call(rctx)
		err := a.c.VolumeMarkWritable(cctx, r, a.vid)
		ccancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Rollback undoes what an interrupted attempt left. If an original replica
// is gone and every shard is mounted where the spec says, the attempt got
// past its irreversible step and nothing is changed. If every replica is
// still there, EC files of the volume are torn down on every involved server
// and replicas frozen by a non-persistent mark (as the attempt freezes them)
// are made writable; a mark persisted in the .vif, as an operator's
// `volume.mark -readonly` is, stays.
func (e *ecExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	pl, err := planEc(spec)
	if err != nil {
		return err
	}
	a := &ecAttempt{ecPlan: pl, c: e.c}
	var missing []string
	frozen := map[string]bool{}
	for _, r := range pl.replicas {
		f, err := frozenUnpersisted(ctx, e.c, r, pl.vid)
		switch {
		case err == nil:
			frozen[r] = f
		case seaweed.IsNotFound(err):
			missing = append(missing, r)
		default:
			return fmt.Errorf("cannot tell whether volume %d is still on %s; changing nothing: %w", pl.vid, r, err)
		}
	}
	if len(missing) > 0 {
		if verr := a.verify(ctx); verr != nil {
			return fmt.Errorf("volume %d is gone from %v but its shards are not as planned (%v); changing nothing", pl.vid, missing, verr)
		}
		return nil
	}
	var errs []error
	for _, s := range pl.servers {
		if err := a.teardown(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range pl.replicas {
		if !frozen[r] {
			continue
		}
		cctx, cancel := call(ctx)
		if err := e.c.VolumeMarkWritable(cctx, r, pl.vid); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	return errors.Join(errs...)
}

func placementList(m map[uint32]string) []*pb.ShardPlacement {
	out := make([]*pb.ShardPlacement, 0, len(m))
	for id, s := range m {
		out = append(out, &pb.ShardPlacement{ShardId: id, Server: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardId < out[j].ShardId })
	return out
}
