package scheduler

import (
	"slices"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// What the policy puts out of reach (fsmpb.Policy collection lists and
// exclusions), and the thresholds it sets:
//   - routine work (vacuum, erasure coding, balance) is detected on a view
//     of the cluster without the excluded servers and without the volumes
//     that have a replica or shard on one, or whose collection is not
//     allowed (DetectionTopology): no routine work touches an excluded
//     server, and balance never moves to one.
//   - repairs are detected on the whole cluster, whatever the lists say (a
//     lost copy is restored anyway), but never target an excluded server
//     (ExcludedLoad keeps a replicate's target choice off them, and
//     Excluded refuses any plan that would write to one).

// CollectionAllowed reports whether policy p lets routine work touch
// volumes of collection c.
func CollectionAllowed(p *fsmpb.Policy, c string) bool {
	if slices.Contains(p.GetExcludeCollections(), c) {
		return false
	}
	return len(p.GetIncludeCollections()) == 0 || slices.Contains(p.GetIncludeCollections(), c)
}

// ServerExcluded reports whether policy p excludes server s (by its data
// centre, its rack or itself).
func ServerExcluded(p *fsmpb.Policy, s *seaweed.Server) bool {
	return slices.Contains(p.GetExcludeDataCenters(), s.DataCenter) ||
		slices.Contains(p.GetExcludeRacks(), s.DataCenter+"/"+s.Rack) ||
		slices.Contains(p.GetExcludeServers(), s.ID)
}

func hasExclusions(p *fsmpb.Policy) bool {
	return len(p.GetExcludeDataCenters())+len(p.GetExcludeRacks())+len(p.GetExcludeServers()) > 0
}

// DetectionTopology is the view routine detection runs on under policy p:
// topo itself when p excludes nothing, else a copy without the excluded
// servers and the volumes that have a replica or shard on one or whose
// collection p does not allow (the servers' capacity still counts them).
func DetectionTopology(topo *seaweed.Topology, p *fsmpb.Policy) *seaweed.Topology {
	if !hasExclusions(p) && len(p.GetIncludeCollections())+len(p.GetExcludeCollections()) == 0 {
		return topo
	}
	out := &seaweed.Topology{VolumeSizeLimit: topo.VolumeSizeLimit, Volumes: map[uint32]*seaweed.Volume{}, EcVolumes: map[uint32]*seaweed.EcVolume{}}
	excluded := map[string]bool{}
	for _, s := range topo.Servers {
		if ServerExcluded(p, s) {
			excluded[s.ID] = true
		} else {
			out.Servers = append(out.Servers, s)
		}
	}
vols:
	for id, v := range topo.Volumes {
		if !CollectionAllowed(p, v.Collection) {
			continue
		}
		for _, r := range v.Replicas {
			if excluded[r.Server.ID] {
				continue vols
			}
		}
		out.Volumes[id] = v
	}
ec:
	for id, e := range topo.EcVolumes {
		if !CollectionAllowed(p, e.Collection) {
			continue
		}
		for _, servers := range e.Shards {
			for _, s := range servers {
				if excluded[s] {
					continue ec
				}
			}
		}
		out.EcVolumes[id] = e
	}
	return out
}

// PlanningTopology is the view routine work is planned on under policy
// p: topo itself when p excludes no server, else a copy without the
// excluded servers (volumes and shards as in topo), so that no balance
// move or erasure-coding shard targets one. Only for tasks whose volume
// touches no excluded server (Excluded, before planning).
func PlanningTopology(topo *seaweed.Topology, p *fsmpb.Policy) *seaweed.Topology {
	if !hasExclusions(p) {
		return topo
	}
	out := *topo
	out.Servers = nil
	for _, s := range topo.Servers {
		if !ServerExcluded(p, s) {
			out.Servers = append(out.Servers, s)
		}
	}
	return &out
}

// ExcludedLoad marks the servers policy p excludes as full in load (a
// target choice's load by server id): no replicate targets one.
func ExcludedLoad(load map[string]int, topo *seaweed.Topology, p *fsmpb.Policy) {
	if !hasExclusions(p) {
		return
	}
	for _, s := range topo.Servers {
		if ServerExcluded(p, s) {
			load[s.ID] += 1 << 30
		}
	}
}

// TouchedServers is the ids of the servers an attempt of task t touches:
// those holding its volume's replicas or shards, and those its plan
// writes to (servers, in any form FindServer accepts), each once, sorted.
func TouchedServers(topo *seaweed.Topology, volume uint32, servers []string) []string {
	var out []string
	if v, ok := topo.Volumes[volume]; ok {
		for _, r := range v.Replicas {
			out = append(out, r.Server.ID)
		}
	}
	if e, ok := topo.EcVolumes[volume]; ok {
		for _, ss := range e.Shards {
			out = append(out, ss...)
		}
	}
	for _, a := range servers {
		if s, ok := topo.FindServer(a); ok {
			out = append(out, s.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Excluded returns the first server policy p excludes that an attempt
// may not touch ("" if none): for routine work any server it touches, for
// a repair any it writes to (targets).
func Excluded(p *fsmpb.Policy, topo *seaweed.Topology, t fsmpb.TaskType, touched, targets []string) string {
	if !hasExclusions(p) {
		return ""
	}
	check := touched
	if fsm.RepairType(t) {
		check = targets
	}
	for _, a := range check {
		if s, ok := topo.FindServer(a); ok && ServerExcluded(p, s) {
			return s.ID
		}
	}
	return ""
}

// PolicyThresholds are the detection thresholds under policy p: its
// values, and flags' for those it leaves unset.
func PolicyThresholds(p *fsmpb.Policy, flags Thresholds) Thresholds {
	th := p.GetThresholds()
	out := flags
	if th == nil {
		return out
	}
	if th.VacuumGarbageRatio != nil {
		out.VacuumGarbage = *th.VacuumGarbageRatio
	}
	if th.EcFullnessRatio != nil {
		out.ECFullness = *th.EcFullnessRatio
	}
	if th.EcQuietSeconds != nil {
		out.ECQuietFor = time.Duration(*th.EcQuietSeconds) * time.Second
	}
	if th.EcMinSizeMb != nil {
		out.ECMinSizeMB = *th.EcMinSizeMb
	}
	if th.BalanceImbalance != nil {
		out.BalanceImbalance = *th.BalanceImbalance
	}
	if th.BalanceMovesPerRound != nil {
		out.BalanceMovesPerRound = int(*th.BalanceMovesPerRound)
	}
	if th.RepairAfterSeconds != nil {
		out.RepairAfter = time.Duration(*th.RepairAfterSeconds) * time.Second
	}
	if th.DeleteEmptyQuietSeconds != nil {
		out.DeleteEmptyQuiet = time.Duration(*th.DeleteEmptyQuietSeconds) * time.Second
	}
	return out
}

// nonEmpty returns the non-empty strings of ss.
func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
