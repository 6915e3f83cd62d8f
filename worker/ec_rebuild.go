package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// EC rebuild steps.
const (
	StepRebuildPrepare = "prepare"
	StepRebuildGather  = "gather"
	StepRebuildRebuild = "rebuild"
	StepRebuildMount   = "mount"
	StepRebuildSpread  = "spread"
	StepRebuildVerify  = "verify"
	StepRebuildCleanup = "cleanup"
)

// NewECRebuildExecutor returns the executor of ec_rebuild tasks. It follows
// `weed shell ec.rebuild` (weed/ec/ec_rebuild.go): the rebuilder copies in
// every present shard it does not hold (VolumeEcShardsCopy, with the index
// files if it holds none), so that VolumeEcShardsRebuild regenerates
// exactly the missing ones; it mounts them, moves each whose planned server
// is another (copy, mount, check there, then unmount and delete on the
// rebuilder), asks every involved server that each of the 14 shards is
// mounted as planned, and only then deletes the gathered copies, each of
// which is mounted elsewhere: a shard is never deleted while it is the only
// copy. A failure removes only what a fresh survey shows the volume does
// not need (see rollback): a regenerated shard mounted on its target is
// kept, and so is a gathered copy no other server is seen mounting.
func NewECRebuildExecutor(c *seaweed.VolumeClient) Executor { return &ecRebuildExecutor{c: c} }

type ecRebuildExecutor struct{ c *seaweed.VolumeClient }

// rebuildPlan is a validated ec_rebuild spec.
type rebuildPlan struct {
	vid        uint32
	collection string
	rebuilder  string
	// holders: present shard -> every server the plan lists with it.
	holders map[uint32][]string
	// targets: missing shard -> the server it must end on.
	targets map[uint32]string
	// servers: every server involved (rebuilder, holders, targets, the
	// master's shard holders), once.
	servers []string
	// disks: server -> the disk a copy to it names (spec.shard_disks).
	disks map[string]uint32
}

func planRebuild(spec *pb.TaskSpec) (*rebuildPlan, error) {
	vid, collection := volumeOf(spec)
	if _, err := seaweed.ParseAddress(spec.GetRebuilder()); err != nil {
		return nil, permanent("rebuilder: %v", err)
	}
	pl := &rebuildPlan{vid: vid, collection: collection, rebuilder: spec.GetRebuilder(), holders: map[uint32][]string{}, targets: map[uint32]string{}, disks: spec.GetShardDisks()}
	all := []string{pl.rebuilder}
	for _, ps := range spec.GetPresentShards() {
		if ps.GetShardId() >= seaweed.EcTotalShards {
			return nil, permanent("present shard %d: only shards 0..%d exist", ps.GetShardId(), seaweed.EcTotalShards-1)
		}
		if _, err := seaweed.ParseAddress(ps.GetServer()); err != nil {
			return nil, permanent("holder of shard %d: %v", ps.GetShardId(), err)
		}
		if !slices.ContainsFunc(pl.holders[ps.GetShardId()], func(h string) bool { return sameServer(h, ps.GetServer()) }) {
			pl.holders[ps.GetShardId()] = append(pl.holders[ps.GetShardId()], ps.GetServer())
		}
		all = append(all, ps.GetServer())
	}
	for _, st := range spec.GetShardTargets() {
		id := st.GetShardId()
		if id >= seaweed.EcTotalShards {
			return nil, permanent("shard target for shard %d: only shards 0..%d exist", id, seaweed.EcTotalShards-1)
		}
		if _, dup := pl.targets[id]; dup {
			return nil, permanent("shard %d has two targets", id)
		}
		if len(pl.holders[id]) > 0 {
			return nil, permanent("shard %d is both present (on %s) and to be rebuilt", id, strings.Join(pl.holders[id], ", "))
		}
		if _, err := seaweed.ParseAddress(st.GetServer()); err != nil {
			return nil, permanent("shard %d target: %v", id, err)
		}
		pl.targets[id] = st.GetServer()
		all = append(all, st.GetServer())
	}
	if len(pl.targets) == 0 {
		return nil, permanent("the spec rebuilds no shard of volume %d", vid)
	}
	if len(pl.holders) < seaweed.EcDataShards {
		return nil, permanent("the spec lists %d distinct shards of volume %d, fewer than the %d a rebuild needs", len(pl.holders), vid, seaweed.EcDataShards)
	}
	if len(pl.holders)+len(pl.targets) != seaweed.EcTotalShards {
		return nil, permanent("the spec accounts for %d of the %d shards of volume %d", len(pl.holders)+len(pl.targets), seaweed.EcTotalShards, vid)
	}
	all = append(all, spec.GetEcShardHolders()...)
	servers, err := parseServers("servers", all)
	if err != nil {
		return nil, err
	}
	pl.servers = servers
	return pl, nil
}

