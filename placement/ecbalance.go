package placement

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ShardParam is the task parameter of an ec_balance task naming the shard
// it moves (its source and target are the task's).
const ShardParam = "shard"

// The levels an EC volume's shards spread over, outermost first.
const (
	LevelDC = iota
	LevelRack
	LevelHost
	LevelServer
	levels
)

// ECSpread is how far an EC volume's layout is from an even spread: for
// each level (LevelDC, LevelRack, LevelHost, LevelServer), the shards its
// groups hold beyond an even share, ceil(14 / groups), counting every
// server with a disk of the volume's disk type as a group member (an
// empty group counts too: it could take shards). 0 everywhere is as even
// as the cluster allows at every level; a level whose groups are uneven
// in number underneath (one rack in one data centre, three in another)
// may keep some excess that no move removes without making an outer
// level worse.
type ECSpread [levels]int

// Total is the excess summed over the levels.
func (s ECSpread) Total() int {
	n := 0
	for _, x := range s {
		n += x
	}
	return n
}

// Improves reports whether s is a strictly better spread than before:
// no level worse, and at least one better. ec_balance only makes such
// moves, so a volume's data-centre and rack spread never gets worse, and
// moves of one volume end (the total falls with each).
func (s ECSpread) Improves(before ECSpread) bool {
	return s.Keeps(before) && s.Total() < before.Total()
}

// Keeps reports whether no level of s is worse than before.
func (s ECSpread) Keeps(before ECSpread) bool {
	for l := range s {
		if s[l] > before[l] {
			return false
		}
	}
	return true
}

func (s ECSpread) String() string {
	return fmt.Sprintf("excess dc %d, rack %d, host %d, server %d", s[LevelDC], s[LevelRack], s[LevelHost], s[LevelServer])
}

// ECLayout is an EC volume whose 14 shards are each mounted exactly once,
// on servers of the topology, and where they could go: every server with a
// disk of the volume's disk type.
type ECLayout struct {
	Volume *seaweed.EcVolume
	keys   *ECKeys
	// On is the server holding each shard.
	On    [TotalShards]*seaweed.Server
	cap   [levels]int
	count [levels]map[string]int
	// Candidates are the servers with a disk of the volume's disk type
	// (and every holder), by id.
	Candidates []*seaweed.Server
}

// ECKeys caches, for the layouts of one topology (NewECLayoutKeys), each
// server's group keys at every level and each disk type's candidates and
// even shares: a detection round over many volumes computes them once, not
// once per volume or per move it weighs.
type ECKeys struct {
	keys   map[*seaweed.Server]*[levels]string
	byType map[string]*ecCandidates
}

type ecCandidates struct {
	servers []*seaweed.Server // with a disk of the type, by id
	ids     map[string]bool
	cap     [levels]int
}

// NewECKeys is an empty cache.
func NewECKeys() *ECKeys {
	return &ECKeys{keys: map[*seaweed.Server]*[levels]string{}, byType: map[string]*ecCandidates{}}
}

func (k *ECKeys) of(s *seaweed.Server) *[levels]string {
	if ks, ok := k.keys[s]; ok {
		return ks
	}
	ks := levelKeys(s)
	k.keys[s] = &ks
	return &ks
}

// candidates are the servers of topo that hold a shard (held) or have a
// disk of type typ, by id, and the even share at each level over them.
func (k *ECKeys) candidates(topo *seaweed.Topology, typ string, held map[string]bool) ([]*seaweed.Server, [levels]int) {
	c, ok := k.byType[typ]
	if !ok {
		c = &ecCandidates{ids: map[string]bool{}}
		c.servers, c.cap = k.evenShares(topo, func(s *seaweed.Server) bool { return ShardTargetable(s, typ, false) })
		for _, s := range c.servers {
			c.ids[s.ID] = true
		}
		k.byType[typ] = c
	}
	for id := range held {
		if !c.ids[id] {
			// A holder without a disk of the type (rare): this volume's
			// own list.
			return k.evenShares(topo, func(s *seaweed.Server) bool { return held[s.ID] || ShardTargetable(s, typ, false) })
		}
	}
	return c.servers, c.cap
}

