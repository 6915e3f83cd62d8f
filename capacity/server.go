package capacity

import (
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
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

// projectServers projects the given servers (each resolved with FindServer;
// all must exist) with the topology's index idx (IndexServers). active are
// the active tasks and changes the unretired capacity changes of the whole
// state.
//
// The master's figures are its slot counts and the bytes of the volumes it
// lists on the server. Projected: a vacuum (in flight or unreported) shrinks
// every replica by the volume's delta; erasure coding removes the volume's
// replicas and adds shards of size/10 on their targets (for a task in
// flight, those placement.PlaceShards would pick now); a balance moves the
// volume from its source to its target (for a task in flight, as
// placement.PlanMove would now). Ten EC shards take one slot.
func projectServers(topo *seaweed.Topology, idx *ServerIndex, servers []*seaweed.Server, active []*fsmpb.Task, changes []*fsmpb.CapacityChange) []*pb.ServerCapacity {
	p := newProjection(topo, servers)
	for id := range p.byID {
		for _, u := range idx.byServer[id] {
			p.addMaster(id, u.diskType, u.bytes, u.volumes)
		}
	}
	return p.project(active, changes)
}

// projection is one projection of servers under way: the wanted servers'
// disks, first with the master's figures, then with the changes and the
// tasks in flight applied volume by volume.
type projection struct {
	topo  *seaweed.Topology
	byID  map[string]*serverProj
	order []*serverProj // as asked, without duplicates
}

// newProjection starts a projection of servers with the master's slot and
// EC shard counts; the master's bytes and volumes come from addMaster.
//
// It returns the projection by value, for the caller's stack: one kept on
// the heap would take topo there, and with it the whole Query that Project
// was given, so a one-volume lookup's volume slice would escape too (an
// allocation more; TestProjectOneVolumeAllocs).
func newProjection(topo *seaweed.Topology, servers []*seaweed.Server) projection {
	p := projection{topo: topo, byID: map[string]*serverProj{}}
	for _, s := range servers {
		if _, dup := p.byID[s.ID]; dup {
			continue
		}
		sp := &serverProj{s: s, disks: map[string]*diskProj{}}
		for typ, d := range s.Disks {
			sp.disks[typ] = &diskProj{max: d.MaxVolumes, masterEC: int64(d.EcShards), usedSlots: d.MaxVolumes - d.FreeSlots, freeSlots: d.FreeSlots}
		}
		p.byID[s.ID] = sp
		p.order = append(p.order, sp)
	}
	return p
}

// addMaster counts volumes replicas of disk type diskType, of bytes in
// all, that the master lists on server (ignored unless wanted).
func (p *projection) addMaster(server, diskType string, bytes uint64, volumes int64) {
	if sp := p.byID[server]; sp != nil {
		if d := sp.disk(diskType); d != nil {
			d.masterBytes += bytes
			d.masterVol += volumes
		}
	}
}

// project applies the unretired changes and the active tasks, volume by
// volume in id order, and returns the figures.
func (p *projection) project(active []*fsmpb.Task, changes []*fsmpb.CapacityChange) []*pb.ServerCapacity {
	for _, sp := range p.order {
		for _, d := range sp.disks {
			d.projBytes, d.projEC, d.projVol = d.masterBytes, d.masterEC, d.masterVol
		}
	}
	changesByVol := map[uint32][]*fsmpb.CapacityChange{}
	for _, c := range changes {
		if !Reflected(c, p.topo) {
			changesByVol[c.VolumeId] = append(changesByVol[c.VolumeId], c)
		}
	}
	activeByVol := map[uint32]*fsmpb.Task{}
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
		p.volume(id, activeByVol[id], changesByVol[id])
	}
	return p.figures()
}

