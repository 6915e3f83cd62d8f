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

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
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
	// copies is how many copies the volume's replica placement asks for.
	copies int
	// disks: shard target -> the disk a copy to it names (spec.shard_disks).
	disks map[string]uint32
}

func planEc(spec *pb.TaskSpec) (*ecPlan, error) {
	vid, collection := volumeOf(spec)
	replicas, err := parseServers("replicas", spec.GetReplicas())
	if err != nil {
		return nil, err
	}
	// A finish spec (scheduler.PlanSpec, a retry once the volume is EC-only)
	// names no replica and no target: only the earlier attempts' servers.
	finish := len(replicas) == 0 && len(spec.GetEarlierServers()) > 0 && len(spec.GetShardTargets()) == 0
	if len(replicas) == 0 && !finish {
		return nil, permanent("the spec names no replica of volume %d", vid)
	}
	pl := &ecPlan{vid: vid, collection: collection, replicas: replicas, placement: map[uint32]string{}, copies: placementCopies(spec.GetReplicaPlacement()), disks: spec.GetShardDisks()}
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
	if len(pl.placement) != seaweed.EcTotalShards && !finish {
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
	// finishing: a retry, which asks every earlier server for an original
	// (probeOriginals) and confirms each "not found" before finishing an
	// earlier attempt (confirmGone).
	finishing bool
	// gone: servers that answered "not found" for the volume.
	gone []string
}

func (a *ecAttempt) touch(server string, err error) {
	if err != nil && seaweed.IsUnreachable(err) {
		return // nothing was delivered
	}
	if p, perr := seaweed.ParseAddress(server); perr == nil {
		a.touched[p.GRPC] = server
	}
}

func (e *ecExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepEcPrepare, 0)
	pl, err := planEc(spec)
	if err != nil {
		return nil, failure(ctx, StepEcPrepare, err, true, nil)
	}
	a := &ecAttempt{ecPlan: pl, c: e.c, wasReadOnly: map[string]bool{}, touched: map[string]string{}}
	fail := func(step string, err error) (*fsmpb.CapacityChange, error) {
		return nil, failure(ctx, step, err, true, a.rollback(ctx))
	}

	// Every replica must be there; remember which were read-only already. A
	// retry finds the replicas an abandoned attempt froze (a mark that is
	// not persisted, as attempts freeze) read-only: they were writable.
	retry := len(spec.GetEarlierServers()) > 0
	// On a retry, a replica that is not found may be one an earlier
	// attempt deleted after its verify (the leader plans from a topology a
	// moment behind): it is left out of the plan, and only finishEarlier
	// may go on without it (see missingErr below). With no replica left,
	// finishEarlier has nothing to compare the generation with and deletes
	// nothing: the generation itself is the evidence (14 distinct shards
	// each mounted once on servers of this task's earlier attempts, spread
	// as a plan spreads them, of one encode run, equal sizes and .ecx
	// lengths; see generation). An attempt deletes originals only after
	// such a generation verified, so completing then only records it.
	var missing []string
	var missingErr error
	for _, r := range slices.Clone(pl.replicas) {
		cctx, cancel := call(ctx)
		st, err := e.c.VolumeStatus(cctx, r, pl.vid)
		cancel()
		if err != nil && retry && seaweed.IsNotFound(err) {
			missing, missingErr = append(missing, r), err
			pl.replicas = slices.DeleteFunc(pl.replicas, func(x string) bool { return x == r })
			a.gone = append(a.gone, r)
			continue
		}
		if err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil)
		}
		if err := a.noteReplica(ctx, r, st, retry); err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil)
		}
	}
	// Every retry asks every server that may hold an original whether one
	// is still there (see probeOriginals, and confirmGone before
	// finishEarlier acts), not only one whose spec lacks originals: the
	// leader plans from a topology that may not list a replica whose
	// server was restarting or cut off from the master, so a spec whose
	// replicas all answer may still omit one. Finishing or encoding beside
	// it would leave it to come back writable next to the EC volume; found,
	// it joins the plan as a replica.
	finishOnly := len(spec.GetReplicas()) == 0
	a.finishing = retry
	if a.finishing {
		if err := a.probeOriginals(ctx, spec); err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil)
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
		if len(missing) > 0 || len(pl.replicas) == 0 {
			return nil, failure(ctx, StepEcPrepare, fmt.Errorf("volume %d has EC shards left on %s that are not a complete, spread generation to finish, and is gone from %s, which the spec names: an earlier attempt may have deleted it, so those shards may be all that is left of it; changing nothing (bring the missing replica back, or check the shards with weed shell ec.decode)",
				pl.vid, strings.Join(holderNames(holders), ", "), strings.Join(missing, ", ")), true, nil)
		}
		if len(pl.replicas) < placementCopies(spec.GetReplicaPlacement()) {
			return nil, failure(ctx, StepEcPrepare, fmt.Errorf("volume %d has EC shards left on %s that are not a complete, spread generation to finish, and only %d of the %d replicas its placement %03d asks for: an earlier attempt may have deleted the others, so those shards may be all that is left of them; changing nothing (bring the missing replica back, or check the shards with weed shell ec.decode)",
				pl.vid, strings.Join(holderNames(holders), ", "), len(pl.replicas), placementCopies(spec.GetReplicaPlacement()), spec.GetReplicaPlacement()), true, nil)
		}
	}
	// A finish spec places no shard: it never encodes. An original found
	// on an earlier server without a generation to finish waits for a plan
	// from a topology that lists it.
	if finishOnly && len(pl.replicas) > 0 {
		return nil, failure(ctx, StepEcPrepare, fmt.Errorf("volume %d is still on %s, which the master's topology did not list, and there is no complete EC generation to finish: changing nothing until the leader plans the encode from a topology that lists it", pl.vid, strings.Join(pl.replicas, ", ")), true, nil)
	}
	// Nothing to finish: a replica the spec names is missing (a first
	// attempt fails on it at once) or there is none to encode.
	if missingErr != nil {
		return nil, failure(ctx, StepEcPrepare, missingErr, true, nil)
	}
	if len(pl.replicas) == 0 {
		return nil, failure(ctx, StepEcPrepare, permanent("volume %d has no replica left and no EC shards on the earlier attempts' servers (%s): nothing to encode or finish", pl.vid, strings.Join(spec.GetEarlierServers(), ", ")), true, nil)
	}
	// Sweep EC leftovers so that no generation mixes with the new one: on
	// the servers of this plan, of every earlier attempt, and every server
	// the master lists with shards of the volume (a retry is planned from
	// current free slots, so an abandoned attempt's shards can be anywhere).
	// Every one answered the survey; one that fails now fails the attempt
	// (retryable; every original is there).
	//
	// Leftovers that took deletes (their .ecj) hold them alone: the frozen
	// replicas never saw them, and sweeping would bring the deleted files
	// back. The sweep unmounts every leftover first, so that no delete
	// lands after the journals are read, reads every server's .ecj
	// (mounted or not), and refuses for good if one holds a delete
	// (tearDownUnlessJournalled).
	//
	// A server of an earlier attempt that is down is not skipped, although
	// `weed shell ec.encode` skips servers the master no longer lists: a
	// volume server mounts the EC files it finds on disk when it starts, so
	// the old generation's shards would be listed again beside the new ones.
	// The failure is retryable: the task waits for the server. If it is gone
	// for good, a new task submitted without this one's history does not
	// look for it.
	if err := a.tearDownUnlessJournalled(ctx, a.sweepServers(spec)); err != nil {
		return nil, failure(ctx, StepEcPrepare, fmt.Errorf("cannot sweep EC leftovers of volume %d: %w", pl.vid, err), true, nil)
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
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_ERASURE_CODING,
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
// server journalled (.ecj; SeaweedFS journals each EC delete on one
// holder) taken out; a needle only a replica has counts as agreement when
// the journal deleted it. Each replica that agrees is deleted, as that
// attempt would have. ok is false when there is no such generation, or
// when a replica differs while the placement's every copy is still there
// (the replicas are the volume then): the caller decides whether to sweep.
// With copies missing, a differing replica is refused and left read-only:
// the generation may be all that is left of the deleted ones.
func (a *ecAttempt) finishEarlier(ctx context.Context, spec *pb.TaskSpec, holders []ecHolder, p *progressReporter) (*fsmpb.CapacityChange, error, bool) {
	placement, _, err := a.generation(ctx, holders)
	if err != nil {
		return nil, failure(ctx, StepEcPrepare, fmt.Errorf("cannot tell whether the EC shards of volume %d are one generation; changing nothing: %w", a.vid, err), true, nil), true
	}
	if placement == nil {
		return nil, nil, false
	}
	if a.finishing {
		if err := a.confirmGone(ctx); err != nil {
			return nil, failure(ctx, StepEcPrepare, err, true, nil), true
		}
	}
	p.begin(StepEcVerify, 85)
	// Every server's .ecj, not only the holders': one whose shards were
	// unmounted may still keep a journal.
	var journal []uint64
	var journalled []string
	for _, s := range a.sweepServers(spec) {
		ids, err := a.c.EcJournal(ctx, s, a.vid, a.collection)
		if err != nil {
			return nil, failure(ctx, StepEcVerify, err, true, nil), true
		}
		if len(ids) > 0 {
			journal = append(journal, ids...)
			journalled = append(journalled, s)
		}
	}
	genSet, err := a.c.EcLiveNeedles(ctx, placement[0], a.vid, a.collection)
	if err != nil {
		return nil, failure(ctx, StepEcVerify, err, true, nil), true
	}
	genSet = genSet.Without(journal)
	// undo makes the replicas frozen here writable again (a.touched is
	// empty: the generation is not this attempt's to tear down), unless the
	// generation took deletes the replicas lack: then they stay read-only,
	// the marks persisted, and the task fails for good, as the caller
	// would fail it (Execute's journalled check) once they were writable.
	undo := func(step string, cause error) *Failure {
		if len(journal) == 0 {
			if cause == nil {
				return nil
			}
			return failure(ctx, step, cause, true, a.rollback(ctx))
		}
		err := permanent("an earlier attempt's EC shards of volume %d took %d deletes (journalled on %s) that the replicas do not have; keeping the shards and the replicas, read-only, instead of finishing or re-encoding: apply the deletes to the replicas, or finish the encode by hand, then submit a new task", a.vid, len(journal), strings.Join(journalled, ", "))
		if cause != nil {
			err = fmt.Errorf("%w (and: %w)", err, cause)
		}
		return failure(ctx, step, err, false, keepReadOnly(ctx, a.c, a.vid, a.replicas...))
	}
	for _, r := range a.replicas {
		a.frozen = append(a.frozen, r)
		cctx, cancel := call(ctx)
		err := a.c.VolumeMarkReadonly(cctx, r, a.vid, false)
		cancel()
		if err != nil {
			return nil, undo(StepEcFreeze, err), true
		}
	}
	var differ []string
	for _, r := range a.replicas {
		set, err := a.c.LiveNeedles(ctx, r, a.vid, a.collection)
		if err != nil {
			return nil, undo(StepEcVerify, err), true
		}
		if genOnly, rOnly := genSet.Diff(set.Without(journal)); genOnly > 0 || rOnly > 0 {
			differ = append(differ, fmt.Sprintf("%s lacks %d and adds %d of the generation's %d live needles", r, genOnly, rOnly, genSet.Len()))
		}
	}
	if len(differ) > 0 {
		if len(a.replicas) >= placementCopies(spec.GetReplicaPlacement()) {
			// Every copy is there: unfreeze, and let the caller decide.
			if f := undo(StepEcVerify, nil); f != nil {
				return nil, f, true
			}
			if err := a.rollback(ctx); err != nil {
				return nil, failure(ctx, StepEcVerify, err, true, nil), true
			}
			a.frozen = nil
			return nil, nil, false
		}
		return nil, failure(ctx, StepEcVerify, permanent("an earlier attempt left a complete EC generation of volume %d and deleted original replicas, but the rest differ from it (%s); deleting nothing, the replicas left read-only: compare them (weed shell volume.check.disk) and keep the complete data", a.vid, strings.Join(differ, "; ")), false, keepReadOnly(ctx, a.c, a.vid, a.replicas...)), true
	}
	p.begin(StepEcDelete, 90)
	if f := a.deleteOriginals(ctx); f != nil {
		return nil, f, true
	}
	p.done()
	return &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_ERASURE_CODING,
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
//
// A volume with more replicas than its placement asks for is compared on
// raw .idx entries too (IndexBeyond, both ways): such a pair is what a move
// leaves when it kept both copies because its target took a write or a
// delete alone (a single-copy volume's copies do not replicate to each
// other), and a same-size overwrite changes no live needle's id or size.
// Copies of a placement's own replicas take every acknowledged write
// together, and their indexes may differ in order (concurrent writes
// replicated in different orders), so they are compared on live needles
// only.
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
		if len(a.replicas) > a.copies {
			if err := a.sameIndexes(ctx); err != nil {
				return err
			}
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

// sameIndexes returns a permanent error unless every replica's .idx holds
// the same entries as the first's, in the same order (see chooseSource).
func (a *ecAttempt) sameIndexes(ctx context.Context) error {
	ref := a.replicas[0]
	var differ []string
	for _, r := range a.replicas[1:] {
		for _, pair := range [][2]string{{r, ref}, {ref, r}} {
			n, err := indexBeyond(ctx, a.c, pair[0], pair[1], a.vid, a.collection)
			if err != nil {
				return fmt.Errorf("volume %d has %d replicas, more than the %d its placement asks for; cannot compare their indexes: %w", a.vid, len(a.replicas), a.copies, err)
			}
			if n > 0 {
				differ = append(differ, fmt.Sprintf("%s has %d index entries %s lacks", pair[0], n, pair[1]))
			}
		}
	}
	if len(differ) == 0 {
		return nil
	}
	return permanent("volume %d has %d replicas, more than the %d its placement asks for (a move that kept both copies because one took a write or delete alone), and their indexes differ (%s): one may hold acknowledged changes the other lacks, and encoding would replace both with one; not encoding: compare them (weed shell volume.check.disk -volumeId %d), keep the complete copy, delete the other (volume.delete), then submit a new task",
		a.vid, len(a.replicas), a.copies, strings.Join(differ, "; "), a.vid)
}

// copyDisk is the disk a copy of shards of vid to target names: planned
// (the plan's disk of the volume's type, spec.shard_disks; 0: the server
// picks), unless the target mounts shards of the volume already, which
// the copy then joins on the disk SeaweedFS itself picks (the one beside
// them). Before a copy that names a disk, files of those shards the target
// holds unmounted (an earlier copy cut short, perhaps onto another disk)
// are deleted: SeaweedFS mounts a shard from the lowest disk that has its
// file, which would be the stale one.
func copyDisk(ctx context.Context, c *seaweed.VolumeClient, target string, vid uint32, collection string, shards []uint32, planned uint32) (uint32, error) {
	if planned == 0 {
		return 0, nil
	}
	cctx, cancel := call(ctx)
	defer cancel()
	mounted, err := c.MountedEcShards(cctx, target, vid)
	if err != nil {
		return 0, err
	}
	if len(mounted) > 0 {
		return 0, nil
	}
	if err := c.VolumeEcShardsDelete(cctx, target, vid, collection, shards); err != nil {
		return 0, err
	}
	return planned, nil
}

// move copies shards from the source to target, mounts them there, checks
// them, and only then removes them from the source.
func (a *ecAttempt) move(ctx context.Context, target string, shards []uint32) error {
	return moveShards(ctx, a.c, a.vid, a.collection, a.source, target, a.disks[target], shards, func(err error) { a.touch(target, err) })
}

// moveShards copies shards of a volume from source to target (with the
// index files), mounts them there, checks that the target has every one
// mounted, and only then unmounts and deletes them at the source: a shard
// is never deleted before its copy is mounted. copied (may be nil) is told
// the copy's outcome, before anything else, so that a caller records the
// target as touched even when the copy failed half-way. disk is the
// target's disk the copy names (0: the server picks).
func moveShards(ctx context.Context, c *seaweed.VolumeClient, vid uint32, collection, source, target string, disk uint32, shards []uint32, copied func(error)) error {
	disk, err := copyDisk(ctx, c, target, vid, collection, shards, disk)
	if err == nil {
		err = c.VolumeEcShardsCopy(ctx, target, vid, collection, shards, source, disk)
	}
	if copied != nil {
		copied(err)
	}
	if err != nil {
		return err
	}
	cctx, cancel := call(ctx)
	defer cancel()
	if err := c.VolumeEcShardsMount(cctx, target, vid, collection, shards); err != nil {
		return err
	}
	mounted, err := c.MountedEcShards(cctx, target, vid)
	if err != nil {
		return err
	}
	// At the source's size: a target that already mounted a truncated
	// copy of the shard (a crash cut an earlier copy short) keeps serving
	// that one, whatever was copied under it.
	onSource, err := c.MountedEcShards(cctx, source, vid)
	if err != nil {
		return err
	}
	for _, id := range shards {
		if mounted[id] <= 0 {
			return fmt.Errorf("shard %d of volume %d is not mounted on %s after the copy", id, vid, target)
		}
		if want, ok := onSource[id]; ok && mounted[id] != want {
			return fmt.Errorf("shard %d of volume %d is mounted on %s at %d bytes after the copy, %d on the source %s", id, vid, target, mounted[id], want, source)
		}
	}
	if err := c.VolumeEcShardsUnmount(cctx, source, vid, shards); err != nil {
		return err
	}
	return c.VolumeEcShardsDelete(cctx, source, vid, collection, shards)
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
// been created, and make writable the replicas it froze, unless the shards
// took deletes (see tearDownUnlessJournalled).
func (a *ecAttempt) rollback(ctx context.Context) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	if err := a.tearDownUnlessJournalled(rctx, slices.Collect(maps.Values(a.touched))); err != nil {
		return err
	}
	var errs []error
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

// tearDownUnlessJournalled tears down the volume's EC shards on servers,
// unless they took deletes. Once mounted, the shards take every delete of
// the volume sent to a server mounting some (SeaweedFS routes it to the EC
// volume, which journals it in the .ecj of a holder of the needle's
// primary shard, store_ec_delete.go): the frozen replicas never see it, and
// tearing the shards down would bring the deleted files back. So the
// shards are first unmounted everywhere (a server mounting none sends the
// delete to its replica, which is frozen and refuses it), then every
// .ecj is read. With none journalled, the shards are torn down. Otherwise,
// or when a journal cannot be read, the shards are mounted again as they
// were and nothing is torn down: the replicas must stay read-only beside
// them. Rolling forward instead would delete the originals before the
// shards are verified and spread (fewer copies on fewer servers); keeping
// both loses nothing and lowers no redundancy. Journalled deletes make the
// error permanent: only an operator can reconcile the two.
//
// The servers holding original replicas are unmounted first, the rest
// after. While originals exist, the master lists the volume at its
// replicas, so only those servers take a client's delete; one still
// mounting shards sends it on (VolumeEcBlobDelete) to the server its cached
// locations name for the needle's primary shard, and a server that no
// longer has the EC volume loaded answers OK there without journalling
// anything (volume_grpc_erasure_coding.go): the delete would be
// acknowledged and lost. Once no replica server mounts a shard, a delete
// goes to a frozen replica, which refuses it. One window is left: a delete
// a replica server received before its unmount and forwards after the
// primary holder's unmount; closing it would need the volume server to
// refuse deletes while it unmounts.
func (a *ecAttempt) tearDownUnlessJournalled(ctx context.Context, servers []string) error {
	isReplica := func(s string) bool {
		return slices.ContainsFunc(a.replicas, func(r string) bool { return sameServer(r, s) })
	}
	slices.SortFunc(servers, func(x, y string) int {
		if rx, ry := isReplica(x), isReplica(y); rx != ry {
			if rx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	mounted := map[string][]uint32{}
	var errs []error
	for _, s := range servers {
		cctx, cancel := call(ctx)
		m, err := a.c.MountedEcShards(cctx, s, a.vid)
		if err != nil {
			err = stepOn("list the mounted shards", s, err)
		} else if len(m) > 0 {
			mounted[s] = slices.Sorted(maps.Keys(m))
			err = stepOn("unmount the shards", s, a.c.VolumeEcShardsUnmount(cctx, s, a.vid, seaweed.EveryEcShardID()))
		}
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	var journalled []string
	n := 0
	if len(errs) == 0 {
		for _, s := range servers {
			ids, err := a.c.EcJournal(ctx, s, a.vid, a.collection)
			if err != nil {
				errs = append(errs, stepOn("read the journal", s, err))
				continue
			}
			if len(ids) > 0 {
				n += len(ids)
				journalled = append(journalled, s)
			}
		}
	}
	if len(errs) == 0 && n == 0 {
		for _, s := range servers {
			if err := a.teardown(ctx, s); err != nil {
				errs = append(errs, stepOn("tear down the shards", s, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range servers {
		if len(mounted[s]) == 0 {
			continue
		}
		cctx, cancel := call(ctx)
		if err := a.c.VolumeEcShardsMount(cctx, s, a.vid, a.collection, mounted[s]); err != nil {
			errs = append(errs, stepOn("mount the shards again", s, err))
		}
		cancel()
	}
	if n > 0 {
		// Persisted, so that a volume server restart does not make the
		// replicas writable beside shards holding deletes they lack.
		if err := keepReadOnly(ctx, a.c, a.vid, a.replicas...); err != nil {
			errs = append(errs, err)
		}
		errs = append([]error{permanent("the EC shards of volume %d took %d deletes (journalled on %s) that its replicas lack; keeping the shards and the replicas, read-only, rather than tearing the shards down: apply the deletes to the replicas or finish the encode by hand (weed shell ec.encode), then submit a new task",
			a.vid, n, strings.Join(journalled, ", "))}, errs...)
		return errors.Join(errs...)
	}
	return fmt.Errorf("cannot tell whether the EC shards of volume %d took deletes; keeping them, and the replicas as they are: %w", a.vid, errors.Join(errs...))
}

// stepOn names the step and the server of err (nil stays nil).
func stepOn(step, server string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s on %s: %w", step, server, err)
}

// Rollback undoes what an interrupted attempt left. If an original replica
// is gone and every shard is mounted where the spec says, the attempt got
// past its irreversible step and nothing is changed. If every replica is
// still there, EC files of the volume are torn down on every involved server
// (unless they took deletes: then nothing changes, see
// tearDownUnlessJournalled) and replicas frozen by a non-persistent mark (as the attempt freezes them)
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
	if err := a.tearDownUnlessJournalled(ctx, slices.Clone(pl.servers)); err != nil {
		return err
	}
	var errs []error
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

func placementList(m map[uint32]string) []*fsmpb.ShardPlacement {
	out := make([]*fsmpb.ShardPlacement, 0, len(m))
	for id, s := range m {
		out = append(out, &fsmpb.ShardPlacement{ShardId: id, Server: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardId < out[j].ShardId })
	return out
}
