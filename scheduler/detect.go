package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Proposal is work detection wants submitted.
type Proposal struct {
	Type       fsmpb.TaskType
	VolumeID   uint32
	Collection string
	Source     string // balance: server id to move from
	Target     string // balance: server id to move to
	Priority   int32
	Reason     string
	Params     []*fsmpb.Param // ec_balance: the shard (placement.ShardParam)
}

// Busy reports volumes that must not get new work: an active task or a
// capacity change the master has not reported yet.
type Busy func(volume uint32) bool

// ActiveMove is a balance task in flight, for projecting server loads: its
// volume (for its disk type) and servers. Done marks instead a balance
// that completed inside the detection cooldown: not projected (the
// topology shows it), but its volume is not moved again until the
// cooldown ends, so moves never oscillate.
type ActiveMove struct {
	VolumeID       uint32
	Source, Target string
	Done           bool
}

// Detect returns the work the topology calls for, in a deterministic order
// (vacuum, then erasure coding, then balance; by volume id within a type).
// A volume gets at most one proposal; a cloud-tiered one gets none.
func Detect(topo *seaweed.Topology, busy Busy, moves []ActiveMove, th Thresholds, now time.Time) []Proposal {
	var out []Proposal
	taken := map[uint32]bool{}
	// A cloud-tiered volume is never vacuumed, encoded or moved: no
	// detector sees it.
	callerBusy := busy
	busy = func(id uint32) bool {
		v, ok := topo.Volumes[id]
		return ok && v.CloudTiered() || callerBusy(id)
	}
	ids := make([]uint32, 0, len(topo.Volumes))
	for id := range topo.Volumes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	for _, id := range ids {
		v := topo.Volumes[id]
		if busy(id) || v.Size == 0 {
			continue
		}
		if g := v.GarbageRatio(); g >= th.VacuumGarbage {
			out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeID: id, Collection: v.Collection,
				Priority: 10, Reason: fmt.Sprintf("garbage %.0f%% >= %.0f%%", g*100, th.VacuumGarbage*100)})
			taken[id] = true
		}
	}
	// Servers with a free slot, by disk type (a DiskTypeKey): PlaceShards
	// puts a volume's shards only on its own disk type.
	// A server counts once per type, as FreeSlotsOf reads it (a master
	// could list one type under two spellings).
	freeServers := map[string]int{}
	for _, srv := range topo.Servers {
		seen := map[string]bool{}
		for name := range srv.Disks {
			k := placement.DiskTypeKey(name)
			if !seen[k] && placement.FreeSlotsOf(srv, k) > 0 && placement.ShardTargetable(srv, k, false) {
				freeServers[k]++
			}
			seen[k] = true
		}
	}
	if len(topo.Servers) >= placement.MinECServers && topo.VolumeSizeLimit > 0 {
		for _, id := range ids {
			v := topo.Volumes[id]
			if taken[id] || busy(id) {
				continue
			}
			if _, already := topo.EcVolumes[id]; already {
				continue
			}
			full := float64(v.Size) / float64(topo.VolumeSizeLimit)
			quiet := now.Sub(time.Unix(v.ModifiedAt, 0))
			if full >= th.ECFullness && quiet >= th.ECQuietFor && v.Size >= th.ECMinSizeMB<<20 {
				// Only what PlanSpec can place: PlaceShards uses every server
				// with a free slot on the volume's disk type plus the
				// generating replica.
				if len(v.Replicas) == 0 {
					continue
				}
				// A volume with fewer replicas listed than its placement
				// asks for needs a repair (or its server back), not an
				// encode: PlanSpec would wait for the missing copy
				// (replicasListed) for as long as it is missing.
				if len(v.Replicas) < placement.Copies(v.ReplicaPlacement) {
					continue
				}
				usable := freeServers[placement.DiskTypeKey(v.DiskType)]
				if placement.FreeSlotsOf(v.Replicas[0].Server, v.DiskType) <= 0 {
					usable++
				}
				if usable < placement.MinECServers {
					continue
				}
				out = append(out, Proposal{Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeID: id, Collection: v.Collection,
					Priority: 5, Reason: fmt.Sprintf("%.0f%% full, quiet for %s", full*100, quiet.Truncate(time.Second))})
				taken[id] = true
			}
		}
	}
	return append(out, detectBalance(topo, busy, taken, moves, th)...)
}

