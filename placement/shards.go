package placement

import (
	"fmt"
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Erasure coding layout used by SeaweedFS: 10 data + 4 parity shards.
const (
	DataShards   = 10
	ParityShards = 4
	TotalShards  = DataShards + ParityShards
	// MinECServers is the fewest volume servers an EC layout may use.
	MinECServers = 4
)

// FreeShardSlotsOf is the EC shards the server's disk of type t has room
// for, as SeaweedFS's ec.encode counts them: DataShards per free volume
// slot, less the shards it holds. The master's free volume count moves
// only every DataShards shards, so as a tie-break between servers it sent
// the odd shards of every encode to the same ones, and ec_balance then
// moved them back.
func FreeShardSlotsOf(s *seaweed.Server, t string) int64 {
	d := Disk(s, t)
	if d == nil {
		return 0
	}
	if d.MaxVolumes <= 0 {
		return d.FreeSlots * DataShards
	}
	return (d.MaxVolumes-d.VolumeCount)*DataShards - int64(d.EcShards)
}

// PlaceShards places the 14 shards of v on servers with a disk of its disk
// type, spread as SpreadShards spreads them: evenly over data centres, then
// over each data centre's racks, then over each rack's servers. The
// volume's first replica (which generates them) always takes part, even
// without a free slot (its original is deleted once the shards are made);
// every other server needs a free slot on that disk type. Shard ids go
// round-robin over the chosen servers, the generating replica first (it
// holds shard 0), then the rest by free shard slots (FreeShardSlotsOf,
// most first) and id. The capacity
// projection places an encoding in flight where this would place it now.
func PlaceShards(v *seaweed.Volume, topo *seaweed.Topology) ([]*fsmpb.ShardPlacement, error) {
	if len(v.Replicas) == 0 {
		return nil, Errorf("volume %d has no replica to encode", v.ID)
	}
	source := v.Replicas[0].Server
	typ := v.DiskType
	var servers []*seaweed.Server
	var cands []ShardCandidate
	for _, s := range topo.Servers {
		isSource := s.ID == source.ID
		free := FreeSlotsOf(s, typ)
		// Shards an earlier attempt left are torn down before the spread,
		// so a server holding some is a target like any other.
		if !isSource && (free <= 0 || !ShardTargetable(s, typ, false)) {
			continue
		}
		servers = append(servers, s)
		held := 0
		if d := Disk(s, typ); d != nil {
			held = d.EcShards
		}
		cands = append(cands, ShardCandidate{Loc: ServerLocation(s), Free: FreeShardSlotsOf(s, typ), Held: held, Source: isSource})
	}
	if len(cands) < MinECServers {
		return nil, Errorf("erasure coding volume %d needs at least %d volume servers with a free slot on a %s disk, its disk type; the topology has %d", v.ID, MinECServers, DiskTypeName(typ), len(cands))
	}
	counts, err := SpreadShards(cands, TotalShards)
	if err != nil {
		return nil, Errorf("volume %d: %v", v.ID, err)
	}
	// Round-robin over the chosen servers: source first, then the most
	// free slots, then by id, each taking shards until its count is used
	// (which shard ids a server gets does not matter to durability: any
	// ParityShards of them may be lost).
	order := make([]int, 0, len(cands))
	for i := range cands {
		if counts[i] > 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		ca, cb := cands[order[a]], cands[order[b]]
		if ca.Source != cb.Source {
			return ca.Source
		}
		if ca.Free != cb.Free {
			return ca.Free > cb.Free
		}
		return ca.Loc.Server < cb.Loc.Server
	})
	out := make([]*fsmpb.ShardPlacement, 0, TotalShards)
	left := append([]int(nil), counts...)
	for len(out) < TotalShards {
		for _, i := range order {
			if left[i] > 0 && len(out) < TotalShards {
				left[i]--
				out = append(out, &fsmpb.ShardPlacement{ShardId: uint32(len(out)), Server: servers[i].Addr.String()})
			}
		}
	}
	return out, nil
}

