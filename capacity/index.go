package capacity

import (
	"sort"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ServerIndex is what the master lists on each server, summed per replica
// disk type: built once per topology, it spares projectServers a scan of
// every volume on each call.
type ServerIndex struct {
	byServer map[string][]diskUsage
}

// diskUsage sums the replicas of one disk type on one server.
type diskUsage struct {
	diskType string
	bytes    uint64
	volumes  int64
}

// IndexServers sums the replicas of every volume per server and disk type.
func IndexServers(topo *seaweed.Topology) *ServerIndex {
	type key struct{ server, diskType string }
	sums := map[key]*diskUsage{}
	for _, v := range topo.Volumes {
		for _, r := range v.Replicas {
			k := key{r.Server.ID, r.DiskType}
			u := sums[k]
			if u == nil {
				u = &diskUsage{diskType: k.diskType}
				sums[k] = u
			}
			u.bytes += r.Size
			u.volumes++
		}
	}
	idx := &ServerIndex{byServer: make(map[string][]diskUsage, len(topo.Servers))}
	for k, u := range sums {
		idx.byServer[k.server] = append(idx.byServer[k.server], *u)
	}
	for _, us := range idx.byServer {
		sort.Slice(us, func(i, j int) bool { return us[i].diskType < us[j].diskType })
	}
	return idx
}