// missing is the shards to rebuild, ascending.
func (pl *rebuildPlan) missing() []uint32 { return slices.Sorted(maps.Keys(pl.targets)) }

// rebuildAttempt is the state of one Execute, for its rollback: exactly
// what the attempt created.
type rebuildAttempt struct {
	*rebuildPlan
	c *seaweed.VolumeClient
	// gathered: shards the rebuilder copied in (or may have, a copy that
	// failed half-way); none of them was mounted there before.
	gathered []uint32
	// rebuilt: shards the rebuild regenerated on the rebuilder.
	rebuilt []uint32
	// placed: target -> regenerated shards copied (or being copied) there.
	placed map[string][]uint32
	// moved: regenerated shards no longer on the rebuilder.
	moved []uint32
	// shardSize: the largest shard a survey saw mounted.
	shardSize int64
	// sizes: server -> shard -> size, as the last survey saw them mounted.
	sizes map[string]map[uint32]int64
}

func (e *ecRebuildExecutor) Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error) {
	p := newProgress(report)
	p.begin(StepRebuildPrepare, 0)
	pl, err := planRebuild(spec)
	if err != nil {
		return nil, failure(ctx, StepRebuildPrepare, err, true, nil)
	}
	a := &rebuildAttempt{rebuildPlan: pl, c: e.c, placed: map[string][]uint32{}}
	fail := func(step string, err error) (*fsmpb.CapacityChange, error) {
		return nil, failure(ctx, step, err, true, a.rollback(ctx))
	}

	// Ask every involved server what it has mounted: the shards the plan
	// calls missing must be mounted nowhere (a server that came back may
	// hold them: the leader plans again from a newer topology), and each
	// present shard must be mounted by a holder to gather it from.
	mounted, err := a.survey(ctx)
	if err != nil {
		return nil, failure(ctx, StepRebuildPrepare, err, true, nil)
	}
	if err := a.removeShort(ctx, mounted); err != nil {
		return nil, failure(ctx, StepRebuildPrepare, err, true, nil)
	}
	for _, id := range pl.missing() {
		if on := mounted.holders(id); len(on) > 0 {
			return nil, failure(ctx, StepRebuildPrepare, fmt.Errorf("shard %d of volume %d, which the spec rebuilds, is mounted on %s: planning again", id, pl.vid, strings.Join(on, ", ")), true, nil)
		}
	}
	onRebuilder := mounted.of(pl.rebuilder)
	sources := map[uint32][]string{}
	for id, holders := range pl.holders {
		if onRebuilder[id] {
			continue
		}
		for _, h := range holders {
			if mounted.of(h)[id] {
				sources[id] = append(sources[id], h)
			}
		}
		if len(sources[id]) == 0 {
			return nil, failure(ctx, StepRebuildPrepare, fmt.Errorf("shard %d of volume %d is mounted on none of %s, where the spec lists it: planning again", id, pl.vid, strings.Join(holders, ", ")), true, nil)
		}
	}

	// Gather every present shard on the rebuilder: with every one there,
	// the rebuild regenerates exactly the missing ones (it regenerates every
	// shard whose file it lacks).
	p.begin(StepRebuildGather, 5)
	withIndex := len(onRebuilder) == 0
	// The disk the plan names only on a rebuilder holding no shard of the
	// volume: one that does keeps the gathered shards beside its own.
	need := slices.Sorted(maps.Keys(sources))
	var disk uint32
	if withIndex {
		var err error
		if disk, err = copyDisk(ctx, e.c, pl.rebuilder, pl.vid, pl.collection, need, pl.disks[pl.rebuilder]); err != nil {
			return fail(StepRebuildGather, err)
		}
	}
	for i, id := range need {
		if err := ctx.Err(); err != nil {
			return fail(StepRebuildGather, err)
		}
		var errs []error
		ok := false
		for _, src := range sources[id] {
			if !slices.Contains(a.gathered, id) {
				a.gathered = append(a.gathered, id)
			}
			err := e.c.VolumeEcShardsGather(ctx, pl.rebuilder, pl.vid, pl.collection, []uint32{id}, src, withIndex, disk)
			if err == nil {
				ok = true
				break
			}
			errs = append(errs, err)
		}
		if !ok {
			return fail(StepRebuildGather, errors.Join(errs...))
		}
		withIndex = false
		p.within(5 + 40*float64(i+1)/float64(len(need)))
	}

	p.begin(StepRebuildRebuild, 45)
	if err := ctx.Err(); err != nil {
		return fail(StepRebuildRebuild, err)
	}
	// The rebuild regenerates only the shards whose file the rebuilder
	// lacks: a file of a missing shard left there unmounted (by an earlier
	// task's interrupted rebuild, or a copy cut short) would stop it. The
	// survey saw every missing shard mounted nowhere, and the rebuilder
	// now holds every present one, so such a file is no shard anyone
	// counts, and the shard is regenerated from the gathered ones.
	// Unmounted too: a rebuilder that restarted since the survey mounts
	// such files again.
	err = unmountAndDelete(ctx, e.c, pl.rebuilder, pl.vid, pl.collection, pl.missing())
	if err != nil {
		return fail(StepRebuildRebuild, stepOn("remove unmounted files of the shards to regenerate", pl.rebuilder, err))
	}
	rebuilt, err := e.c.VolumeEcShardsRebuild(ctx, pl.rebuilder, pl.vid, pl.collection)
	a.rebuilt = rebuilt
	if err != nil {
		return fail(StepRebuildRebuild, err)
	}
	if got := slices.Sorted(slices.Values(rebuilt)); !slices.Equal(got, pl.missing()) {
		// A shard not regenerated had a file on the rebuilder that no
		// server mounts, written there after the delete above.
		return fail(StepRebuildRebuild, permanent("the rebuild of volume %d on %s regenerated shards %v, not the missing %v: the rebuilder holds unmounted files of shards %v; mount or remove them, then submit a new task",
			pl.vid, pl.rebuilder, got, pl.missing(), without(pl.missing(), got)))
	}

	p.begin(StepRebuildMount, 60)
	cctx, cancel := call(ctx)
	err = e.c.VolumeEcShardsMount(cctx, pl.rebuilder, pl.vid, pl.collection, rebuilt)
	cancel()
	if err != nil {
		return fail(StepRebuildMount, err)
	}

	// Move each regenerated shard whose planned server is another one.
	p.begin(StepRebuildSpread, 65)
	moves := map[string][]uint32{}
	var targets []string
	for _, id := range pl.missing() {
		if t := pl.targets[id]; !sameServer(t, pl.rebuilder) {
			if moves[t] == nil {
				targets = append(targets, t)
			}
			moves[t] = append(moves[t], id)
		}
	}
	for i, t := range targets {
		if err := ctx.Err(); err != nil {
			return fail(StepRebuildSpread, err)
		}
		a.placed[t] = moves[t]
		err := moveShards(ctx, e.c, pl.vid, pl.collection, pl.rebuilder, t, pl.disks[t], moves[t], nil)
		if err != nil {
			return fail(StepRebuildSpread, err)
		}
		a.moved = append(a.moved, moves[t]...)
		p.within(65 + 20*float64(i+1)/float64(len(targets)))
	}

	p.begin(StepRebuildVerify, 85)
	if err := ctx.Err(); err != nil {
		return fail(StepRebuildVerify, err)
	}
	after, err := a.verify(ctx)
	if err != nil {
		return fail(StepRebuildVerify, err)
	}

	// The volume is whole: the gathered copies go, each mounted elsewhere.
	// This runs to the end even if the attempt is cancelled now, and a
	// failure leaves the repair in place (unmounted leftover files only).
	p.begin(StepRebuildCleanup, 95)
	if err := a.removeGathered(ctx, after); err != nil {
		return nil, failure(ctx, StepRebuildCleanup, fmt.Errorf("%w: volume %d is whole again, but the copies gathered on %s are left (unmounted): %w", errPermanent, pl.vid, pl.rebuilder, err), false, nil)
	}
	p.done()
	change := &fsmpb.CapacityChange{
		TaskId:      spec.GetTask().GetId(),
		Type:        fsmpb.TaskType_TASK_TYPE_EC_REBUILD,
		VolumeId:    pl.vid,
		Collection:  pl.collection,
		OldSize:     uint64(a.shardSize) * seaweed.EcDataShards, // the capacity oracle counts a tenth per shard
		Shards:      placementList(pl.targets),
		CompletedAt: time.Now().UnixNano(),
	}
	return change, nil
}