// ShardCandidate is a server that may take shards of a volume being
// encoded: where it is, its free slots on the volume's disk type, and
// whether it holds the replica that generates the shards.
type ShardCandidate struct {
	Loc  Location
	Free int64
	// Held is the EC shards the server holds on the volume's disk type:
	// between units that take as many shards of the volume, the one
	// holding fewer gets the odd shard, so encodes keep the servers'
	// shard counts even, the measure ec_balance evens (by free slots, the
	// odd shards went to the servers holding fewer regular volumes, and
	// ec_balance moved them on: 45% of the fault harness's tasks).
	Held   int
	Source bool
}

// SpreadShards decides how many of total shards each candidate takes, as
// SeaweedFS's ec.encode and ec.balance aim to spread them: evenly over the
// data centres (at most ceil(total/n) in each of n where the others have
// room), then each data centre's share evenly over its racks, then each
// rack's share evenly over its servers, never more than MaxShardsPerServer
// on one server nor, where the others have room, more than ParityShards
// on one machine (host) or in one rack (so losing one never loses the
// volume). Ties go to the unit holding the generating replica, then
// to the one holding fewer EC shards per server, then more free slots,
// then by name, so the answer depends on
// nothing but the candidates (not their order). It fails, saying why, with
// fewer than MinECServers candidates.
func SpreadShards(cands []ShardCandidate, total int) ([]int, error) {
	if len(cands) < MinECServers {
		return nil, fmt.Errorf("erasure coding needs at least %d volume servers with a free slot on the volume's disk type; %d given", MinECServers, len(cands))
	}
	all := make([]int, len(cands))
	for i := range all {
		all[i] = i
	}
	counts := make([]int, len(cands))
	// A machine (servers sharing a host) and a rack each take at most
	// ParityShards where the others have room, so losing one loses no
	// more than the volume survives: an even split over data centres
	// alone could pile a small data centre's share into its one rack (7 of
	// 14 with two data centres), and an even split over servers puts two
	// servers' shares on a machine running two volume servers. A cap is
	// raised only as far as the room below it forces.
	host := func(l Location) string {
		if l.Host == "" {
			return l.Server
		}
		return l.Host
	}
	hostCap := shardCap(groupBy(cands, all, func(l Location) string { return l.DC + "\x00" + l.Rack + "\x00" + host(l) }), serverRoom, total)
	hostRoom := func(idx []int) int { return min(serverRoom(idx), hostCap) }
	rackFree := func(idx []int) int {
		room := 0
		for _, h := range groupBy(cands, idx, host) {
			room += hostRoom(h)
		}
		return room
	}
	rackCap := shardCap(groupBy(cands, all, func(l Location) string { return l.DC + "\x00" + l.Rack }), rackFree, total)
	rackRoom := func(idx []int) int { return min(rackFree(idx), rackCap) }
	dcRoom := func(idx []int) int {
		room := 0
		for _, rack := range groupBy(cands, idx, func(l Location) string { return l.Rack }) {
			room += rackRoom(rack)
		}
		return room
	}
	// Each level splits a group's share over its sub-groups.
	dcs := groupBy(cands, all, func(l Location) string { return l.DC })
	dcShares := fill(cands, dcs, total, dcRoom)
	for d, dc := range dcs {
		racks := groupBy(cands, dc, func(l Location) string { return l.Rack })
		rackShares := fill(cands, racks, dcShares[d], rackRoom)
		for r, rack := range racks {
			hosts := groupBy(cands, rack, host)
			hostShares := fill(cands, hosts, rackShares[r], hostRoom)
			for h, hi := range hosts {
				servers := groupBy(cands, hi, func(l Location) string { return l.Server })
				for s, n := range fill(cands, servers, hostShares[h], serverRoom) {
					for _, i := range servers[s] {
						counts[i] += n // one candidate per server id
					}
				}
			}
		}
	}
	sum := 0
	for _, c := range counts {
		sum += c
	}
	if sum < total {
		return nil, fmt.Errorf("%d candidate servers take at most %d of the %d shards", len(cands), sum, total)
	}
	return counts, nil
}

