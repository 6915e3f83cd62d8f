package sim

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"
)

// Violation is a volume whose data the cluster does not hold as promised.
type Violation struct {
	VolumeID uint32
	// Problems says what is wrong, one sentence each.
	Problems []string
	// Ledger says what the volume must hold: its promised copies and its
	// acknowledged writes.
	Ledger string
	// History is every operation the op log recorded on the volume.
	History []Op
	// Repairable: the only problem is reduced redundancy that a repair can
	// restore: a regular copy still holds every acknowledged write, or a
	// consistent EC generation still has at least DataShards distinct
	// shards mounted.
	Repairable bool
}

// historyShown bounds the operations String prints (the last ones).
const historyShown = 40

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "volume %d: %s (%s)", v.VolumeID, strings.Join(v.Problems, "; "), v.Ledger)
	ops := v.History
	if len(ops) > historyShown {
		fmt.Fprintf(&b, "\n    ... %d earlier operations", len(ops)-historyShown)
		ops = ops[len(ops)-historyShown:]
	}
	for _, o := range ops {
		fmt.Fprintf(&b, "\n    %s", o)
		if o.Err != "" {
			fmt.Fprintf(&b, " err=%q", o.Err)
		}
	}
	return b.String()
}

// Durability checks, at any moment, that no volume has lost data: every
// volume that ever held data has either its promised number of regular
// replicas holding every acknowledged write, or the 14 distinct shards of
// one EC generation that encodes exactly those writes; and a volume served
// only as EC mounts no shard of another generation. What a task in flight
// legitimately leaves (a copy not yet tailed, an encode not yet spread,
// leftovers of an encode beside the regular replicas) is not reported.
// Volume servers that are down still count: their disks keep the data. A
// server lost for good (VolumeServer.Lose) holds nothing: the copies it
// had are gone, and each volume it held a copy of shows "redundancy lost"
// until a repair restores its promised copies elsewhere.
// Volumes retired with DropVolume are not checked, nor is one a
// VolumeDelete with only_empty/only_garbage deleted (the server verified
// it held no live file) while no replica left holds a live file and no
// shard of it exists: it held no data to lose.
func (c *Cluster) Durability() []Violation { return c.durability(false, nil) }

// DurabilityWithout is Durability as if server i had been lost for good
// (VolumeServer.Lose) this moment: a fault injector asks it before losing
// a server, to lose none whose loss leaves a volume beyond repair (every
// violation it returns must be Repairable).
func (c *Cluster) DurabilityWithout(i int) []Violation { return c.durability(false, c.servers[i]) }

// DurabilityAtRest is Durability for a cluster with no task in flight,
// which must also be tidy: every regular replica holds exactly the
// acknowledged writes (none silently missed one); a volume that is both
// regular and EC has read-only replicas identical to a complete EC
// generation that encodes them (an encode whose original replicas were not
// all deleted); and no shard file or mounted shard of another generation
// is left.
func (c *Cluster) DurabilityAtRest() []Violation { return c.durability(true, nil) }

type replicaView struct {
	server          string
	missing, extra  int
	readOnly, unldd bool
}

func (r replicaView) current() bool { return r.missing == 0 && r.extra == 0 }

type shardView struct {
	server         string
	shard          uint32
	gen            int64
	missing, extra int
	file, mounted  bool
	partial        bool // a truncated file: no shard of any generation
}

type genView struct {
	id             int64
	files          uint32 // distinct shard ids with a file on some disk
	mounted        uint32 // distinct shard ids mounted (what a master sees)
	missing, extra int
}

func (g *genView) consistent() bool { return g.missing == 0 && g.extra == 0 }

type volumeView struct {
	replicas int
	held     bool
	// emptied: a replica was deleted as verified empty (only_empty or
	// only_garbage) and every replica left holds no live file: the volume
	// holds no data to lose (delete_empty, volume.deleteEmpty).
	emptied  bool
	liveLeft bool
	dropped  bool // retired by DropVolume: not checked
	acked    int
	ackedAt  int64
	regular  []replicaView
	shards   []shardView
}

