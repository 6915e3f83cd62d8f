package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// The simulator's durability check against a deliberately broken EC
// executor (GROUNDSKEEPER_TEST_BREAK, worker/testbreak.go): the same run
// with the correct executor has no violation, the broken one is caught, and
// the violation names the volume with its history.

func violations(c *sim.Cluster) []string {
	var out []string
	for _, v := range c.Durability() {
		out = append(out, "any moment: "+v.String())
	}
	for _, v := range c.DurabilityAtRest() {
		out = append(out, "at rest: "+v.String())
	}
	return out
}

func requireCaught(t *testing.T, c *sim.Cluster, vid uint32, texts ...string) {
	t.Helper()
	got := c.Durability()
	if len(got) != 1 || got[0].VolumeID != vid {
		t.Fatalf("the broken executor is not caught: want one violation of volume %d, got %v", vid, got)
	}
	s := got[0].String()
	t.Logf("caught: %s", s)
	for _, text := range texts {
		if !strings.Contains(s, text) {
			t.Errorf("the violation does not say %q", text)
		}
	}
}

// TestDurabilityCatchesEcDeleteBeforeVerify: the first shard copy fails, so
// the attempt rolls back. The correct executor still has its original; the
// broken one deleted it before spreading, and the rollback tears down the
// only shards.
func TestDurabilityCatchesEcDeleteBeforeVerify(t *testing.T) {
	for _, brk := range []string{"", "ec-delete-before-verify"} {
		t.Run("break="+brk, func(t *testing.T) {
			defer worker.SetTestBreak(brk)()
			e := newSimEnv(t, 6)
			ctx := testCtx(t)
			vid, err := e.c.AddVolume(sim.VolumeSpec{Size: 20 << 20, FileCount: 40, Servers: []int{0}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.c.Write(vid, 1<<20, 5); err != nil {
				t.Fatal(err)
			}
			spec := e.plan(t, &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 1})
			e.c.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", FailNext: 1})
			_, err = worker.NewECExecutor(e.vc).Execute(ctx, spec, nil)
			if err == nil {
				t.Fatal("the attempt succeeded despite the failed shard copy")
			}
			t.Logf("attempt: %v", err)
			if brk == "" {
				if v := violations(e.c); len(v) > 0 {
					t.Fatalf("correct executor: %s", strings.Join(v, "\n"))
				}
				return
			}
			requireCaught(t, e.c, vid, "data lost", "and no EC shards", "VolumeDelete(vol", "VolumeEcShardsGenerate(vol")
		})
	}
}

// TestDurabilityCatchesEcSkipFreeze: a client write arrives while the
// shards are generated. The correct executor froze the replica, so the
// write is refused; the broken one acknowledges it, encodes without it and
// deletes the only replica that had it.
func TestDurabilityCatchesEcSkipFreeze(t *testing.T) {
	for _, brk := range []string{"", "ec-skip-freeze"} {
		t.Run("break="+brk, func(t *testing.T) {
			defer worker.SetTestBreak(brk)()
			e := newSimEnvConfig(t, sim.Config{Servers: 6, MaxVolumesPerServer: 10, EcGenerateDuration: 300 * time.Millisecond})
			ctx := testCtx(t)
			vid, err := e.c.AddVolume(sim.VolumeSpec{Size: 20 << 20, FileCount: 40, Servers: []int{0}})
			if err != nil {
				t.Fatal(err)
			}
			spec := e.plan(t, &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Attempt: 1, Fence: 1})
			wrote := make(chan error, 1)
			go func() {
				deadline := time.Now().Add(20 * time.Second)
				for e.c.CallCount("VolumeEcShardsGenerate") == 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				wrote <- e.c.Write(vid, 1<<20, 1)
			}()
			if _, err := worker.NewECExecutor(e.vc).Execute(ctx, spec, nil); err != nil {
				t.Fatalf("attempt: %v", err)
			}
			werr := <-wrote
			t.Logf("write during the encode: %v", werr)
			if brk == "" {
				if werr == nil {
					t.Fatal("a write to a frozen volume was acknowledged")
				}
				if v := violations(e.c); len(v) > 0 {
					t.Fatalf("correct executor: %s", strings.Join(v, "\n"))
				}
				return
			}
			if werr != nil {
				t.Fatalf("the write the test needs was refused: %v", werr)
			}
			requireCaught(t, e.c, vid, "data lost", "14 of 14 shards", "misses 1 acknowledged writes", "VolumeEcShardsGenerate(vol", "VolumeDelete(vol")
		})
	}
}
