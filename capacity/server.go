package capacity

import (
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// FindServer matches a volume server by id, HTTP address or SeaweedFS
// address form.
func FindServer(topo *seaweed.Topology, name string) (*seaweed.Server, bool) {
	if topo == nil {
		return nil, false
	}
	return topo.FindServer(name)
}

// diskProj accumulates one disk's figures.
type diskProj struct {
	max                    int64
	usedSlots, freeSlots   int64
	masterBytes, projBytes uint64
	masterEC, projEC       int64
	masterVol, projVol     int64
	projECBytes            uint64
}

type serverProj struct {
	s     *seaweed.Server
	disks map[string]*diskProj
}

// disk picks where a volume of disk type typ lands on a server: that type,
// else the default type, else the first type.
func (sp *serverProj) disk(typ string) *diskProj {
	if d, ok := sp.disks[typ]; ok {
		return d
	}
	if d, ok := sp.disks[""]; ok {
		return d
	}
	keys := make([]string, 0, len(sp.disks))
	for k := range sp.disks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil
	}
	return sp.disks[keys[0]]
}

func ecSlots(shards int64) int64 { return (shards + seaweed.EcDataShards - 1) / seaweed.EcDataShards }

// ProjectServers projects the given servers (each resolved with FindServer;
// all must exist). active are the active tasks and changes the unretired
// capacity changes of the whole state.
//
// The master's figures are its slot counts and the bytes of the volumes it
// lists on the server. Projected: a vacuum (in flight or unreported) shrinks
// every replica by the volume's delta; erasure coding removes the volume's
// replicas and adds shards of size/10 on their targets (for a task in
// flight, the targets the scheduler would plan now); a balance moves the
// volume from its source to its target. Ten EC shards take one slot.
func ProjectServers(topo *seaweed.Topology, servers []*seaweed.Server, active []*pb.Task, changes []*pb.CapacityChange) []*pb.ServerCapacity {
	return ProjectServersIndexed(topo, IndexServers(topo), servers, active, changes)
}