func (c *Cluster) durability(atRest bool, without *VolumeServer) []Violation {
	views := map[uint32]*volumeView{}
	c.content.mu.Lock()
	for _, s := range c.servers {
		s.mu.Lock()
	}
	empty := map[int64]struct{}{}
	ledger := func(vid uint32) (map[int64]struct{}, *volumeView) {
		l := c.content.vols[vid]
		v := views[vid]
		if v == nil {
			v = &volumeView{replicas: 1}
			if l != nil {
				v.replicas, v.held, v.acked, v.ackedAt = max(l.replicas, 1), l.held, len(l.acked), l.ackedAt
				v.dropped = l.dropped
			}
			views[vid] = v
		}
		if l == nil {
			return empty, v
		}
		return l.acked, v
	}
	for _, vid := range c.content.sortedVidsLocked() {
		ledger(vid)
	}
	// What a generation holds: what it encoded plus the deletes any holder
	// journalled since (an .ecj counts wherever it is on disk).
	journalled := map[uint32]map[int64]map[int64]struct{}{}
	for _, s := range c.servers {
		if s == without {
			continue
		}
		for vid, e := range s.ecs {
			for _, j := range e.journal {
				if journalled[vid] == nil {
					journalled[vid] = map[int64]map[int64]struct{}{}
				}
				if journalled[vid][j.gen] == nil {
					journalled[vid][j.gen] = map[int64]struct{}{}
				}
				journalled[vid][j.gen][j.ts] = struct{}{}
			}
		}
	}
	holds := map[uint32]map[int64]map[int64]struct{}{}
	genWrites := func(vid uint32, g ecGen) map[int64]struct{} {
		js := journalled[vid][g.id]
		if len(js) == 0 {
			return g.writes
		}
		if set := holds[vid][g.id]; set != nil {
			return set
		}
		set := cloneSet(g.writes)
		for ts := range js {
			set[ts] = struct{}{}
		}
		if holds[vid] == nil {
			holds[vid] = map[int64]map[int64]struct{}{}
		}
		holds[vid][g.id] = set
		return set
	}
	for _, s := range c.servers {
		// A verified-empty delete happened whatever becomes of its server.
		for vid := range s.emptyDeleted {
			_, v := ledger(vid)
			v.emptied = true
		}
		if s == without {
			continue
		}
		for vid, r := range s.vols {
			acked, v := ledger(vid)
			v.liveLeft = v.liveLeft || r.fileCount > r.deleteCount
			miss, extra := diffSets(acked, r.applied)
			v.regular = append(v.regular, replicaView{server: s.id, missing: miss, extra: extra, readOnly: r.noWrite(), unldd: r.unloaded})
		}
		for vid, e := range s.ecs {
			acked, v := ledger(vid)
			for _, sh := range shardList(e.files | e.mounted) {
				if sh >= TotalShards {
					continue
				}
				g := e.gens[sh]
				miss, extra := diffSets(acked, genWrites(vid, g))
				v.shards = append(v.shards, shardView{server: s.id, shard: sh, gen: g.id, missing: miss, extra: extra,
					file: e.files&(1<<sh) != 0, mounted: e.mounted&(1<<sh) != 0, partial: g.partial})
			}
		}
	}
	for i := len(c.servers) - 1; i >= 0; i-- {
		c.servers[i].mu.Unlock()
	}
	c.content.mu.Unlock()

	vids := make([]uint32, 0, len(views))
	for vid := range views {
		vids = append(vids, vid)
	}
	sort.Slice(vids, func(i, j int) bool { return vids[i] < vids[j] })
	var out []Violation
	var ops []Op
	for _, vid := range vids {
		v := views[vid]
		if v.dropped {
			continue
		}
		problems, repairable := v.problems(atRest)
		if len(problems) == 0 {
			continue
		}
		if ops == nil {
			ops = c.OpLog()
		}
		viol := Violation{VolumeID: vid, Problems: problems, Ledger: v.ledgerText(), Repairable: repairable && len(problems) == 1}
		for _, o := range ops {
			if o.VolumeID == vid {
				viol.History = append(viol.History, o)
			}
		}
		out = append(out, viol)
	}
	return out
}

func (v *volumeView) ledgerText() string {
	s := fmt.Sprintf("promised %d regular copies; %d acknowledged writes", v.replicas, v.acked)
	if v.acked > 0 {
		s += ", the last at " + time.Unix(0, v.ackedAt).UTC().Format("15:04:05.000000")
	}
	return s
}

// generations groups the shard files by generation, newest first.
func (v *volumeView) generations() []*genView {
	byID := map[int64]*genView{}
	for _, sh := range v.shards {
		if !sh.file || sh.partial {
			continue
		}
		g := byID[sh.gen]
		if g == nil {
			g = &genView{id: sh.gen, missing: sh.missing, extra: sh.extra}
			byID[sh.gen] = g
		}
		g.files |= 1 << sh.shard
		if sh.mounted {
			g.mounted |= 1 << sh.shard
		}
	}
	out := make([]*genView, 0, len(byID))
	for _, g := range byID {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id > out[j].id })
	return out
}

