package admin_test

import (
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// BenchmarkRepairAfterServerLoss: 100 simulated volume servers over 2 DCs
// x 3 racks; server 0 holds one copy of every 001 volume (the other copy
// spread over the rest) and one or two shards of every EC volume (the
// other shards spread). Server 0 is lost for good; the benchmark measures
// the time from --repair-after expiry to full redundancy (sim Durability
// empty) with 3 admins and one worker of 20 slots, and breaks that time
// down so the gap to an ideal can be read:
//
//   - ideal_lost_bytes_seconds: the bytes lost / (IOBytesPerSecond x 20).
//     A lower bound no method reaches: an EC rebuild reads at least 10
//     shards to regenerate one, and moves what it regenerated.
//   - work_io_seconds: the simulated IO the repairs actually did (per task,
//     the union of its operations' intervals in the sim OpLog, so a task's
//     parallel copies count once), summed and divided by 20 slots: the time
//     to full redundancy if all 20 slots were busy with IO from the first
//     instant to the last.
//   - task_slot_seconds: the tasks' own times (assigned to finished),
//     summed and divided by 20: the above plus each task's RPC and report
//     overhead.
//   - first_assign_seconds: from --repair-after expiry to the first repair
//     assigned (detection and planning latency).
//   - seconds_to_full minus task_slot_seconds is the time slots sat idle:
//     scheduling rounds, the tail where fewer than 20 tasks remain.
//
// It also reports the peak number of copies one server receives at once
// (from the sim OpLog; a copy is logged on the server that pulls it, so the
// source side is not visible there).
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
		b.ReportMetric(ideal, "ideal_lost_bytes_seconds")
		ioByTask := taskIOByTask(s.Sim.OpLog())
		var ioSecs float64
		for _, d := range ioByTask {
			ioSecs += d.busy.Seconds()
		}
		b.ReportMetric(ioSecs/slots, "work_io_seconds")
		logPerType(b, tasks, ioByTask)
		var slotSecs float64
		firstAssign := time.Time{}
		for _, t := range tasks {
			if t.GetAssignedAt() == 0 || t.GetFinishedAt() == 0 {
				continue
			}
			slotSecs += time.Duration(t.GetFinishedAt() - t.GetAssignedAt()).Seconds()
			if a := time.Unix(0, t.GetAssignedAt()); firstAssign.IsZero() || a.Before(firstAssign) {
				firstAssign = a
			}
		}
		b.ReportMetric(slotSecs/slots, "task_slot_seconds")
		if !firstAssign.IsZero() {
			b.ReportMetric(firstAssign.Sub(lost.Add(repairAfter)).Seconds(), "first_assign_seconds")
		}
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

// logPerType logs, per task type, how many tasks ran and where a task's
// time (assigned to finished) goes: to the worker's start report, before
// its first volume-server operation, in simulated IO, and from its last
// operation to the committed completion.
func logPerType(b *testing.B, tasks []*fsmpb.Task, io map[string]taskIO) {
	type agg struct {
		n                                    int
		wall, toStart, toFirst, io, toFinish time.Duration
	}
	by := map[fsmpb.TaskType]*agg{}
	for _, t := range tasks {
		tio, ok := io[strconv.FormatUint(t.GetId(), 10)]
		if t.GetAssignedAt() == 0 || t.GetStartedAt() == 0 || t.GetFinishedAt() == 0 || !ok {
			continue
		}
		a := by[t.GetType()]
		if a == nil {
			a = &agg{}
			by[t.GetType()] = a
		}
		a.n++
		a.wall += time.Duration(t.GetFinishedAt() - t.GetAssignedAt())
		a.toStart += time.Duration(t.GetStartedAt() - t.GetAssignedAt())
		a.toFirst += tio.first.Sub(time.Unix(0, t.GetStartedAt()))
		a.io += tio.busy
		a.toFinish += time.Unix(0, t.GetFinishedAt()).Sub(tio.last)
	}
	for _, typ := range slices.Sorted(maps.Keys(by)) {
		a := by[typ]
		mean := func(d time.Duration) float64 { return (d / time.Duration(a.n)).Seconds() }
		b.Logf("%s: %d tasks, mean %.2fs assigned to finished: %.2fs to the start report, %.2fs more to the first operation, %.2fs simulated IO, %.2fs from the last operation to the completion",
			typ, a.n, mean(a.wall), mean(a.toStart), mean(a.toFirst), mean(a.io), mean(a.toFinish))
	}
}

// taskIO is one task's volume-server operations: the union of their
// intervals (busy: overlapping operations count once), the first start
// and the last end.
type taskIO struct {
	busy        time.Duration
	first, last time.Time
}

// taskIOByTask is taskIO per task id that tagged its operations.
func taskIOByTask(ops []sim.Op) map[string]taskIO {
	type span struct{ start, end time.Time }
	byTask := map[string][]span{}
	for _, o := range ops {
		if o.TaskID == "" || !o.End.After(o.Start) {
			continue
		}
		byTask[o.TaskID] = append(byTask[o.TaskID], span{o.Start, o.End})
	}
	out := make(map[string]taskIO, len(byTask))
	for id, spans := range byTask {
		sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
		t := taskIO{first: spans[0].start}
		cur := spans[0]
		for _, sp := range spans[1:] {
			if sp.start.After(cur.end) {
				t.busy += cur.end.Sub(cur.start)
				t.last = maxTime(t.last, cur.end)
				cur = sp
				continue
			}
			if sp.end.After(cur.end) {
				cur.end = sp.end
			}
		}
		t.busy += cur.end.Sub(cur.start)
		t.last = maxTime(t.last, cur.end)
		out[id] = t
	}
	return out
}
