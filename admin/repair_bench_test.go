package admin_test

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// BenchmarkRepairAfterServerLoss: 100 simulated volume servers over 2 DCs
// x 3 racks; server 0 holds one copy of every 001 volume (the other copy
// spread over the rest) and one or two shards of every EC volume (the
// other shards spread). Server 0 is lost for good; the benchmark measures
// the time from --repair-after expiry to full redundancy (sim Durability
// empty) with 3 admins and one worker of 20 slots, against the ideal copy
// time bytes / (IOBytesPerSecond x 20), and the peak number of copies one
// server receives at once (from the sim OpLog; a copy is logged on the
// server that pulls it, so the source side is not visible there).
//
// Default size: 300 volumes / 600 shards on the lost server; set
// GK_BENCH_REPAIR_FULL=1 for 1,000 volumes / 2,000 shards.
func BenchmarkRepairAfterServerLoss(b *testing.B) {
	vols, shards := 300, 600
	if os.Getenv("GK_BENCH_REPAIR_FULL") != "" {
		vols, shards = 1000, 2000
	}
	const (
		servers     = 100
		slots       = 20
		volSize     = 1 << 20 // 1 MiB
		ecSize      = 1 << 20 // shards of ~100 KiB
		repairAfter = time.Second
	)
	ecVols := shards * 2 / 3 // alternately 1 and 2 shards on server 0
	bytes := float64(vols*volSize + shards*((ecSize+9)/10))
	bw := int64(bytes / (slots * 15)) // ideal ~15 s
	for n := 0; n < b.N; n++ {
		cfg := admintest.SimConfig(servers)
		cfg.DataCenters, cfg.RacksPerDataCenter = 2, 3
		cfg.MaxVolumesPerServer = int64(vols + 100)
		cfg.VolumeSizeLimitMB = 30
		cfg.CopyDuration, cfg.EcCopyDuration = 0, 0
		cfg.IOBytesPerSecond = bw
		s := newSystem(b, cfg)
		for i := 0; i < vols; i++ {
			if _, err := s.Sim.AddVolume(sim.VolumeSpec{Size: volSize, ReplicaPlacement: 1, Servers: []int{0, 1 + i%(servers-1)}}); err != nil {
				b.Fatal(err)
			}
		}
		placed := 0
		for j := 0; j < ecVols && placed < shards; j++ {
			on0 := 1 + j%2
			if placed+on0 > shards {
				on0 = shards - placed
			}
			placed += on0
			m := map[int][]uint32{}
			for sh := 0; sh < 14; sh++ {
				srv := 0
				if sh >= on0 {
					srv = 1 + (j*13+sh)%(servers-1)
				}
				m[srv] = append(m[srv], uint32(sh))
			}
			if err := s.Sim.AddEcVolume(sim.EcVolumeSpec{ID: uint32(100000 + j), Collection: "ec", Size: ecSize, FileCount: 1, Shards: m}); err != nil {
				b.Fatal(err)
			}
		}
		sc := admintest.SchedConfig()
		sc.Thresholds.RepairAfter = repairAfter
		s.StartAdmins(sc)
		s.StartWorker("w1", s.GRPCAddrs(), slots)
		s.WaitConnected("w1")
		b.ResetTimer()
		lost := time.Now()
		s.Sim.Server(0).Lose()
		deadline := lost.Add(30 * time.Minute)
		for len(s.Sim.Durability()) != 0 {
			if time.Now().After(deadline) {
				b.Fatalf("no full redundancy after %s: %d violations left", time.Since(lost), len(s.Sim.Durability()))
			}
			time.Sleep(200 * time.Millisecond) // polling the sim, not waiting for an event
		}
		full := time.Since(lost) - repairAfter
		b.StopTimer()
		tasks := s.Tasks()
		type ev struct {
			t     time.Time
			delta int
		}
		// peakOf is the most overlapping ops of the methods on one server.
		peakOf := func(methods ...string) int {
			evs := map[string][]ev{}
			for _, o := range s.Sim.OpLog() {
				if slices.Contains(methods, o.Method) {
					evs[o.Server] = append(evs[o.Server], ev{o.Start, 1}, ev{o.End, -1})
				}
			}
			peak := 0
			for _, e := range evs {
				sort.Slice(e, func(i, j int) bool { return e[i].t.Before(e[j].t) || e[i].t.Equal(e[j].t) && e[i].delta < e[j].delta })
				cur := 0
				for _, x := range e {
					cur += x.delta
					peak = max(peak, cur)
				}
			}
			return peak
		}
		peak := peakOf("VolumeCopy", "VolumeEcShardsCopy")
		b.ReportMetric(float64(peakOf("VolumeCopy")), "peak_volume_copies_per_target")
		ideal := bytes / float64(bw*slots)
		b.ReportMetric(full.Seconds(), "seconds_to_full")
		b.ReportMetric(ideal, "ideal_copy_seconds")
		b.ReportMetric(float64(peak), "peak_copies_per_target")
		b.ReportMetric(float64(len(tasks)), "tasks")
		var failed []string
		for _, t := range tasks {
			if t.LastError != "" {
				failed = append(failed, t.LastError)
			}
		}
		if len(failed) > 0 {
			b.Logf("%d tasks with an error, first: %s", len(failed), strings.Join(failed[:1], ""))
		}
	}
}