// serverRoom is the most shards the candidates idx take by the
// per-server limit alone.
func serverRoom(idx []int) int { return len(idx) * MaxShardsPerServer }

// shardCap is the most shards one of groups (machines or racks) takes:
// ParityShards (losing it then leaves the volume readable) or, with too
// few groups for that, an even share; raised only while the groups' room
// (roomOf) cannot otherwise hold total.
func shardCap(groups [][]int, roomOf func(idx []int) int, total int) int {
	limit := max(ParityShards, (total+len(groups)-1)/len(groups))
	for ; limit < total; limit++ {
		room := 0
		for _, g := range groups {
			room += min(roomOf(g), limit)
		}
		if room >= total {
			break
		}
	}
	return limit
}

// groupBy splits the candidates idx by key, in key order.
func groupBy(cands []ShardCandidate, idx []int, key func(Location) string) [][]int {
	byKey := map[string][]int{}
	var keys []string
	for _, i := range idx {
		k := key(cands[i].Loc)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	sort.Strings(keys)
	out := make([][]int, len(keys))
	for j, k := range keys {
		out[j] = byKey[k]
	}
	return out
}

// fill splits n shards over groups one at a time, each to the group with
// the fewest so far that has room (roomOf the group's candidates);
// ties to the group with the generating replica, then the fewest EC
// shards held per candidate, then the most free slots, then the first
// (groups come in key order).
func fill(cands []ShardCandidate, groups [][]int, n int, roomOf func(idx []int) int) []int {
	room := make([]int, len(groups))
	free := make([]int64, len(groups))
	held := make([]int, len(groups))
	source := make([]bool, len(groups))
	for g, idx := range groups {
		room[g] = roomOf(idx)
		for _, i := range idx {
			free[g] += cands[i].Free
			held[g] += cands[i].Held
			source[g] = source[g] || cands[i].Source
		}
	}
	// fewerHeld: group a holds fewer shards per candidate than b
	// (a*len(b) < b*len(a), without division).
	fewerHeld := func(a, b int) bool { return held[a]*len(groups[b]) < held[b]*len(groups[a]) }
	got := make([]int, len(groups))
	for ; n > 0; n-- {
		best := -1
		for g := range groups {
			if got[g] >= room[g] {
				continue
			}
			if best < 0 || got[g] < got[best] ||
				got[g] == got[best] && (source[g] && !source[best] || source[g] == source[best] &&
					(fewerHeld(g, best) || !fewerHeld(best, g) && free[g] > free[best])) {
				best = g
			}
		}
		if best < 0 {
			break
		}
		got[best]++
	}
	return got
}

// MaxShardsPerServer is the most shards of one volume PlaceShards puts on
// one server (it uses at least MinECServers servers): losing any one
// server then loses at most as many shards as there are parity shards.
const MaxShardsPerServer = (TotalShards + MinECServers - 1) / MinECServers

// CheckSpread checks a layout of the 14 shards (shard count by server)
// against PlaceShards' spread rule: at least MinECServers servers, at most
// MaxShardsPerServer shards on any one. nil if a fresh plan could have
// placed it so.
func CheckSpread(perServer map[string]int) error {
	n, total := 0, 0
	for s, c := range perServer {
		if c <= 0 {
			continue
		}
		n, total = n+1, total+c
		if c > MaxShardsPerServer {
			return fmt.Errorf("%s holds %d of the %d shards, more than the %d a plan puts on one server", s, c, TotalShards, MaxShardsPerServer)
		}
	}
	if total != TotalShards {
		return fmt.Errorf("the layout holds %d of the %d shards", total, TotalShards)
	}
	if n < MinECServers {
		return fmt.Errorf("the shards are on %d servers, fewer than the %d a plan uses", n, MinECServers)
	}
	return nil
}
