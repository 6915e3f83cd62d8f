package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	mpb "github.com/seaweedfs/seaweedfs/weed/pb/master_pb"
	vpb "github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"

	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

func TestOpLogAndOverlaps(t *testing.T) {
	c := newCluster(t, Config{Servers: 3, CompactDuration: 300 * time.Millisecond})
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 1, Size: mib, DeletedBytes: mib / 2, FileCount: 2, DeleteCount: 1, ReplicaPlacement: 1, Servers: []int{0, 1}}))
	must[uint32](t)(c.AddVolume(VolumeSpec{ID: 2, Size: mib, Servers: []int{2}}))
	v0, v1, v2 := vsClient(t, c.Server(0)), vsClient(t, c.Server(1)), vsClient(t, c.Server(2))
	ctx := ctxT(t)

	parallel := func(fns ...func()) {
		var wg sync.WaitGroup
		for _, f := range fns {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
	}
	// Negative: one task compacts both replicas in parallel, then commits;
	// a second task runs afterwards; reads are not logged.
	t1 := withTask(ctx, "task-1/3")
	parallel(
		func() { must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(t1, v0, 1)) },
		func() { must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(t1, v1, 1)) },
	)
	must[*vpb.VacuumVolumeCommitResponse](t)(v0.VacuumVolumeCommit(t1, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	must[*vpb.VacuumVolumeCommitResponse](t)(v1.VacuumVolumeCommit(t1, &vpb.VacuumVolumeCommitRequest{VolumeId: 1}))
	must[*vpb.VolumeStatusResponse](t)(v0.VolumeStatus(ctx, &vpb.VolumeStatusRequest{VolumeId: 1}))
	t2 := withTask(ctx, "task-2/1")
	must[*vpb.VolumeMarkReadonlyResponse](t)(v0.VolumeMarkReadonly(t2, &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	// Different volumes may overlap freely.
	parallel(
		func() { must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(withTask(ctx, "a/1"), v0, 1)) },
		func() { must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(withTask(ctx, "b/1"), v2, 2)) },
	)
	if o := c.Overlaps(); len(o) != 0 {
		t.Fatalf("unexpected overlaps: %v", o)
	}
	log := c.OpLog()
	if len(log) != 7 {
		t.Fatalf("op log has %d entries, want 7: %v", len(log), log)
	}
	first := log[0]
	if first.Method != "VacuumVolumeCompact" || first.VolumeID != 1 || first.TaskID != "task-1" || first.Fence != "3" ||
		first.End.Sub(first.Start) < 290*time.Millisecond {
		t.Fatalf("first op %+v", first)
	}

	// duringCompaction runs call on a fresh op log once task-1's compaction
	// of volume 1 is running.
	duringCompaction := func(call func()) {
		c.ResetOpLog()
		parallel(
			func() { must[[]*vpb.VacuumVolumeCompactResponse](t)(compact(t1, v0, 1)) },
			func() {
				testutil.EventuallyTrue(t, 2*time.Second, "compaction to start", func() bool { v, _ := c.Server(0).Volume(1); return v.Compacting })
				call()
			},
		)
	}
	// Positive: a different task touches volume 1 while task-1's compaction runs.
	duringCompaction(func() {
		must[*vpb.VolumeMarkReadonlyResponse](t)(v1.VolumeMarkReadonly(withTask(ctx, "task-9/1"), &vpb.VolumeMarkReadonlyRequest{VolumeId: 1}))
	})
	o := c.Overlaps()
	if len(o) != 1 || o[0].A.Method != "VacuumVolumeCompact" || o[0].B.TaskID != "task-9" {
		t.Fatalf("want one overlap compact/task-9, got %v", o)
	}
	// Same task id, newer fence: a different attempt, so it overlaps too.
	duringCompaction(func() {
		must[*vpb.VacuumVolumeCleanupResponse](t)(v1.VacuumVolumeCleanup(withTask(ctx, "task-1/4"), &vpb.VacuumVolumeCleanupRequest{VolumeId: 1}))
	})
	if o := c.Overlaps(); len(o) != 1 {
		t.Fatalf("want one overlap across fences, got %v", o)
	}
}

func TestFindOverlaps(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	op := func(vid uint32, task, fence string, from, to int) Op {
		return Op{VolumeID: vid, Method: "M", TaskID: task, Fence: fence, Start: at(from), End: at(to)}
	}
	cases := []struct {
		name string
		ops  []Op
		want int
	}{
		{"same task overlaps", []Op{op(1, "a", "1", 0, 10), op(1, "a", "1", 5, 15)}, 0},
		{"touching is not overlapping", []Op{op(1, "a", "1", 0, 10), op(1, "b", "1", 10, 20)}, 0},
		{"different volumes", []Op{op(1, "a", "1", 0, 10), op(2, "b", "1", 0, 10)}, 0},
		{"different tasks", []Op{op(1, "a", "1", 0, 10), op(1, "b", "1", 9, 20)}, 1},
		{"different fences", []Op{op(1, "a", "1", 0, 10), op(1, "a", "2", 2, 3)}, 1},
		{"untagged conflicts even with untagged", []Op{op(1, "", "", 0, 10), op(1, "", "", 5, 6)}, 1},
		{"nested in a long op", []Op{op(1, "a", "1", 0, 100), op(1, "a", "1", 10, 20), op(1, "b", "1", 50, 60), op(1, "b", "1", 200, 300)}, 1},
	}
	for _, tc := range cases {
		if got := FindOverlaps(tc.ops); len(got) != tc.want {
			t.Errorf("%s: %d overlaps, want %d: %v", tc.name, len(got), tc.want, got)
		}
	}
}

// TestConcurrentUse hammers one cluster from many goroutines (for -race).
func TestConcurrentUse(t *testing.T) {
	c := newCluster(t, Config{Servers: 4, HeartbeatDelay: 2 * time.Millisecond, CompactDuration: time.Millisecond})
	ids := must[[]uint32](t)(c.AddVolumes(40, VolumeSpec{Size: 10 * mib, DeletedBytes: mib, ReplicaPlacement: 1}))
	mc := masterClient(t, c)
	clients := make([]vpb.VolumeServerClient, 4)
	for i := range clients {
		clients[i] = vsClient(t, c.Server(i))
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 50; i++ {
				vid := ids[(g*7+i)%len(ids)]
				vc := clients[(g+i)%4]
				switch i % 5 {
				case 0:
					compact(ctx, vc, vid)
				case 1:
					vc.VacuumVolumeCommit(ctx, &vpb.VacuumVolumeCommitRequest{VolumeId: vid})
				case 2:
					vc.VolumeMarkReadonly(ctx, &vpb.VolumeMarkReadonlyRequest{VolumeId: vid})
				case 3:
					vc.VolumeMarkWritable(ctx, &vpb.VolumeMarkWritableRequest{VolumeId: vid})
				case 4:
					c.Write(vid, 1, 1)
				}
			}
		}()
	}
	for range 2 { // two pollers marshal the shared cached topology concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if resp, err := mc.VolumeList(ctx, &mpb.VolumeListRequest{}); err == nil {
					seaweed.FromVolumeList(resp)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if resp, err := mc.VolumeList(ctx, &mpb.VolumeListRequest{}); err == nil {
				seaweed.FromVolumeList(resp)
			}
			c.InjectFault(Fault{Method: "VolumeStatus", FailNext: 1}).Remove()
			_ = c.Overlaps()
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	ok(t, c.Server(3).Restart())
	ok(t, c.RestartMaster())
	cancel()
	wg.Wait()
}
