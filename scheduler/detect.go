package scheduler

import (
	"fmt"
	"sort"
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
}

// Busy reports volumes that must not get new work: an active task or a
// capacity change the master has not reported yet.
type Busy func(volume uint32) bool

// ActiveMove is a balance task in flight, for projecting server loads.
type ActiveMove struct{ Source, Target string }

// Detect returns the work the topology calls for, in a deterministic order
// (vacuum, then erasure coding, then balance; by volume id within a type).
// A volume gets at most one proposal.
func Detect(topo *seaweed.Topology, busy Busy, moves []ActiveMove, th Thresholds, now time.Time) []Proposal {
	var out []Proposal
	taken := map[uint32]bool{}
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
	freeServers := 0
	for _, srv := range topo.Servers {
		if placement.FreeSlots(srv) > 0 {
			freeServers++
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
				// with a free slot plus the generating replica.
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
				usable := freeServers
				if placement.FreeSlots(v.Replicas[0].Server) <= 0 {
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
	if p, ok := detectBalance(topo, busy, taken, moves, th); ok {
		out = append(out, p)
	}
	return out
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

// detectBalance proposes one move from the fullest to the emptiest server
// when (max-min)/avg of slot usage reaches the threshold, counting moves in
// flight as already done.
func detectBalance(topo *seaweed.Topology, busy Busy, taken map[uint32]bool, moves []ActiveMove, th Thresholds) (Proposal, bool) {
	var usage []slotUsage
	index := map[string]int{}
	for _, s := range topo.Servers {
		u := slotUsage{server: s}
		for _, d := range s.Disks {
			u.used += d.VolumeCount
			u.max += d.MaxVolumes
			u.free += d.FreeSlots
		}
		if u.max == 0 {
			continue
		}
		index[s.ID] = len(usage)
		usage = append(usage, u)
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
		if i, ok := resolve(m.Source); ok {
			usage[i].used--
		}
		if i, ok := resolve(m.Target); ok {
			usage[i].used++
			usage[i].free--
		}
	}
	sort.SliceStable(usage, func(i, j int) bool {
		if usage[i].ratio() != usage[j].ratio() {
			return usage[i].ratio() > usage[j].ratio()
		}
		return usage[i].server.ID < usage[j].server.ID
	})
	var sum float64
	for _, u := range usage {
		sum += u.ratio()
	}
	avg := sum / float64(len(usage))
	hi, lo := usage[0], usage[len(usage)-1]
	if avg == 0 || (hi.ratio()-lo.ratio())/avg < th.BalanceImbalance {
		return Proposal{}, false
	}
	// Moving one volume must not just swap which server is fuller.
	if float64(hi.used-1)/float64(hi.max) < float64(lo.used+1)/float64(lo.max) {
		return Proposal{}, false
	}
	// PlanSpec refuses a target without a free slot (EC shards use slots too).
	if lo.used+1 > lo.max || lo.free < 1 {
		return Proposal{}, false
	}
	// The smallest movable volume on the fullest server that the emptiest lacks.
	var best *seaweed.Volume
	for _, v := range topo.Volumes {
		if taken[v.ID] || busy(v.ID) || !placement.HasReplica(v, hi.server.ID) || placement.HasReplica(v, lo.server.ID) {
			continue
		}
		if best == nil || v.Size < best.Size || (v.Size == best.Size && v.ID < best.ID) {
			best = v
		}
	}
	if best == nil {
		return Proposal{}, false
	}
	return Proposal{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeID: best.ID, Collection: best.Collection,
		Source: hi.server.ID, Target: lo.server.ID, Priority: 1,
		Reason: fmt.Sprintf("slot usage %s %.0f%% vs %s %.0f%% (avg %.0f%%)", hi.server.ID, hi.ratio()*100, lo.server.ID, lo.ratio()*100, avg*100)}, true
}
