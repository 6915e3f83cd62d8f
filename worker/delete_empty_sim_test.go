package worker_test

import (
	"errors"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

func deleteEmptyTask(vid uint32) *fsmpb.Task {
	return &fsmpb.Task{Id: 11, Type: fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, VolumeId: vid, Attempt: 1, Fence: 3}
}

// held lists the servers (of n) holding vid, and whether any is read-only.
func held(e *simEnv, n int, vid uint32) (on []int, readOnly bool) {
	for i := range n {
		if st, ok := e.c.Server(i).Volume(vid); ok {
			on, readOnly = append(on, i), readOnly || st.ReadOnly
		}
	}
	return on, readOnly
}

// TestDeleteEmptyDeletesEveryReplica: an empty 001 volume, and one whose
// every file is deleted, are deleted on both replicas; the durability
// check stays clean (a volume that held no live data is no loss).
func TestDeleteEmptyDeletesEveryReplica(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	empty := e.volume(t, sim.VolumeSpec{ReplicaPlacement: 1, Servers: []int{0, 1}})
	garbage := e.volume(t, sim.VolumeSpec{Size: 1 << 20, FileCount: 4, DeleteCount: 4, DeletedBytes: 1 << 20, ReplicaPlacement: 1, Servers: []int{1, 2}})
	for _, vid := range []uint32{empty, garbage} {
		spec := e.plan(t, deleteEmptyTask(vid))
		change, err := worker.NewDeleteEmptyExecutor(e.vc).Execute(ctx, spec, nil)
		if err != nil {
			t.Fatalf("volume %d: %v", vid, err)
		}
		if change.GetType() != fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY || change.GetVolumeId() != vid {
			t.Fatalf("capacity change %v", change)
		}
		if on, _ := held(e, 3, vid); len(on) != 0 {
			t.Fatalf("volume %d still on servers %v", vid, on)
		}
	}
	if v := e.c.Durability(); len(v) > 0 {
		t.Fatalf("durability violations after deleting empty volumes: %v", v)
	}
}

// TestDeleteEmptyRefusesLiveFile: a volume written to after detection is
// deleted nowhere and is writable everywhere after the attempt, whether
// the write came before the worker's first check or between its first
// check and its read-only marks (the check after marking sees it); the
// failure is not retryable.
func TestDeleteEmptyRefusesLiveFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		duringRO bool
	}{{"write before the attempt", false}, {"write while marking read-only", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, 3)
			ctx := testCtx(t)
			vid := e.volume(t, sim.VolumeSpec{ReplicaPlacement: 1, Servers: []int{0, 1}})
			spec := e.plan(t, deleteEmptyTask(vid))
			if tc.duringRO {
				e.c.InjectFault(sim.Fault{Method: "VolumeMarkReadonly", VolumeID: vid, FailNext: 1, Pass: true, OnFire: func() {
					if err := e.c.Write(vid, 4096, 1); err != nil {
						t.Errorf("write: %v", err)
					}
				}})
			} else if err := e.c.Write(vid, 4096, 1); err != nil {
				t.Fatal(err)
			}
			_, err := worker.NewDeleteEmptyExecutor(e.vc).Execute(ctx, spec, nil)
			var f *worker.Failure
			if !errors.As(err, &f) || f.Retryable || !f.RolledBack {
				t.Fatalf("Execute = %v; want a failure, rolled back, not retryable", err)
			}
			on, ro := held(e, 3, vid)
			if len(on) != 2 || ro {
				t.Fatalf("volume %d on %v (read-only: %v); want both replicas, writable", vid, on, ro)
			}
			if v := e.c.Durability(); len(v) > 0 {
				t.Fatalf("durability violations: %v", v)
			}
		})
	}
}

// TestDeleteEmptyRollback: a worker restarted after freezing the replicas
// makes them writable again; a replica already read-only by the
// operator's persisted mark stays so.
func TestDeleteEmptyRollback(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{ReplicaPlacement: 1, Servers: []int{0, 1}})
	spec := e.plan(t, deleteEmptyTask(vid))
	for _, i := range []int{0, 1} {
		if err := e.vc.VolumeMarkReadonly(ctx, e.addr(i), vid, i == 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := worker.NewDeleteEmptyExecutor(e.vc).Rollback(ctx, spec); err != nil {
		t.Fatal(err)
	}
	s0, _ := e.c.Server(0).Volume(vid)
	s1, _ := e.c.Server(1).Volume(vid)
	if s0.ReadOnly || !s1.ReadOnly {
		t.Fatalf("after rollback read-only: server 0 %v (want false), server 1 %v (want true: persisted)", s0.ReadOnly, s1.ReadOnly)
	}
}

// TestDeleteEmptyPartialThenRetry: a delete that fails on the second
// replica after the first is gone fails retryably; the retry, planned
// from the replica left (its earlier servers recorded), deletes it. The
// durability check stays clean throughout: what is left holds no file.
func TestDeleteEmptyPartialThenRetry(t *testing.T) {
	e := newSimEnv(t, 3)
	ctx := testCtx(t)
	vid := e.volume(t, sim.VolumeSpec{ReplicaPlacement: 1, Servers: []int{0, 1}})
	task := deleteEmptyTask(vid)
	spec := e.plan(t, task)
	e.c.InjectFault(sim.Fault{Method: "VolumeDelete", VolumeID: vid, Skip: 1, FailNext: 1})
	_, err := worker.NewDeleteEmptyExecutor(e.vc).Execute(ctx, spec, nil)
	var f *worker.Failure
	if !errors.As(err, &f) || !f.Retryable {
		t.Fatalf("Execute = %v; want a retryable failure", err)
	}
	if on, _ := held(e, 3, vid); len(on) != 1 {
		t.Fatalf("volume %d on %v after the failed delete; want one replica left", vid, on)
	}
	if v := e.c.Durability(); len(v) > 0 {
		t.Fatalf("durability violations with one empty replica deleted: %v", v)
	}
	e.c.ClearFaults()
	waitCopies(t, e, vid, 1)
	task.Attempt, task.EarlierServers = 2, spec.GetReplicas()
	if _, err := worker.NewDeleteEmptyExecutor(e.vc).Execute(ctx, e.plan(t, task), nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if on, _ := held(e, 3, vid); len(on) != 0 {
		t.Fatalf("volume %d still on %v after the retry", vid, on)
	}
	if v := e.c.DurabilityAtRest(); len(v) > 0 {
		t.Fatalf("durability violations: %v", v)
	}
}