// volume applies one volume's unreported changes (in the order given),
// then its task in flight t (nil: none).
func (p *projection) volume(id uint32, t *fsmpb.Task, changes []*fsmpb.CapacityChange) {
	v, ok := p.topo.Volumes[id]
	if !ok {
		// Gone from the master (or already erasure coded): only shards of
		// an unreported encoding can still arrive.
		for _, c := range changes {
			switch c.Type {
			case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
				p.addShards(&seaweed.Volume{ID: id}, c.Shards, c.OldSize)
			case fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:
				// Duplicate shards removed from their server.
				p.removeShards(id, c.Shards)
			case fsmpb.TaskType_TASK_TYPE_EC_REBUILD:
				// The regenerated shards, on the disk type of the volume's
				// other shards; OldSize is the volume's size (10 shards).
				v := &seaweed.Volume{ID: id}
				if e := p.topo.EcVolumes[id]; e != nil {
					v.DiskType = e.DiskType
				}
				p.addShards(v, c.Shards, c.OldSize)
			case fsmpb.TaskType_TASK_TYPE_EC_BALANCE:
				p.moveShards(id, c.Source, c.Shards, c.OldSize)
			}
		}
		if t != nil && t.Type == fsmpb.TaskType_TASK_TYPE_EC_BALANCE {
			// A shard move in flight, where its task says.
			if shard, err := placement.TaskShard(t); err == nil {
				p.moveShards(id, t.Source, []*fsmpb.ShardPlacement{{ShardId: shard, Server: t.Target}}, 0)
			}
		}
		return
	}
	p.vacuum(v, t, changes)
	removed := false
	for _, c := range changes {
		switch c.Type {
		case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
			if !removed {
				p.removeReplicas(v)
				removed = true
			}
			p.addShards(v, c.Shards, c.OldSize)
		case fsmpb.TaskType_TASK_TYPE_BALANCE:
			if removed {
				continue
			}
			if src, ok := p.topo.FindServer(c.Source); ok {
				if r := replicaOn(v, src); r != nil {
					p.removeReplica(r)
				}
			}
			if dst, ok := p.topo.FindServer(c.Target); ok && replicaOn(v, dst) == nil {
				p.addReplica(v, c.Target, v.Size)
			}
		case fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY:
			// An empty volume deleted: its slot freed on every server the
			// master still lists it on.
			if !removed {
				p.removeReplicas(v)
				removed = true
			}
		case fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA:
			// An extra copy gone from Source.
			if removed {
				continue
			}
			if src, ok := p.topo.FindServer(c.Source); ok {
				if r := replicaOn(v, src); r != nil {
					p.removeReplica(r)
				}
			}
		case fsmpb.TaskType_TASK_TYPE_REPLICATE:
			// The target gained a copy; the source keeps its own.
			if removed {
				continue
			}
			if dst, ok := p.topo.FindServer(c.Target); ok && replicaOn(v, dst) == nil {
				p.addReplica(v, c.Target, v.Size)
			}
		}
	}
	if t == nil || removed {
		return
	}
	switch t.Type {
	case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
		placements, err := placement.PlaceShards(v, p.topo)
		if err != nil {
			return
		}
		p.removeReplicas(v)
		p.addShards(v, placements, v.Size)
	case fsmpb.TaskType_TASK_TYPE_BALANCE:
		src, dst, err := placement.PlanMove(t, v, p.topo)
		if err != nil {
			return
		}
		if r := replicaOn(v, src); r != nil {
			p.removeReplica(r)
		}
		if replicaOn(v, dst) == nil {
			p.addReplica(v, dst.ID, v.Size)
		}
	case fsmpb.TaskType_TASK_TYPE_REPLICATE:
		// The target its attempt was assigned (the attempt records only
		// its target), else the one a plan would choose now.
		var dst *seaweed.Server
		if len(t.AttemptServers) == 1 {
			dst, _ = p.topo.FindServer(t.AttemptServers[0])
		}
		if dst == nil {
			var err error
			if _, dst, err = placement.PlanReplicate(t, v, p.topo); err != nil {
				return
			}
		}
		if replicaOn(v, dst) == nil {
			p.addReplica(v, dst.ID, v.Size)
		}
	}
}

// vacuum shrinks every replica of v by the volume's vacuum adjustments
// (in flight and unreported), as projectVolume counts them.
func (p *projection) vacuum(v *seaweed.Volume, active *fsmpb.Task, changes []*fsmpb.CapacityChange) {
	vc := projectVolume(p.topo, v, active, changes)
	var delta int64
	for _, a := range vc.Adjustments {
		if a.Type == fsmpb.TaskType_TASK_TYPE_VACUUM {
			delta += a.DeltaBytes
		}
	}
	if delta == 0 {
		return
	}
	for i := range v.Replicas {
		r := &v.Replicas[i]
		if sp := p.byID[r.Server.ID]; sp != nil {
			if d := sp.disk(r.DiskType); d != nil {
				d.addBytes(delta)
			}
		}
	}
}

// removeReplicas takes every replica of v off its server.
func (p *projection) removeReplicas(v *seaweed.Volume) {
	for i := range v.Replicas {
		p.removeReplica(&v.Replicas[i])
	}
}

// removeReplica takes one replica off its server.
func (p *projection) removeReplica(r *seaweed.Replica) {
	if sp := p.byID[r.Server.ID]; sp != nil {
		if d := sp.disk(r.DiskType); d != nil {
			d.addBytes(-int64(r.Size))
			d.projVol--
		}
	}
}

