package sim

import (
	"sort"
	"sync"
)

// The content model behind Durability.
//
// A replica's content is the set of client writes (Cluster.Write and
// DeleteData records, identified by their append timestamp) applied to it
// on top of what it was created with. Compaction does not change it (vacuum
// must not change live content); VolumeCopy copies it and
// VolumeTailReceiver adds the source's later records, as the real copy and
// tail do. Its digest is order-independent, so replicas that received the
// same writes in a different order (a tail) agree.
//
// The cluster keeps a ledger per volume: its promised replica count and the
// writes that were acknowledged, i.e. that reached every replica (a
// replicated write in SeaweedFS goes to every replica or fails). The
// ledger is the truth the replicas and the EC shards are checked against.
//
// An EC generation is what one VolumeEcShardsGenerate produced: its encode
// id (EncodeTsNs) and the content of the replica it encoded, as of the
// start of the encode. Every shard file carries the generation it belongs
// to, through copies and restarts.

// content is a digest of a set of writes.
type content struct {
	sum    uint64
	writes int
}

// writeHash spreads one write's id over 64 bits (splitmix64).
func writeHash(ts int64) uint64 {
	z := uint64(ts) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func contentOfSet(set map[int64]struct{}) content {
	c := content{writes: len(set)}
	for ts := range set {
		c.sum += writeHash(ts)
	}
	return c
}

// diffSets counts the writes of want missing from have, and those of have
// not in want.
func diffSets(want, have map[int64]struct{}) (missing, extra int) {
	for ts := range want {
		if _, ok := have[ts]; !ok {
			missing++
		}
	}
	for ts := range have {
		if _, ok := want[ts]; !ok {
			extra++
		}
	}
	return missing, extra
}

func cloneSet(set map[int64]struct{}) map[int64]struct{} {
	out := make(map[int64]struct{}, len(set))
	for k := range set {
		out[k] = struct{}{}
	}
	return out
}

// ecGen is the generation of one shard file.
type ecGen struct {
	id      int64 // the encode's EncodeTsNs; 0: no generation recorded
	content content
	writes  map[int64]struct{} // the encoded writes (shared, never modified)
	// partial: a truncated file (a copy cut short by a crash); it holds no
	// shard of any generation.
	partial bool
}

// encodeSnapshot captures what an encode of r encodes (s.mu held).
func encodeSnapshot(r *replica) ecGen {
	set := cloneSet(r.applied)
	return ecGen{content: contentOfSet(set), writes: set}
}

// setGeneration stamps every shard file of e with the generation g under
// encode id id.
func (e *ecVol) setGeneration(g ecGen, id int64) {
	g.id = id
	for sh := range e.gens {
		e.gens[sh] = g
	}
}

// copyGenerations gives the shards in want the generations they have in
// src (a shard copy).
func (e *ecVol) copyGenerations(src *ecVol, want uint32) {
	for _, sh := range shardList(want) {
		if sh < TotalShards {
			e.gens[sh] = src.gens[sh]
		}
	}
}

// volLedger is the truth about one volume.
type volLedger struct {
	replicas int  // promised copies of the regular volume
	held     bool // it held data at creation or got a write since
	acked    map[int64]struct{}
	ackedAt  int64 // last acknowledged write (unix ns)
	// dropped: DropVolume retired it on purpose; it is no longer checked.
	dropped bool
}

type contentLedger struct {
	// mu is held across a client write (check, apply to every replica,
	// acknowledge) and across a durability snapshot, so a snapshot never
	// sees a write half-applied.
	mu   sync.Mutex
	vols map[uint32]*volLedger
}

// born records a new volume (mu not held).
func (l *contentLedger) born(vid uint32, replicas int, held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bornLocked(vid, replicas, held)
}

func (l *contentLedger) bornLocked(vid uint32, replicas int, held bool) *volLedger {
	if l.vols == nil {
		l.vols = map[uint32]*volLedger{}
	}
	v := l.vols[vid]
	if v == nil {
		v = &volLedger{acked: map[int64]struct{}{}}
		l.vols[vid] = v
	}
	v.replicas = max(v.replicas, replicas)
	v.held = v.held || held
	return v
}

// ackLocked records an acknowledged write (mu held).
func (l *contentLedger) ackLocked(vid uint32, ts int64) {
	v := l.bornLocked(vid, 0, true)
	v.acked[ts] = struct{}{}
	v.ackedAt = ts
}

// ledgerGeneration is the generation of an EC volume created directly
// (AddEcVolume): it encodes whatever the ledger holds.
func (l *contentLedger) ledgerGeneration(vid uint32, held bool) ecGen {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.bornLocked(vid, 0, held)
	set := cloneSet(v.acked)
	return ecGen{content: contentOfSet(set), writes: set}
}

// sortedVids lists the ledger's volume ids (mu held).
func (l *contentLedger) sortedVidsLocked() []uint32 {
	out := make([]uint32, 0, len(l.vols))
	for vid := range l.vols {
		out = append(out, vid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// KnownVolumes is how many volumes the durability check knows (every volume
// ever created, deleted ones included).
func (c *Cluster) KnownVolumes() int {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	return len(c.content.vols)
}