// slotUsage is a server's share of used volume slots across its disks.
type slotUsage struct {
	server *seaweed.Server
	used   int64
	max    int64
	free   int64 // free slots the master reports, less moves in flight to it
}

func (s slotUsage) ratio() float64 {
	if s.max == 0 {
		return 1
	}
	return float64(s.used) / float64(s.max)
}

// detectBalance proposes, for each disk type (hdd, ssd, custom types) on
// its own, up to Thresholds.BalanceMovesPerRound moves (each of another
// volume, never one moved inside the cooldown), one at a time from a full
// to an empty server while (max-min)/avg of
// that disk type's slot usage reaches the threshold, counting moves in
// flight as already done. The move keeps the volume on its disk type and
// its replica placement (placement.MoveKeepsPlacement, as PlanMove checks
// it): when the fullest server's volumes may not go to the emptiest, the
// next emptiest, then the next fullest, are tried.
func detectBalance(topo *seaweed.Topology, busy Busy, taken map[uint32]bool, moves []ActiveMove, th Thresholds) []Proposal {
	types := map[string]bool{}
	for _, s := range topo.Servers {
		for name := range s.Disks {
			types[placement.DiskTypeKey(name)] = true
		}
	}
	keys := make([]string, 0, len(types))
	for k := range types {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// A volume moved inside the cooldown stays where it went.
	var inflight []ActiveMove
	for _, m := range moves {
		if m.Done {
			taken[m.VolumeID] = true
		} else {
			inflight = append(inflight, m)
		}
	}
	var out []Proposal
	for _, typ := range keys {
		// Each move proposed counts as in flight for the next, so the
		// usage math (threshold, no swap of which server is fuller, free
		// slots) holds for the moves together.
		proj := inflight[:len(inflight):len(inflight)]
		held := heldIndex(topo, typ, busy)
		for n := 0; n < th.movesPerRound(); n++ {
			p, ok := detectBalanceOf(topo, typ, held, taken, proj, th)
			if !ok {
				break
			}
			out = append(out, p)
			taken[p.VolumeID] = true
			proj = append(proj, ActiveMove{VolumeID: p.VolumeID, Source: p.Source, Target: p.Target})
		}
	}
	return out
}

// heldIndex is, built on first use, the volumes of disk type typ each
// server holds that busy does not report: the index a detection round's
// moves share.
func heldIndex(topo *seaweed.Topology, typ string, busy Busy) func(*seaweed.Server) []*seaweed.Volume {
	var held map[*seaweed.Server][]*seaweed.Volume
	return func(s *seaweed.Server) []*seaweed.Volume {
		if held == nil {
			held = make(map[*seaweed.Server][]*seaweed.Volume, len(topo.Servers))
			for _, v := range topo.Volumes {
				if v.DiskType != typ && placement.DiskTypeKey(v.DiskType) != typ || busy(v.ID) {
					continue
				}
				for _, r := range v.Replicas {
					held[r.Server] = append(held[r.Server], v)
				}
			}
		}
		return held[s]
	}
}

// maxBalancePairs bounds the (source, target) pairs one disk type's
// detection tries when placement refuses the best ones.
const maxBalancePairs = 64

// detectBalanceOf is detectBalance for the disk type typ (a DiskTypeKey).
// held lists a server's volumes of that type that are not busy (taken is
// checked here, as it grows during the round).
func detectBalanceOf(topo *seaweed.Topology, typ string, held func(*seaweed.Server) []*seaweed.Volume, taken map[uint32]bool, moves []ActiveMove, th Thresholds) (Proposal, bool) {
	var usage []slotUsage
	index := map[string]int{}
	for _, s := range topo.Servers {
		d := placement.Disk(s, typ)
		if d == nil || d.MaxVolumes == 0 {
			continue
		}
		index[s.ID] = len(usage)
		usage = append(usage, slotUsage{server: s, used: d.VolumeCount, max: d.MaxVolumes, free: d.FreeSlots})
	}
	if len(usage) < 2 {
		return Proposal{}, false
	}
	// A move names its servers in any form PlanSpec accepts (id, HTTP,
	// host:port.grpcPort or gRPC address).
	resolve := func(name string) (int, bool) {
		if name == "" {
			return 0, false
		}
		s, ok := topo.FindServer(name)
		if !ok {
			return 0, false
		}
		i, ok := index[s.ID]
		return i, ok
	}
	for _, m := range moves {
		// A move of a volume the topology no longer lists counts on the
		// hard-drive type, the default.
		mt := ""
		if v, ok := topo.Volumes[m.VolumeID]; ok {
			mt = placement.DiskTypeKey(v.DiskType)
		}
		if mt != typ {
			continue
		}
		if i, ok := resolve(m.Source); ok {
			usage[i].used--
		}
		if i, ok := resolve(m.Target); ok {
			usage[i].used++
			usage[i].free--
		}
	}
	// Fullest first, then by id: a total order (ids are unique), so an
	// unstable sort gives the same order (SliceStable's swaps through
	// reflection were a quarter of a 1,000-server round).
	slices.SortFunc(usage, func(a, b slotUsage) int {
		if ra, rb := a.ratio(), b.ratio(); ra != rb {
			return cmp.Compare(rb, ra)
		}
		return strings.Compare(a.server.ID, b.server.ID)
	})
	var sum float64
	for _, u := range usage {
		sum += u.ratio()
	}
	avg := sum / float64(len(usage))
	if avg == 0 || (usage[0].ratio()-usage[len(usage)-1].ratio())/avg < th.BalanceImbalance {
		return Proposal{}, false
	}
	// The volumes of this disk type a server holds, movable now. The index
	// is shared by the round's moves (built on first use, by
	// detectBalance): one pass over the volumes per round, not per move.
	heldBy := func(s *seaweed.Server) []*seaweed.Volume {
		var out []*seaweed.Volume
		for _, v := range held(s) {
			if !taken[v.ID] {
				out = append(out, v)
			}
		}
		return out
	}
	pairs := 0
	for i := 0; i < len(usage); i++ {
		hi := usage[i]
		for j := len(usage) - 1; j > i; j-- {
			lo := usage[j]
			if (hi.ratio()-lo.ratio())/avg < th.BalanceImbalance {
				break // targets further up are fuller still
			}
			// Moving one volume must not just swap which server is fuller.
			if float64(hi.used-1)/float64(hi.max) < float64(lo.used+1)/float64(lo.max) {
				continue
			}
			// PlanSpec refuses a target without a free slot (EC shards use slots too).
			if lo.used+1 > lo.max || lo.free < 1 {
				continue
			}
			if pairs++; pairs > maxBalancePairs {
				return Proposal{}, false
			}
			if best := pickMove(topo, heldBy(hi.server), hi.server, lo.server); best != nil {
				return Proposal{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeID: best.ID, Collection: best.Collection,
					Source: hi.server.ID, Target: lo.server.ID, Priority: 1,
					Reason: fmt.Sprintf("%s slot usage %s %.0f%% vs %s %.0f%% (avg %.0f%%)", placement.DiskTypeName(typ), hi.server.ID, hi.ratio()*100, lo.server.ID, lo.ratio()*100, avg*100)}, true
			}
		}
	}
	return Proposal{}, false
}

// pickMove is the volume among vols (held by from) to move to to: one to
// lacks, whose move keeps its replica placement; the one whose move
// lowers its placement's violations most (a misplaced volume gets fixed
// first), then the smallest, then the lowest id.
func pickMove(topo *seaweed.Topology, vols []*seaweed.Volume, from, to *seaweed.Server) *seaweed.Volume {
	var best *seaweed.Volume
	bestGain := 0
	target := placement.ServerLocation(to)
	for _, v := range vols {
		if placement.HasReplica(v, to.ID) || placement.MoveBlocked(topo, v) != nil {
			continue
		}
		gain := 0
		if placement.Copies(v.ReplicaPlacement) > 1 || len(v.Replicas) > 1 {
			locs := placement.VolumeLocations(v)
			if !placement.MoveKeepsPlacement(v.ReplicaPlacement, locs, from.ID, target) {
				continue
			}
			after := make([]placement.Location, 0, len(locs))
			moved := false
			for _, l := range locs {
				if l.Server == from.ID && !moved {
					moved = true
					continue
				}
				after = append(after, l)
			}
			gain = placement.Violations(v.ReplicaPlacement, locs) - placement.Violations(v.ReplicaPlacement, append(after, target))
		}
		if best == nil || gain > bestGain || gain == bestGain && (v.Size < best.Size || v.Size == best.Size && v.ID < best.ID) {
			best, bestGain = v, gain
		}
	}
	return best
}
