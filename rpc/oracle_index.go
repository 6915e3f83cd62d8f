package rpc

import (
	"sync"
	"sync/atomic"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// serverIndexCache keeps the per-server sums of one topology, so server
// lookups do not scan every volume (a million of them) on each call. A
// topology is never modified, so its index stays valid until a new
// topology replaces it.
type serverIndexCache struct {
	mu  sync.Mutex // one build at a time
	cur atomic.Pointer[indexedTopology]
}

type indexedTopology struct {
	topo *seaweed.Topology
	idx  *capacity.ServerIndex
}

// get returns topo's index, building it on the first call for topo.
func (c *serverIndexCache) get(topo *seaweed.Topology) *capacity.ServerIndex {
	if it := c.cur.Load(); it != nil && it.topo == topo {
		return it.idx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it := c.cur.Load(); it != nil && it.topo == topo {
		return it.idx
	}
	idx := capacity.IndexServers(topo)
	c.cur.Store(&indexedTopology{topo: topo, idx: idx})
	return idx
}