func (k *ECKeys) evenShares(topo *seaweed.Topology, in func(*seaweed.Server) bool) ([]*seaweed.Server, [levels]int) {
	var out []*seaweed.Server
	for _, s := range topo.Servers {
		if in(s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *seaweed.Server) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	var groups [levels]map[string]bool
	for lv := range levels {
		groups[lv] = map[string]bool{}
	}
	for _, s := range out {
		for lv, key := range k.of(s) {
			groups[lv][key] = true
		}
	}
	var caps [levels]int
	for lv := range levels {
		caps[lv] = (TotalShards + max(len(groups[lv]), 1) - 1) / max(len(groups[lv]), 1)
	}
	return out, caps
}

// levelKeys are a server's group at each level.
func levelKeys(s *seaweed.Server) [levels]string {
	l := ServerLocation(s)
	h := l.Host
	if h == "" {
		h = l.Server
	}
	return [levels]string{l.DC, l.DC + "\x00" + l.Rack, l.DC + "\x00" + l.Rack + "\x00" + h, l.Server}
}

// NewECLayout reads e's layout from topo. It refuses, saying why, a volume
// that is not whole (a shard missing: ec_rebuild's work), has a shard
// listed twice (a duplicate is removed by a repair, not moved), or has a
// shard on a server the topology does not list.
func NewECLayout(topo *seaweed.Topology, e *seaweed.EcVolume) (*ECLayout, error) {
	return NewECLayoutKeys(topo, e, NewECKeys())
}

// NewECLayoutKeys is NewECLayout sharing keys (of the same topology) with
// other layouts.
func NewECLayoutKeys(topo *seaweed.Topology, e *seaweed.EcVolume, keys *ECKeys) (*ECLayout, error) {
	l := &ECLayout{Volume: e, keys: keys}
	for id, holders := range e.Shards {
		if id >= TotalShards {
			return nil, fmt.Errorf("EC volume %d lists shard %d, beyond the %d a volume has", e.ID, id, TotalShards)
		}
		if len(holders) > 1 {
			return nil, fmt.Errorf("EC volume %d has shard %d on %d servers: a duplicate is not balanced", e.ID, id, len(holders))
		}
	}
	held := map[string]bool{}
	for id := uint32(0); id < TotalShards; id++ {
		holders := e.Shards[id]
		if len(holders) == 0 {
			return nil, fmt.Errorf("EC volume %d is missing shard %d: it needs a rebuild, not a balance", e.ID, id)
		}
		s, ok := topo.FindServer(holders[0])
		if !ok {
			return nil, fmt.Errorf("EC volume %d: shard %d is on %s, which the topology does not list", e.ID, id, holders[0])
		}
		l.On[id] = s
		held[s.ID] = true
	}
	l.Candidates, l.cap = keys.candidates(topo, e.DiskType, held)
	for lv := range levels {
		l.count[lv] = map[string]int{}
	}
	for _, s := range l.On {
		for lv, k := range l.keys.of(s) {
			l.count[lv][k]++
		}
	}
	return l, nil
}

// Spread is the layout's excess at each level.
func (l *ECLayout) Spread() ECSpread {
	var out ECSpread
	for lv := range levels {
		for _, n := range l.count[lv] {
			out[lv] += max(0, n-l.cap[lv])
		}
	}
	return out
}

// After is the spread once one shard moves from src (which holds one) to
// dst.
func (l *ECLayout) After(src, dst *seaweed.Server) ECSpread {
	out := l.Spread()
	ks, kd := l.keys.of(src), l.keys.of(dst)
	for lv := range levels {
		if ks[lv] == kd[lv] {
			continue
		}
		cs, cd, c := l.count[lv][ks[lv]], l.count[lv][kd[lv]], l.cap[lv]
		out[lv] += max(0, cs-1-c) - max(0, cs-c) + max(0, cd+1-c) - max(0, cd-c)
	}
	return out
}

// ShardsOn lists the shards server id holds, ascending.
func (l *ECLayout) ShardsOn(id string) []uint32 {
	var out []uint32
	for shard, s := range l.On {
		if s.ID == id {
			out = append(out, uint32(shard))
		}
	}
	return out
}

// Holds reports whether server id holds any shard of the volume.
func (l *ECLayout) Holds(id string) bool { return len(l.ShardsOn(id)) > 0 }

// Move applies a planned move to the layout (for planning the next one).
func (l *ECLayout) Move(shard uint32, dst *seaweed.Server) {
	src := l.On[shard]
	for lv, k := range l.keys.of(src) {
		l.count[lv][k]--
	}
	for lv, k := range l.keys.of(dst) {
		l.count[lv][k]++
	}
	l.On[shard] = dst
}

// ShardMove is one shard of an EC volume to move from Source to Target.
type ShardMove struct {
	VolumeID   uint32
	Collection string
	ShardID    uint32
	Source     *seaweed.Server
	Target     *seaweed.Server
	Before     ECSpread
	After      ECSpread
}

// SpreadMove is the move that improves the volume's spread most: the
// lowest spread after it, outer levels first, then the target holding the
// fewest shards of every volume (load: EC shards by server id), then the
// source holding the most, then by server id; the source's lowest shard.
// canTake says whether a server may take a shard (a free slot, not
// excluded). ok is false when no move improves the spread.
func (l *ECLayout) SpreadMove(canTake func(*seaweed.Server) bool, load map[string]int) (ShardMove, bool) {
	before := l.Spread()
	var best ShardMove
	found := false
	sources := l.holders()
	for _, src := range sources {
		for _, dst := range l.Candidates {
			if dst.ID == src.ID || !canTake(dst) {
				continue
			}
			after := l.After(src, dst)
			if !after.Improves(before) {
				continue
			}
			m := ShardMove{VolumeID: l.Volume.ID, Collection: l.Volume.Collection, ShardID: l.ShardsOn(src.ID)[0], Source: src, Target: dst, Before: before, After: after}
			if !found || betterMove(m, best, load) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// LoadMove is a move of one of the volume's shards from src to dst that
// keeps its spread (no level worse), for evening out the servers' shard
// counts; ok false if src holds none or every such move makes the spread
// worse.
func (l *ECLayout) LoadMove(src, dst *seaweed.Server) (ShardMove, bool) {
	if src.ID == dst.ID {
		return ShardMove{}, false
	}
	shards := l.ShardsOn(src.ID)
	if len(shards) == 0 || !slices.ContainsFunc(l.Candidates, func(s *seaweed.Server) bool { return s.ID == dst.ID }) {
		return ShardMove{}, false
	}
	before := l.Spread()
	after := l.After(src, dst)
	if !after.Keeps(before) {
		return ShardMove{}, false
	}
	return ShardMove{VolumeID: l.Volume.ID, Collection: l.Volume.Collection, ShardID: shards[0], Source: src, Target: dst, Before: before, After: after}, true
}

// holders are the servers holding shards, by id.
func (l *ECLayout) holders() []*seaweed.Server {
	var out []*seaweed.Server
	for _, s := range l.Candidates {
		if l.Holds(s.ID) {
			out = append(out, s)
		}
	}
	return out
}

// betterMove orders spread moves: lower spread after (outer levels
// first), then the less loaded target, the more loaded source, ids.
func betterMove(a, b ShardMove, load map[string]int) bool {
	for lv := range levels {
		if a.After[lv] != b.After[lv] {
			return a.After[lv] < b.After[lv]
		}
	}
	if la, lb := load[a.Target.ID], load[b.Target.ID]; la != lb {
		return la < lb
	}
	if la, lb := load[a.Source.ID], load[b.Source.ID]; la != lb {
		return la > lb
	}
	if a.Target.ID != b.Target.ID {
		return a.Target.ID < b.Target.ID
	}
	return a.Source.ID < b.Source.ID
}

// TaskShard is the shard an ec_balance task moves (its ShardParam).
func TaskShard(task *fsmpb.Task) (uint32, error) {
	for _, p := range task.GetParams() {
		if p.GetKey() == ShardParam {
			n, err := strconv.ParseUint(p.GetValue(), 10, 32)
			if err != nil || n >= TotalShards {
				return 0, Errorf("ec_balance task %d: parameter %s=%q is not a shard id (0..%d)", task.GetId(), ShardParam, p.GetValue(), TotalShards-1)
			}
			return uint32(n), nil
		}
	}
	return 0, Errorf("ec_balance task %d names no shard (parameter %s)", task.GetId(), ShardParam)
}

// PlanECShardMove checks an ec_balance task against the topology: the
// volume whole (every shard mounted exactly once), the task's shard on its
// source, the target a server with a disk of the volume's type and a free
// slot that does not hold the shard, and the move not making the
// volume's spread worse at any level (the layout may have changed since
// it was proposed). It returns the source and target, or a plan error:
// permanent when the move no longer makes sense (the leader proposes
// another one from a newer topology), a wait when the target has no room.
func PlanECShardMove(task *fsmpb.Task, topo *seaweed.Topology) (src, dst *seaweed.Server, shard uint32, err error) {
	shard, err = TaskShard(task)
	if err != nil {
		return nil, nil, 0, err
	}
	e, ok := topo.EcVolumes[task.VolumeId]
	if !ok {
		if _, regular := topo.Volumes[task.VolumeId]; regular {
			return nil, nil, 0, Errorf("volume %d is not erasure coded: no shard to move", task.VolumeId)
		}
		return nil, nil, 0, Errorf("EC volume %d not found in the master's topology", task.VolumeId)
	}
	if task.Collection != "" && task.Collection != e.Collection {
		return nil, nil, 0, Errorf("EC volume %d is in collection %q, not %q as the task names", task.VolumeId, e.Collection, task.Collection)
	}
	l, lerr := NewECLayout(topo, e)
	if lerr != nil {
		return nil, nil, 0, Errorf("%v", lerr)
	}
	src, okS := topo.FindServer(task.Source)
	dst, okD := topo.FindServer(task.Target)
	if !okS {
		return nil, nil, 0, Errorf("EC volume %d: source %s is not in the master's topology", task.VolumeId, task.Source)
	}
	if !okD {
		return nil, nil, 0, Errorf("EC volume %d: target %s is not in the master's topology", task.VolumeId, task.Target)
	}
	if src.ID == dst.ID {
		return nil, nil, 0, Errorf("EC volume %d: source and target are the same server %s", task.VolumeId, src.ID)
	}
	if l.On[shard].ID != src.ID {
		return nil, nil, 0, Errorf("EC volume %d: shard %d is on %s, not on the source %s", task.VolumeId, shard, l.On[shard].ID, src.ID)
	}
	if Disk(dst, e.DiskType) == nil {
		return nil, nil, 0, Errorf("EC volume %d: target %s has no %s disk, the volume's disk type", task.VolumeId, dst.ID, DiskTypeName(e.DiskType))
	}
	if !ShardTargetable(dst, e.DiskType, HoldsShards(e, dst.ID)) {
		return nil, nil, 0, Errorf("EC volume %d: target %s's only %s disk is its first data directory (disk 0), which a shard copy cannot name, and left to choose the server would put the shard on a disk of another type", task.VolumeId, dst.ID, DiskTypeName(e.DiskType))
	}
	if before, after := l.Spread(), l.After(src, dst); !after.Keeps(before) {
		return nil, nil, 0, Errorf("EC volume %d: moving shard %d from %s to %s would make its spread worse (%s, now %s): proposing another move from the current layout", task.VolumeId, shard, src.ID, dst.ID, after, before)
	}
	if FreeSlotsOf(dst, e.DiskType) <= 0 {
		return nil, nil, 0, Waitf("EC volume %d: target %s has no free slot on its %s disk for shard %d", task.VolumeId, dst.ID, DiskTypeName(e.DiskType), shard)
	}
	return src, dst, shard, nil
}