// problems lists what is wrong with the volume, and whether the first
// (reduced redundancy) can be repaired: a current regular copy or a
// consistent generation with at least DataShards shards mounted remains.
func (v *volumeView) problems(atRest bool) (out []string, repairable bool) {
	current := 0
	for _, r := range v.regular {
		if r.current() {
			current++
		}
	}
	gens := v.generations()
	var good *genView
	for _, g := range gens {
		if bits.OnesCount32(g.files) == TotalShards && g.consistent() {
			good = g
			break
		}
	}
	if v.held && current < v.replicas && good == nil && !(v.emptied && !v.liveLeft && len(v.shards) == 0) {
		repairable = current > 0
		for _, g := range gens {
			// Mounted, not only on disk: a repair works from what the
			// master lists (unmounted leftovers of an interrupted copy
			// are invisible to it).
			repairable = repairable || (bits.OnesCount32(g.mounted) >= DataShards && g.consistent())
		}
		s := "data lost: no regular copy holds exactly the acknowledged writes and no complete EC generation encodes them"
		if current > 0 {
			s = fmt.Sprintf("redundancy lost: %d of the %d promised regular copies hold exactly the acknowledged writes, and no complete EC generation encodes them", current, v.replicas)
		}
		if rs := v.describeReplicas(false); rs != "" {
			s += " (" + rs + ")"
		}
		if len(gens) == 0 {
			s += ", and no EC shards"
		}
		for _, g := range gens {
			s += ", " + describeGen(g)
		}
		out = append(out, s)
	}
	// A truncated shard file is never served, and at rest none is left.
	var partial []string
	for _, sh := range v.shards {
		if sh.partial && (sh.mounted || atRest) {
			where := "on disk"
			if sh.mounted {
				where = "mounted"
			}
			partial = append(partial, fmt.Sprintf("shard %d on %s (%s)", sh.shard, sh.server, where))
		}
	}
	if len(partial) > 0 {
		out = append(out, "truncated shard files (a copy cut short by a crash) are left: "+strings.Join(partial, ", "))
	}
	// A volume served as EC only must not mount a shard of another generation.
	if good != nil && (atRest || len(v.regular) == 0) {
		var stale []string
		for _, sh := range v.shards {
			if sh.gen != good.id && !sh.partial && (sh.mounted || atRest) {
				where := "on disk"
				if sh.mounted {
					where = "mounted"
				}
				stale = append(stale, fmt.Sprintf("shard %d on %s (%s, generation %d)", sh.shard, sh.server, where, sh.gen))
			}
		}
		if len(stale) > 0 {
			out = append(out, fmt.Sprintf("shards of another generation than the complete one (%d) are left: %s", good.id, strings.Join(stale, ", ")))
		}
	}
	if !atRest {
		return out, repairable
	}
	if rs := v.describeReplicas(true); rs != "" {
		out = append(out, "regular replicas that do not hold exactly the acknowledged writes: "+rs)
	}
	if len(v.regular) > 0 && len(v.shards) > 0 {
		ok := good != nil
		var writable []string
		for _, r := range v.regular {
			if !r.readOnly {
				writable = append(writable, r.server)
			}
			ok = ok && r.current()
		}
		ok = ok && len(writable) == 0
		if !ok {
			s := fmt.Sprintf("both a regular volume (%d replicas", len(v.regular))
			if len(writable) > 0 {
				s += ", writable on " + strings.Join(writable, ", ")
			}
			s += ") and an EC volume ("
			var gs []string
			for _, g := range gens {
				gs = append(gs, describeGen(g))
			}
			if len(gs) == 0 {
				gs = append(gs, "mounted shards whose files are gone")
			}
			s += strings.Join(gs, "; ") + ")"
			out = append(out, s)
		}
	}
	return out, repairable
}

// describeReplicas lists the replicas that are not current (onlyBad) or
// all of them.
func (v *volumeView) describeReplicas(onlyBad bool) string {
	var parts []string
	for _, r := range v.regular {
		if onlyBad && r.current() {
			continue
		}
		var what []string
		if r.missing > 0 {
			what = append(what, fmt.Sprintf("missed %d acknowledged writes", r.missing))
		}
		if r.extra > 0 {
			what = append(what, fmt.Sprintf("holds %d writes never acknowledged", r.extra))
		}
		if len(what) == 0 {
			what = append(what, "current")
		}
		if r.readOnly {
			what = append(what, "read-only")
		}
		if r.unldd {
			what = append(what, "unloaded")
		}
		parts = append(parts, r.server+": "+strings.Join(what, ", "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func describeGen(g *genView) string {
	s := fmt.Sprintf("EC generation %d has %d of %d shards on disk %v", g.id, bits.OnesCount32(g.files), TotalShards, shardList(g.files))
	switch {
	case g.missing > 0 && g.extra > 0:
		s += fmt.Sprintf(" and encodes content that misses %d acknowledged writes and holds %d others", g.missing, g.extra)
	case g.missing > 0:
		s += fmt.Sprintf(" and encodes content that misses %d acknowledged writes", g.missing)
	case g.extra > 0:
		s += fmt.Sprintf(" and encodes %d writes never acknowledged", g.extra)
	}
	return s
}