// addReplica puts a replica of v, of size bytes, on the server name.
func (p *projection) addReplica(v *seaweed.Volume, name string, size uint64) {
	s, ok := p.topo.FindServer(name)
	if !ok {
		return
	}
	if sp := p.byID[s.ID]; sp != nil {
		if d := sp.disk(v.DiskType); d != nil {
			d.addBytes(int64(size))
			d.projVol++
		}
	}
}

// removeShards takes the shards of EC volume id that placements name
// off their servers, those the master still lists there only.
func (p *projection) removeShards(id uint32, placements []*fsmpb.ShardPlacement) {
	e := p.topo.EcVolumes[id]
	if e == nil {
		return
	}
	for _, pl := range placements {
		s, ok := p.topo.FindServer(pl.Server)
		if !ok || !listHas(e.Shards[pl.ShardId], s.ID) {
			continue
		}
		if sp := p.byID[s.ID]; sp != nil {
			if d := sp.disk(e.DiskType); d != nil {
				d.projEC--
			}
		}
	}
}

// addShards puts v's shards, a tenth of size each, where placements say,
// except those the master already lists there.
func (p *projection) addShards(v *seaweed.Volume, placements []*fsmpb.ShardPlacement, size uint64) {
	e := p.topo.EcVolumes[v.ID]
	for _, pl := range placements {
		s, ok := p.topo.FindServer(pl.Server)
		if !ok {
			continue
		}
		if e != nil && listHas(e.Shards[pl.ShardId], s.ID) {
			continue // already reported
		}
		if sp := p.byID[s.ID]; sp != nil {
			if d := sp.disk(v.DiskType); d != nil {
				d.projEC++
				d.projECBytes += size / seaweed.EcDataShards
			}
		}
	}
}

// moveShards moves shards of EC volume id from source to where placements
// say (a tenth of size each arriving; 0: the volume's size is unknown, no
// bytes counted): each leaves source unless the master lists it there no
// longer (a shard count only: EcShardBytes counts bytes arriving), and
// arrives unless the master lists it there already.
func (p *projection) moveShards(id uint32, source string, placements []*fsmpb.ShardPlacement, size uint64) {
	e := p.topo.EcVolumes[id]
	if e == nil {
		return
	}
	v := &seaweed.Volume{ID: id, DiskType: e.DiskType}
	if src, ok := p.topo.FindServer(source); ok {
		if sp := p.byID[src.ID]; sp != nil {
			if d := sp.disk(v.DiskType); d != nil {
				for _, pl := range placements {
					if listHas(e.Shards[pl.ShardId], src.ID) {
						d.projEC--
					}
				}
			}
		}
	}
	p.addShards(v, placements, size)
}

// figures are the master's and the projected figures of every server, in
// the order asked, disks by type.
func (p *projection) figures() []*pb.ServerCapacity {
	out := make([]*pb.ServerCapacity, 0, len(p.order))
	for _, sp := range p.order {
		sc := &pb.ServerCapacity{Server: sp.s.ID, Address: sp.s.Addr.String()}
		types := make([]string, 0, len(sp.disks))
		for typ := range sp.disks {
			types = append(types, typ)
		}
		sort.Strings(types)
		for _, typ := range types {
			sc.Disks = append(sc.Disks, sp.disks[typ].figures(typ))
		}
		out = append(out, sc)
	}
	return out
}

// addBytes changes the projected bytes by delta, never below 0.
func (d *diskProj) addBytes(delta int64) {
	d.projBytes = uint64(max(int64(d.projBytes)+delta, 0))
}

// figures are the disk's master and projected figures. Ten EC shards take
// one slot.
func (d *diskProj) figures(typ string) *pb.DiskCapacity {
	m := &pb.CapacityFigures{UsedSlots: d.usedSlots, FreeSlots: d.freeSlots, VolumeBytes: d.masterBytes,
		Volumes: uint32(d.masterVol), EcShards: uint32(d.masterEC)}
	used := d.usedSlots + (d.projVol - d.masterVol) + ecSlots(d.projEC) - ecSlots(d.masterEC)
	pr := &pb.CapacityFigures{UsedSlots: used, FreeSlots: d.max - used, VolumeBytes: d.projBytes,
		Volumes: uint32(max(d.projVol, 0)), EcShards: uint32(max(d.projEC, 0)), EcShardBytes: d.projECBytes}
	return &pb.DiskCapacity{DiskType: typ, MaxSlots: d.max, Master: m, Projected: pr}
}

// replicaOn is v's replica on server s, or nil.
func replicaOn(v *seaweed.Volume, s *seaweed.Server) *seaweed.Replica {
	for i := range v.Replicas {
		if v.Replicas[i].Server.ID == s.ID {
			return &v.Replicas[i]
		}
	}
	return nil
}

func listHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