// mountedSet is, for each surveyed server (by the name the plan gives
// it), the shard ids it has mounted.
type mountedSet map[string]map[uint32]bool

// of is what server (in any address form) has mounted.
func (m mountedSet) of(server string) map[uint32]bool {
	if ids, ok := m[server]; ok {
		return ids
	}
	for s, ids := range m {
		if sameServer(s, server) {
			return ids
		}
	}
	return nil
}

// holders lists the servers with shard id mounted.
func (m mountedSet) holders(id uint32) []string {
	var out []string
	for s, ids := range m {
		if ids[id] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// survey asks every involved server which shards of the volume it has
// mounted.
func (a *rebuildAttempt) survey(ctx context.Context) (mountedSet, error) {
	out := mountedSet{}
	sizes := map[string]map[uint32]int64{}
	for _, s := range a.servers {
		cctx, cancel := call(ctx)
		m, err := a.c.MountedEcShards(cctx, s, a.vid)
		cancel()
		if err != nil {
			return nil, stepOn("list the mounted shards", s, err)
		}
		for id, size := range m {
			if id < seaweed.EcTotalShards {
				a.shardSize = max(a.shardSize, size)
			}
		}
		sizes[s] = m
	}
	a.sizes = sizes
	for s, m := range sizes {
		out[s], _ = splitShort(m)
	}
	return out, nil
}

// truncated is, by server, the truncated copies the last survey saw
// (splitShort), for the servers that mount any.
func (a *rebuildAttempt) truncated() map[string][]uint32 {
	out := map[string][]uint32{}
	for s, m := range a.sizes {
		if _, short := splitShort(m); len(short) > 0 {
			out[s] = short
		}
	}
	return out
}

// splitShort splits the shards a server mounts (id -> size) into the whole
// ones and, ascending, the truncated ones: a server mounts a volume's
// shards beside one .ecx, of one encode run, all of one size, so one
// shorter than another there is a truncated file (a copy a crash cut
// short, mounted when the server started again). Sizes are not compared
// across servers: another may hold a whole shard of another encode run.
func splitShort(m map[uint32]int64) (whole map[uint32]bool, short []uint32) {
	long := longestShard(m)
	whole = map[uint32]bool{}
	for id, size := range m {
		switch {
		case id >= seaweed.EcTotalShards:
		case size < long:
			short = append(short, id)
		default:
			whole[id] = true
		}
	}
	slices.Sort(short)
	return whole, short
}

// removeShort unmounts and deletes the truncated copies the last survey
// saw (truncated), each only if its shard is one this attempt regenerates or
// is mounted whole on another server (m): a truncated file holds no shard,
// and a rebuilder holding one would not regenerate that shard. Any other
// one is an error: the plan is from an older topology. A truncated copy
// is shorter than another shard its server mounts, so deleting it never
// deletes that server's last shard (and with it its .ecx and .ecj).
func (a *rebuildAttempt) removeShort(ctx context.Context, m mountedSet) error {
	short := a.truncated()
	if len(short) == 0 {
		return nil
	}
	whole := map[uint32]bool{}
	for _, ids := range m {
		maps.Copy(whole, ids)
	}
	if n := len(whole); n < seaweed.EcDataShards {
		// Fewer whole shards than a rebuild needs: not proof enough
		// that the shorter copies are the truncated ones.
		return fmt.Errorf("volume %d: only %d distinct shards are mounted whole, and others shorter: not telling which are truncated; changing nothing", a.vid, n)
	}
	for _, s := range slices.Sorted(maps.Keys(short)) {
		ids := short[s]
		for _, id := range ids {
			if _, regenerated := a.targets[id]; !regenerated && !m.mountedElsewhere(id, s) {
				return fmt.Errorf("shard %d of volume %d is mounted truncated on %s and whole nowhere, and the spec does not rebuild it: planning again", id, a.vid, s)
			}
		}
		if err := unmountAndDelete(ctx, a.c, s, a.vid, a.collection, ids); err != nil {
			return stepOn(fmt.Sprintf("remove the truncated copies of shards %v", ids), s, err)
		}
	}
	return nil
}

// verify requires every one of the 14 shards mounted: each regenerated one
// exactly once, on its planned server, and each present one as many times
// as the plan lists it (the rebuild adds no copy of it: the gathered
// copies are not mounted).
func (a *rebuildAttempt) verify(ctx context.Context) (mountedSet, error) {
	m, err := a.survey(ctx)
	if err != nil {
		return nil, err
	}
	var bad []string
	short := a.truncated()
	for _, s := range slices.Sorted(maps.Keys(short)) {
		bad = append(bad, fmt.Sprintf("shards %v on %s are truncated copies", short[s], s))
	}
	// A regenerated shard is as long as the present ones: a copy cut short
	// on a target that holds no other shard is its longest there, and
	// only this tells it apart.
	var present int64
	for srv, ids := range m {
		for id := range ids {
			if _, regenerated := a.targets[id]; !regenerated {
				present = max(present, a.sizes[srv][id])
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(a.targets)) {
		t := a.targets[id]
		for _, srv := range slices.Sorted(maps.Keys(a.sizes)) {
			if n, ok := a.sizes[srv][id]; ok && sameServer(srv, t) && present > 0 && n != present {
				bad = append(bad, fmt.Sprintf("regenerated shard %d on %s is %d bytes, the present shards %d", id, t, n, present))
			}
		}
	}
	for id := uint32(0); id < seaweed.EcTotalShards; id++ {
		on := m.holders(id)
		if t, ok := a.targets[id]; ok {
			if len(on) != 1 || !sameServer(on[0], t) {
				bad = append(bad, fmt.Sprintf("regenerated shard %d is mounted on [%s], want %s only", id, strings.Join(on, " "), t))
			}
			continue
		}
		if len(on) == 0 {
			bad = append(bad, fmt.Sprintf("shard %d is mounted nowhere", id))
		} else if len(on) > len(a.holders[id]) {
			bad = append(bad, fmt.Sprintf("shard %d is mounted on [%s], more than the spec's [%s]", id, strings.Join(on, " "), strings.Join(a.holders[id], " ")))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("volume %d after the rebuild: %s", a.vid, strings.Join(bad, "; "))
	}
	return m, nil
}

// removeGathered deletes the rebuilder's gathered copies, each only if it
// is not mounted there and is mounted on another server (m, a verify's
// survey): never the only copy of a shard.
func (a *rebuildAttempt) removeGathered(ctx context.Context, m mountedSet) error {
	var del []uint32
	for _, id := range a.gathered {
		if m.of(a.rebuilder)[id] {
			continue
		}
		elsewhere := slices.ContainsFunc(m.holders(id), func(s string) bool { return !sameServer(s, a.rebuilder) })
		if !elsewhere {
			return fmt.Errorf("shard %d is mounted on no server but %s: keeping its copy there", id, a.rebuilder)
		}
		del = append(del, id)
	}
	if len(del) == 0 {
		return nil
	}
	dctx, cancel := detached(ctx, finishTimeout)
	defer cancel()
	return a.c.VolumeEcShardsDelete(dctx, a.rebuilder, a.vid, a.collection, del)
}

// surveyAnswering is survey, except that a server that does not answer is
// left out (and named in the error) instead of failing the whole survey:
// for the rollback, which deletes a copy only on positive evidence (a
// server seen mounting the shard), so an unknown server only keeps more.
func (a *rebuildAttempt) surveyAnswering(ctx context.Context) (mountedSet, error) {
	out := mountedSet{}
	var errs []error
	for _, s := range a.servers {
		cctx, cancel := call(ctx)
		m, err := a.c.MountedEcShards(cctx, s, a.vid)
		cancel()
		if err != nil {
			errs = append(errs, stepOn("list the mounted shards", s, err))
			continue
		}
		// A truncated copy counts as no shard here either: it is never
		// the repair that stays, nor what makes another copy a duplicate.
		out[s], _ = splitShort(m)
	}
	return out, errors.Join(errs...)
}

// answered reports whether server is in the survey m.
func (m mountedSet) answered(server string) bool {
	if _, ok := m[server]; ok {
		return true
	}
	for s := range m {
		if sameServer(s, server) {
			return true
		}
	}
	return false
}

// mountedElsewhere reports whether a server other than not is seen
// mounting shard id.
func (m mountedSet) mountedElsewhere(id uint32, not string) bool {
	return slices.ContainsFunc(m.holders(id), func(s string) bool { return !sameServer(s, not) })
}

// rollback removes what the attempt created, but never a shard the volume
// may need: it deletes only on positive evidence from a fresh survey
// (taken now, at delete time; a server that does not answer counts as
// unknown, and what it would decide is kept):
//   - a regenerated shard mounted on its target is kept: the repair it
//     made stays. The task fails; the next plan (from the current
//     topology) sees the shard present and does not regenerate it again.
//   - a regenerated shard's copy on a target that does not mount it (a
//     copy cut short) is deleted.
//   - a regenerated shard's copy on the rebuilder (target elsewhere, not
//     yet moved, or target the rebuilder but not yet mounted) is deleted
//     if its target mounts it (a duplicate), or if every present shard of
//     the plan is seen mounted: the volume is then back to the state it
//     was planned from. Otherwise it is kept (it may be what keeps the
//     volume readable).
//   - a gathered copy on the rebuilder is deleted only if another server
//     is seen mounting that same shard; otherwise kept: an unmounted
//     leftover file is harmless, losing an only copy is not.
//
// It returns nil if it removed everything, else an error naming what it
// kept and what happens next.
func (a *rebuildAttempt) rollback(ctx context.Context) error {
	rctx, cancel := detached(ctx, rollbackTimeout)
	defer cancel()
	m, serr := a.surveyAnswering(rctx)
	var errs, kept []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if serr != nil {
		errs = append(errs, serr.Error())
	}

	// Regenerated shards on their targets.
	for _, t := range slices.Sorted(maps.Keys(a.placed)) {
		if !m.answered(t) {
			kept = append(kept, fmt.Sprintf("regenerated shards %v on %s (it did not answer)", a.placed[t], t))
			continue
		}
		var del, on []uint32
		for _, id := range a.placed[t] {
			if m.of(t)[id] {
				on = append(on, id)
			} else {
				del = append(del, id)
			}
		}
		if len(on) > 0 {
			kept = append(kept, fmt.Sprintf("regenerated shards %v mounted on %s (the repair stays)", on, t))
		}
		note(stepOn("remove the unmounted regenerated shards", t, unmountAndDelete(rctx, a.c, t, a.vid, a.collection, del)))
	}

	// Regenerated shards still on the rebuilder.
	present := true
	for id := range a.holders {
		present = present && len(m.holders(id)) > 0
	}
	var onRebuilder, keptRebuilt []uint32
	for _, id := range a.rebuilt {
		if slices.Contains(a.moved, id) {
			continue
		}
		t := a.targets[id]
		switch {
		case !m.answered(a.rebuilder):
			keptRebuilt = append(keptRebuilt, id)
		case sameServer(t, a.rebuilder) && m.of(a.rebuilder)[id]:
			kept = append(kept, fmt.Sprintf("regenerated shard %d mounted on %s (the repair stays)", id, t))
		case !sameServer(t, a.rebuilder) && m.answered(t) && m.of(t)[id]:
			onRebuilder = append(onRebuilder, id) // a duplicate: its target mounts it
		case present:
			onRebuilder = append(onRebuilder, id)
		default:
			keptRebuilt = append(keptRebuilt, id)
		}
	}
	if len(keptRebuilt) > 0 {
		kept = append(kept, fmt.Sprintf("regenerated shards %v on %s (not every present shard is seen mounted: they may be needed)", keptRebuilt, a.rebuilder))
	}
	note(stepOn("remove the regenerated shards", a.rebuilder, unmountAndDelete(rctx, a.c, a.rebuilder, a.vid, a.collection, onRebuilder)))

	// Gathered copies on the rebuilder.
	var del, keptGathered []uint32
	for _, id := range a.gathered {
		if m.answered(a.rebuilder) && !m.of(a.rebuilder)[id] && m.mountedElsewhere(id, a.rebuilder) {
			del = append(del, id)
		} else {
			keptGathered = append(keptGathered, id)
		}
	}
	if len(keptGathered) > 0 {
		kept = append(kept, fmt.Sprintf("gathered copies %v on %s (not seen mounted on another server)", keptGathered, a.rebuilder))
	}
	if len(del) > 0 {
		cctx, ccancel := call(rctx)
		note(stepOn("remove the gathered shards", a.rebuilder, a.c.VolumeEcShardsDelete(cctx, a.rebuilder, a.vid, a.collection, del)))
		ccancel()
	}

	if len(kept) == 0 && len(errs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("volume %d: ", a.vid)
	if len(kept) > 0 {
		msg += "kept " + strings.Join(kept, "; ") + ": nothing a volume may need is deleted; a new plan from the current topology counts the mounted shards as present (an unmounted leftover file on " + a.rebuilder + " can be removed once the volume is whole)"
	}
	if len(errs) > 0 {
		if len(kept) > 0 {
			msg += "; "
		}
		msg += strings.Join(errs, "; ")
	}
	return errors.New(msg)
}

// unmountAndDelete unmounts the shards on server and deletes their files.
func unmountAndDelete(ctx context.Context, c *seaweed.VolumeClient, server string, vid uint32, collection string, ids []uint32) error {
	if len(ids) == 0 {
		return nil
	}
	cctx, cancel := call(ctx)
	defer cancel()
	if err := c.VolumeEcShardsUnmount(cctx, server, vid, ids); err != nil && !seaweed.IsNotFound(err) {
		return err
	}
	return c.VolumeEcShardsDelete(cctx, server, vid, collection, ids)
}

// without is the ids of all not in some.
func without(all, some []uint32) []uint32 {
	var out []uint32
	for _, id := range all {
		if !slices.Contains(some, id) {
			out = append(out, id)
		}
	}
	return out
}

// Rollback undoes what an interrupted attempt may have left. If every
// shard is mounted as planned (the attempt got past its verify), the
// repair stays and only the gathered copies are removed (each mounted
// elsewhere). Otherwise it rolls back as an attempt does (rollback), from
// the spec alone: every regenerated shard may be on its target and on the
// rebuilder, every present shard the rebuilder does not mount may have a
// gathered copy there. A regenerated shard mounted on its target is kept
// whatever made the verify fail (a present shard lost meanwhile, say): the
// number of distinct mounted shards is never lowered by it.
func (e *ecRebuildExecutor) Rollback(ctx context.Context, spec *pb.TaskSpec) error {
	pl, err := planRebuild(spec)
	if err != nil {
		return err
	}
	a := &rebuildAttempt{rebuildPlan: pl, c: e.c, placed: map[string][]uint32{}}
	m, err := a.survey(ctx)
	if err != nil {
		return fmt.Errorf("cannot tell what an interrupted rebuild of volume %d left; changing nothing: %w", pl.vid, err)
	}
	for id := range pl.holders {
		if !m.of(pl.rebuilder)[id] {
			a.gathered = append(a.gathered, id)
		}
	}
	slices.Sort(a.gathered)
	if after, verr := a.verify(ctx); verr == nil {
		return a.removeGathered(ctx, after)
	}
	for id, t := range pl.targets {
		if !sameServer(t, pl.rebuilder) {
			a.placed[t] = append(a.placed[t], id)
		}
	}
	a.rebuilt = pl.missing()
	return a.rollback(ctx)
}
