package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// writeReplicated assigns n ids on a volume with the given replication and
// uploads them through the primary, which replicates each write.
func (c *weedCluster) writeReplicated(t *testing.T, collection, replication string, n int) (uint32, assignResult) {
	t.Helper()
	var a assignResult
	c.getJSON(t, fmt.Sprintf("http://%s/dir/assign?count=%d&collection=%s&replication=%s", c.masterHTTP, n+10, collection, replication), &a)
	if a.Error != "" || a.Fid == "" {
		t.Fatalf("assign in %s: %+v", collection, a)
	}
	vidStr, _, _ := strings.Cut(a.Fid, ",")
	vid, err := strconv.ParseUint(vidStr, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		fid := a.Fid
		if i > 0 {
			fid = fmt.Sprintf("%s_%d", a.Fid, i)
		}
		c.upload(t, a.URL, fid, bytes.Repeat([]byte{byte(i)}, 4096+i))
	}
	return uint32(vid), a
}

// uploadLocal writes a needle to one replica only (type=replicate: the
// server takes it as a replication write and does not fan it out), as a
// replicated write whose fan-out failed half-way leaves it.
func (c *weedCluster) uploadLocal(t *testing.T, server, fid string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "x.bin")
	fw.Write(bytes.Repeat([]byte{7}, 5000))
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s/%s?type=replicate", server, fid), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("local upload %s to %s: %s: %s", fid, server, resp.Status, b)
	}
}

