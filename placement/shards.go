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

// PlaceShards spreads the 14 shards round-robin over the servers with the
// most free slots, starting with the volume's first replica (which generates
// them), using at least MinECServers servers. The capacity projection
// places an encoding in flight where this would place it now.
func PlaceShards(v *seaweed.Volume, topo *seaweed.Topology) ([]*fsmpb.ShardPlacement, error) {
	if len(v.Replicas) == 0 {
		return nil, Errorf("volume %d has no replica to encode", v.ID)
	}
	source := v.Replicas[0].Server
	type cand struct {
		s    *seaweed.Server
		free int64
	}
	var cands []cand
	for _, s := range topo.Servers {
		var free int64
		for _, d := range s.Disks {
			free += d.FreeSlots
		}
		if s.ID != source.ID && free <= 0 {
			continue
		}
		cands = append(cands, cand{s, free})
	}
	if len(cands) < MinECServers {
		return nil, Errorf("erasure coding needs at least %d volume servers with free slots; the topology has %d", MinECServers, len(cands))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if (cands[i].s.ID == source.ID) != (cands[j].s.ID == source.ID) {
			return cands[i].s.ID == source.ID
		}
		if cands[i].free != cands[j].free {
			return cands[i].free > cands[j].free
		}
		return cands[i].s.ID < cands[j].s.ID
	})
	n := min(len(cands), TotalShards)
	out := make([]*fsmpb.ShardPlacement, TotalShards)
	for shard := 0; shard < TotalShards; shard++ {
		out[shard] = &fsmpb.ShardPlacement{ShardId: uint32(shard), Server: cands[shard%n].s.Addr.String()}
	}
	return out, nil
}

// MaxShardsPerServer is the most shards of one volume PlaceShards puts on
// one server (round-robin over at least MinECServers servers): losing any
// one server then loses at most as many shards as there are parity shards.
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
