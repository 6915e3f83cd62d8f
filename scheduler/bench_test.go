package scheduler

import (
	"fmt"
	"testing"
	"time"
)

// benchTopology is 100,000 volumes on 100 servers: a tenth with garbage, a
// tenth full and quiet, replicated twice, and one server nearly empty.
func benchTopology(volumes, servers int) []*node {
	nodes := make([]*node, servers)
	for i := range nodes {
		nodes[i] = srv(fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), int64(volumes*2/servers+100))
	}
	for id := 1; id <= volumes; id++ {
		x := v(uint32(id), 10<<20).Mod(ago(time.Minute))
		switch id % 10 {
		case 1:
			x = x.Garbage(5 << 20)
		case 2:
			x = v(uint32(id), 30<<20)
		}
		a, b := id%(servers-1), (id+1)%(servers-1)
		nodes[a].Holding(x)
		nodes[b].Holding(x)
	}
	return nodes
}

// BenchmarkDetect100k measures one detection round (all three detectors)
// over a parsed 100,000-volume topology.
func BenchmarkDetect100k(b *testing.B) {
	topo := build(30, benchTopology(100_000, 100)...)
	th := DefaultThresholds()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		n = len(Detect(topo, idle, nil, th, now))
	}
	b.ReportMetric(float64(n), "proposals")
}