// TestExecutorsReplicaAgreementAndRetriesWeed runs, against real SeaweedFS,
// the decisions that read replicas' needle sets: erasure coding of two
// replicas at different compaction revisions (same needles: encoded; one
// replica with a needle the other lacks: refused), and a move retried after
// an abandoned attempt left its copy on the target (adopted).
func TestExecutorsReplicaAgreementAndRetriesWeed(t *testing.T) {
	t.Parallel()
	c := startWeedCluster(t, 5)
	ec := worker.NewECExecutor(c.vc)

	plan := func(t *testing.T, task *fsmpb.Task, ready func(v *seaweed.Volume) bool) *pb.TaskSpec {
		t.Helper()
		topo := c.waitTopology(t, "the master to list the volume", func(topo *seaweed.Topology) (bool, string) {
			v := topo.Volumes[task.VolumeId]
			return v != nil && ready(v), fmt.Sprintf("%+v", v)
		})
		spec, err := scheduler.PlanSpec(task, topo, scheduler.DefaultThresholds())
		if err != nil {
			t.Fatalf("PlanSpec: %v", err)
		}
		return spec
	}

	t.Run("replicas at different revisions with the same needles are encoded", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		vid, a := c.writeReplicated(t, "agree", "001", 12)
		files := make([]*storedFile, 3)
		for i := range files {
			files[i] = &storedFile{Fid: fmt.Sprintf("%s_%d", a.Fid, i+1)}
		}
		c.deleteFiles(t, a.URL, files)
		task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: "agree", Attempt: 1}
		spec := plan(t, task, func(v *seaweed.Volume) bool { return len(v.Replicas) == 2 && v.DeleteCount >= 3 })
		// Vacuum one replica only.
		if err := c.vc.VacuumVolumeCompact(ctx, spec.Replicas[0], vid, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.vc.VacuumVolumeCommit(ctx, spec.Replicas[0], vid); err != nil {
			t.Fatal(err)
		}
		s0, err0 := c.vc.ReadVolumeFileStatus(ctx, spec.Replicas[0], vid)
		s1, err1 := c.vc.ReadVolumeFileStatus(ctx, spec.Replicas[1], vid)
		if err := errors.Join(err0, err1); err != nil || s0.CompactionRevision == s1.CompactionRevision {
			t.Fatalf("revisions %d and %d (%v); want different", s0.GetCompactionRevision(), s1.GetCompactionRevision(), err)
		}
		if _, err := ec.Execute(ctx, spec, nil); err != nil {
			t.Fatalf("encode: %v", err)
		}
		c.waitTopology(t, "14 shards, each listed once", func(topo *seaweed.Topology) (bool, string) {
			e := topo.EcVolumes[vid]
			if e == nil || e.ShardCount() != seaweed.EcTotalShards || topo.Volumes[vid] != nil {
				return false, fmt.Sprintf("%+v", e)
			}
			for _, h := range e.Shards {
				if len(h) != 1 {
					return false, fmt.Sprintf("%+v", e.Shards)
				}
			}
			return true, ""
		})
	})

	t.Run("a replica holding a needle the other lacks is refused", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		vid, a := c.writeReplicated(t, "diverge", "001", 8)
		task := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: "diverge", Attempt: 1}
		spec := plan(t, task, func(v *seaweed.Volume) bool { return len(v.Replicas) == 2 && v.FileCount >= 8 })
		c.uploadLocal(t, httpOf(t, spec.Replicas[1]), fmt.Sprintf("%s_%d", a.Fid, 9))
		_, err := ec.Execute(ctx, spec, nil)
		f := requireFailure(t, err, worker.StepEcFreeze)
		if f.Retryable || !f.RolledBack || !strings.Contains(err.Error(), "disagree") || !strings.Contains(err.Error(), spec.Replicas[1]) {
			t.Fatalf("want a permanent, rolled back refusal naming %s: %v", spec.Replicas[1], err)
		}
		t.Logf("refused as expected: %v", err)
		requireNoEcShards(t, c, vid)
		requireWritableOn(t, c, vid, spec.Replicas...)
	})

	// An encode that deleted one of two originals and died: its retry
	// finishes (the survivor holds what the generation holds) or refuses
	// (the survivor took a write since), and never sweeps the generation.
	for _, diverge := range []bool{false, true} {
		t.Run(fmt.Sprintf("an EC retry after one original was deleted (survivor diverged %v)", diverge), func(t *testing.T) {
			ctx, cancel := execCtx(t)
			defer cancel()
			coll := "half" // one collection: the cluster has few free slots
			vid, a := c.writeReplicated(t, coll, "001", 8)
			task := &fsmpb.Task{Id: 5, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: vid, Collection: coll, Attempt: 1}
			first := plan(t, task, func(v *seaweed.Volume) bool { return len(v.Replicas) == 2 && v.FileCount >= 8 })
			survivor := first.Replicas[1]
			// The first attempt as far as its first delete: encode over
			// the first replica only (the survivor holds the same needles).
			partial := proto.Clone(first).(*pb.TaskSpec)
			partial.Replicas = partial.Replicas[:1]
			if _, err := ec.Execute(ctx, partial, nil); err != nil {
				t.Fatalf("first attempt: %v", err)
			}
			if diverge {
				c.uploadLocal(t, httpOf(t, survivor), fmt.Sprintf("%s_%d", a.Fid, 9))
			}
			retryTask := &fsmpb.Task{Id: 5, Type: task.Type, VolumeId: vid, Collection: coll, Attempt: 2, EarlierServers: scheduler.SpecServers(first)}
			retry := plan(t, retryTask, func(v *seaweed.Volume) bool { return len(v.Replicas) == 1 })
			_, err := ec.Execute(ctx, retry, nil)
			if diverge {
				f := requireFailure(t, err, worker.StepEcVerify)
				if f.Retryable || !strings.Contains(err.Error(), "differ") {
					t.Fatalf("want a permanent refusal: %v", err)
				}
				t.Logf("refused as expected: %v", err)
			} else if err != nil {
				t.Fatalf("retry: %v", err)
			}
			c.waitTopology(t, "14 shards, each listed once", func(topo *seaweed.Topology) (bool, string) {
				e := topo.EcVolumes[vid]
				if e == nil || e.ShardCount() != seaweed.EcTotalShards || (topo.Volumes[vid] != nil) != diverge {
					return false, fmt.Sprintf("%+v regular %v", e, topo.Volumes[vid] != nil)
				}
				for _, h := range e.Shards {
					if len(h) != 1 {
						return false, fmt.Sprintf("%+v", e.Shards)
					}
				}
				return true, ""
			})
		})
	}

	t.Run("a move retried after an abandoned copy adopts it", func(t *testing.T) {
		ctx, cancel := execCtx(t)
		defer cancel()
		files := c.writeFiles(t, "move", 10, 8<<10)
		vid := files[0].Vid
		task := &fsmpb.Task{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: vid, Collection: "move", Attempt: 1}
		first := plan(t, task, func(v *seaweed.Volume) bool { return v.FileCount >= 10 })
		// The abandoned attempt: source frozen, copy made, then killed.
		if err := c.vc.VolumeMarkReadonly(ctx, first.Source, vid, false); err != nil {
			t.Fatal(err)
		}
		if _, err := c.vc.VolumeCopy(ctx, first.Target, vid, "move", first.Source, "", nil); err != nil {
			t.Fatal(err)
		}
		retryTask := &fsmpb.Task{Id: 3, Type: task.Type, VolumeId: vid, Collection: "move", Attempt: 2, EarlierServers: scheduler.SpecServers(first),
			EarlierMoves: []*fsmpb.Move{scheduler.SpecMove(first)}}
		retry := plan(t, retryTask, func(v *seaweed.Volume) bool { return len(v.Replicas) == 2 })
		if retry.Target != first.Target {
			t.Fatalf("retry targets %s, want the earlier target %s", retry.Target, first.Target)
		}
		if _, err := worker.NewBalanceExecutor(c.vc).Execute(ctx, retry, nil); err != nil {
			t.Fatalf("retry: %v", err)
		}
		c.waitTopology(t, "the volume only on the target", func(topo *seaweed.Topology) (bool, string) {
			v := topo.Volumes[vid]
			return v != nil && len(v.Replicas) == 1 && v.Replicas[0].Server.Addr.String() == first.Target, fmt.Sprintf("%+v", v)
		})
		c.checkFiles(t, files, httpOf(t, first.Target))
		requireWritableOn(t, c, vid, first.Target)
	})
}
