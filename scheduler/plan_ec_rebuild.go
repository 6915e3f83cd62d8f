package scheduler

import (
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// planEcRebuild plans an ec_rebuild of an EC volume with missing shards:
// the rebuilder (the live server of the volume's disk type that already
// holds the most of its shards and has room for the rest while it
// rebuilds), where each missing shard ends (spread over data centres,
// racks, machines and servers as the volume's present shards leave room
// for), and every present shard copy, for the executor to gather from.
// A volume with fewer than placement.DataShards distinct shards is not
// rebuildable (a permanent plan error); one with no room waits. A retry
// whose volume the topology shows whole is done.
func planEcRebuild(task *fsmpb.Task, topo *seaweed.Topology, spec *pb.TaskSpec, history bool) (*pb.TaskSpec, error) {
	e, ok := topo.EcVolumes[task.VolumeId]
	if !ok {
		if _, regular := topo.Volumes[task.VolumeId]; regular {
			return nil, placement.Errorf("volume %d is not erasure coded: nothing to rebuild", task.VolumeId)
		}
		return nil, placement.Errorf("EC volume %d not found in the master's topology", task.VolumeId)
	}
	if task.Collection != e.Collection {
		if task.Collection != "" {
			return nil, placement.Errorf("EC volume %d is in collection %q, not %q as the task names", task.VolumeId, e.Collection, task.Collection)
		}
		named := proto.Clone(task).(*fsmpb.Task)
		named.Collection = e.Collection
		spec.Task = named
	}
	var missing []uint32
	count := map[string]int{} // server id -> shards of the volume it holds
	for shard := uint32(0); shard < placement.TotalShards; shard++ {
		holders := e.Shards[shard]
		if len(holders) == 0 {
			missing = append(missing, shard)
			continue
		}
		for _, h := range holders {
			count[h]++
			name := h
			if s, ok := topo.FindServer(h); ok {
				name = s.Addr.String()
			}
			spec.PresentShards = append(spec.PresentShards, &fsmpb.ShardPlacement{ShardId: shard, Server: name})
		}
	}
	if len(missing) == 0 {
		if retried(task, history) {
			if done, ok := encodedDone(task, topo); ok {
				return nil, done
			}
		}
		return nil, placement.Errorf("EC volume %d has all %d shards: nothing to rebuild", task.VolumeId, placement.TotalShards)
	}
	if present := placement.TotalShards - len(missing); present < placement.DataShards {
		return nil, placement.Errorf("EC volume %d has %d distinct shards, fewer than the %d a rebuild needs (missing %v): not rebuildable; bring back a server holding the missing shards", task.VolumeId, present, placement.DataShards, missing)
	}
	typ := e.DiskType
	spec.DiskType = typ
	spec.EcShardHolders = shardHolders(topo, task.VolumeId)

	// The rebuilder ends up holding all 14 shards while it rebuilds (it
	// gathers every present one, as `weed shell ec.rebuild` does, so that
	// only the missing ones are regenerated): SeaweedFS charges a slot per
	// 10 shards.
	var rebuilder *seaweed.Server
	for _, s := range topo.Servers {
		if placement.Disk(s, typ) == nil || !placement.ShardTargetable(s, typ, placement.HoldsShards(e, s.ID)) {
			continue
		}
		if placement.FreeSlotsOf(s, typ) < slotsFor(placement.TotalShards-count[s.ID]) {
			continue
		}
		if rebuilder == nil || count[s.ID] > count[rebuilder.ID] ||
			count[s.ID] == count[rebuilder.ID] && placement.FreeSlotsOf(s, typ) > placement.FreeSlotsOf(rebuilder, typ) {
			rebuilder = s
		}
	}
	if rebuilder == nil {
		return nil, placement.Waitf("EC volume %d: no volume server with a %s disk has the free slots to gather its shards and rebuild the %d missing ones", task.VolumeId, placement.DiskTypeName(typ), len(missing))
	}
	spec.Rebuilder = rebuilder.Addr.String()
	targets, err := placeMissingShards(topo, typ, rebuilder, count, missing)
	if err != nil {
		return nil, placement.Errorf("EC volume %d: %v", task.VolumeId, err)
	}
	spec.ShardTargets = targets
	return spec, nil
}

// slotsFor is the volume slots n shards take (SeaweedFS: one per 10).
func slotsFor(n int) int64 {
	if n <= 0 {
		return 0
	}
	return int64((n + placement.DataShards - 1) / placement.DataShards)
}

// placeMissingShards puts each missing shard, one at a time, on the
// candidate whose data centre, then rack, then machine, then server holds
// the fewest shards of the volume so far (the spread placement.SpreadShards
// aims at, reached from the layout the losses left), never more than
// placement.MaxShardsPerServer on one server while another has room. Ties
// go to the rebuilder (the shard needs no move), then to more free slots,
// then by server id. Candidates are servers with a disk of the volume's
// type and a free slot, and the rebuilder.
func placeMissingShards(topo *seaweed.Topology, typ string, rebuilder *seaweed.Server, count map[string]int, missing []uint32) ([]*fsmpb.ShardPlacement, error) {
	type cand struct {
		s    *seaweed.Server
		loc  placement.Location
		free int64
	}
	var cands []cand
	dc, rack, host := map[string]int{}, map[string]int{}, map[string]int{}
	hostKey := func(l placement.Location) string {
		h := l.Host
		if h == "" {
			h = l.Server
		}
		return l.DC + "\x00" + l.Rack + "\x00" + h
	}
	for _, s := range topo.Servers {
		l := placement.ServerLocation(s)
		if n := count[s.ID]; n > 0 {
			dc[l.DC] += n
			rack[l.DC+"\x00"+l.Rack] += n
			host[hostKey(l)] += n
		}
		if placement.Disk(s, typ) == nil || !placement.ShardTargetable(s, typ, count[s.ID] > 0 || s.ID == rebuilder.ID) {
			continue
		}
		if s.ID != rebuilder.ID && placement.FreeSlotsOf(s, typ) <= 0 {
			continue
		}
		cands = append(cands, cand{s: s, loc: l, free: placement.FreeSlotsOf(s, typ)})
	}
	server := map[string]int{}
	for id, n := range count {
		server[id] = n
	}
	out := make([]*fsmpb.ShardPlacement, 0, len(missing))
	for _, shard := range missing {
		best := -1
		less := func(i, j int) bool {
			a, b := cands[i], cands[j]
			aFull, bFull := server[a.s.ID] >= placement.MaxShardsPerServer, server[b.s.ID] >= placement.MaxShardsPerServer
			if aFull != bFull {
				return bFull
			}
			for _, k := range [][2]int{
				{dc[a.loc.DC], dc[b.loc.DC]},
				{rack[a.loc.DC+"\x00"+a.loc.Rack], rack[b.loc.DC+"\x00"+b.loc.Rack]},
				{host[hostKey(a.loc)], host[hostKey(b.loc)]},
				{server[a.s.ID], server[b.s.ID]},
			} {
				if k[0] != k[1] {
					return k[0] < k[1]
				}
			}
			if ar, br := a.s.ID == rebuilder.ID, b.s.ID == rebuilder.ID; ar != br {
				return ar
			}
			if a.free != b.free {
				return a.free > b.free
			}
			return a.s.ID < b.s.ID
		}
		for i := range cands {
			if best < 0 || less(i, best) {
				best = i
			}
		}
		if best < 0 {
			return nil, placement.Errorf("no server can take shard %d", shard)
		}
		c := cands[best]
		dc[c.loc.DC]++
		rack[c.loc.DC+"\x00"+c.loc.Rack]++
		host[hostKey(c.loc)]++
		server[c.s.ID]++
		out = append(out, &fsmpb.ShardPlacement{ShardId: shard, Server: c.s.Addr.String()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ShardId < out[j].ShardId })
	return out, nil
}