// projectServers does the work of ProjectServers; masterUsage adds the
// master's bytes and volume counts of the replicas on the wanted servers.
func projectServers(topo *seaweed.Topology, masterUsage func(byID map[string]*serverProj), servers []*seaweed.Server, active []*pb.Task, changes []*pb.CapacityChange) []*pb.ServerCapacity {
	byID := map[string]*serverProj{}
	var order []*serverProj
	for _, s := range servers {
		if _, dup := byID[s.ID]; dup {
			continue
		}
		sp := &serverProj{s: s, disks: map[string]*diskProj{}}
		for typ, d := range s.Disks {
			dp := &diskProj{max: d.MaxVolumes, masterEC: int64(d.EcShards), usedSlots: d.MaxVolumes - d.FreeSlots, freeSlots: d.FreeSlots}
			sp.disks[typ] = dp
		}
		byID[s.ID] = sp
		order = append(order, sp)
	}
	// The master's bytes: every replica on a wanted server.
	masterUsage(byID)
	for _, sp := range order {
		for _, d := range sp.disks {
			d.projBytes, d.projEC, d.projVol = d.masterBytes, d.masterEC, d.masterVol
		}
	}
	lookup := func(name string) *serverProj {
		if s, ok := topo.FindServer(name); ok {
			return byID[s.ID]
		}
		return nil
	}
	holds := func(v *seaweed.Volume, s *seaweed.Server) *seaweed.Replica {
		for i := range v.Replicas {
			if v.Replicas[i].Server.ID == s.ID {
				return &v.Replicas[i]
			}
		}
		return nil
	}
	addBytes := func(d *diskProj, delta int64) {
		d.projBytes = uint64(max(int64(d.projBytes)+delta, 0))
	}
	removeReplica := func(v *seaweed.Volume, r *seaweed.Replica) {
		if sp := byID[r.Server.ID]; sp != nil {
			if d := sp.disk(r.DiskType); d != nil {
				addBytes(d, -int64(r.Size))
				d.projVol--
			}
		}
	}
	addReplica := func(v *seaweed.Volume, name string, size uint64) {
		if sp := lookup(name); sp != nil {
			if d := sp.disk(v.DiskType); d != nil {
				addBytes(d, int64(size))
				d.projVol++
			}
		}
	}
	addShards := func(v *seaweed.Volume, placements []*pb.ShardPlacement, size uint64) {
		e := topo.EcVolumes[v.ID]
		for _, p := range placements {
			s, ok := topo.FindServer(p.Server)
			if !ok {
				continue
			}
			if e != nil && listHas(e.Shards[p.ShardId], s.ID) {
				continue // already reported
			}
			if sp := byID[s.ID]; sp != nil {
				if d := sp.disk(v.DiskType); d != nil {
					d.projEC++
					d.projECBytes += size / seaweed.EcDataShards
				}
			}
		}
	}
	// Volume-level deltas, for vacuum's effect on each replica.
	vacuumDelta := func(v *seaweed.Volume, active *pb.Task, cs []*pb.CapacityChange) {
		vc := ProjectVolume(topo, v, active, cs)
		var delta int64
		for _, a := range vc.Adjustments {
			if a.Type == pb.TaskType_TASK_TYPE_VACUUM {
				delta += a.DeltaBytes
			}
		}
		if delta == 0 {
			return
		}
		for i := range v.Replicas {
			r := &v.Replicas[i]
			if sp := byID[r.Server.ID]; sp != nil {
				if d := sp.disk(r.DiskType); d != nil {
					addBytes(d, delta)
				}
			}
		}
	}
	changesByVol := map[uint32][]*pb.CapacityChange{}
	for _, c := range changes {
		if !scheduler.Reflected(c, topo) {
			changesByVol[c.VolumeId] = append(changesByVol[c.VolumeId], c)
		}
	}
	activeByVol := map[uint32]*pb.Task{}
	for _, t := range active {
		activeByVol[t.VolumeId] = t
	}
	vols := map[uint32]bool{}
	for id := range changesByVol {
		vols[id] = true
	}
	for id := range activeByVol {
		vols[id] = true
	}
	ids := make([]uint32, 0, len(vols))
	for id := range vols {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		v, ok := topo.Volumes[id]
		if !ok {
			// Gone from the master (or already erasure coded): only shards
			// of an unreported encoding can still arrive.
			for _, c := range changesByVol[id] {
				if c.Type == pb.TaskType_TASK_TYPE_ERASURE_CODING {
					addShards(&seaweed.Volume{ID: id}, c.Shards, c.OldSize)
				}
			}
			continue
		}
		t := activeByVol[id]
		vacuumDelta(v, t, changesByVol[id])
		removed := false
		for _, c := range changesByVol[id] {
			switch c.Type {
			case pb.TaskType_TASK_TYPE_ERASURE_CODING:
				if !removed {
					for i := range v.Replicas {
						removeReplica(v, &v.Replicas[i])
					}
					removed = true
				}
				addShards(v, c.Shards, c.OldSize)
			case pb.TaskType_TASK_TYPE_BALANCE:
				if removed {
					continue
				}
				if src, ok := topo.FindServer(c.Source); ok {
					if r := holds(v, src); r != nil {
						removeReplica(v, r)
					}
				}
				if dst, ok := topo.FindServer(c.Target); ok && holds(v, dst) == nil {
					addReplica(v, c.Target, v.Size)
				}
			}
		}
		if t == nil || removed {
			continue
		}
		switch t.Type {
		case pb.TaskType_TASK_TYPE_ERASURE_CODING:
			placements, err := scheduler.PlaceShards(v, topo)
			if err != nil {
				continue
			}
			for i := range v.Replicas {
				removeReplica(v, &v.Replicas[i])
			}
			addShards(v, placements, v.Size)
		case pb.TaskType_TASK_TYPE_BALANCE:
			src, dst, err := scheduler.PlanMove(t, v, topo)
			if err != nil {
				continue
			}
			if r := holds(v, src); r != nil {
				removeReplica(v, r)
			}
			if holds(v, dst) == nil {
				addReplica(v, dst.ID, v.Size)
			}
		}
	}
	out := make([]*pb.ServerCapacity, 0, len(order))
	for _, sp := range order {
		sc := &pb.ServerCapacity{Server: sp.s.ID, Address: sp.s.Addr.String()}
		types := make([]string, 0, len(sp.disks))
		for typ := range sp.disks {
			types = append(types, typ)
		}
		sort.Strings(types)
		for _, typ := range types {
			d := sp.disks[typ]
			m := &pb.CapacityFigures{UsedSlots: d.usedSlots, FreeSlots: d.freeSlots, VolumeBytes: d.masterBytes,
				Volumes: uint32(d.masterVol), EcShards: uint32(d.masterEC)}
			used := d.usedSlots + (d.projVol - d.masterVol) + ecSlots(d.projEC) - ecSlots(d.masterEC)
			p := &pb.CapacityFigures{UsedSlots: used, FreeSlots: d.max - used, VolumeBytes: d.projBytes,
				Volumes: uint32(max(d.projVol, 0)), EcShards: uint32(max(d.projEC, 0)), EcShardBytes: d.projECBytes}
			sc.Disks = append(sc.Disks, &pb.DiskCapacity{DiskType: typ, MaxSlots: d.max, Master: m, Projected: p})
		}
		out = append(out, sc)
	}
	return out
}

func listHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
