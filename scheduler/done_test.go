package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/capacity"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// TestPlanSpecRetryFindsWorkDone: a retried erasure coding or move whose
// end state the master shows is completed, not failed; a first attempt, or a
// retry whose work is only partly visible, is planned (or refused) as usual.
func TestPlanSpecRetryFindsWorkDone(t *testing.T) {
	th := DefaultThresholds()
	// A retry carries the servers its earlier attempts acted on.
	ecTask := func(attempt uint32) *fsmpb.Task {
		t := &fsmpb.Task{Id: 9, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 5, Attempt: attempt, Collection: "c"}
		if attempt > 1 {
			t.EarlierServers = []string{sid(1), sid(2), sid(3), sid(4)}
		}
		return t
	}
	encoded := build(30,
		srv(sid(1), 10).Shards(5, 0, 1, 2, 3),
		srv(sid(2), 10).Shards(5, 4, 5, 6, 7),
		srv(sid(3), 10).Shards(5, 8, 9, 10),
		srv(sid(4), 10).Shards(5, 11, 12, 13),
	)
	// Never done from the topology alone: a finish spec, for the worker
	// to ask every earlier server for an original before it completes.
	spec, err := PlanSpec(ecTask(2), encoded, th)
	var done *AlreadyDone
	if err != nil || len(spec.Replicas) != 0 || len(spec.ShardTargets) != 0 || len(spec.EcShardHolders) != 4 || len(spec.EarlierServers) != 4 {
		t.Fatalf("EC retry with all 14 shards mounted: %v, %v; want a finish spec naming the 4 holders and earlier servers", spec, err)
	}
	// An earlier server away (restarting) may hold an original the
	// topology does not list: wait for it, neither done nor finished.
	away := ecTask(2)
	away.EarlierServers = append(away.EarlierServers, sid(9))
	if spec, err := PlanSpec(away, encoded, th); !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), "earlier server "+sid(9)+" is missing") {
		t.Fatalf("EC retry with all 14 shards mounted, earlier server %s away: %v, %v; want an ErrPlanWait", sid(9), spec, err)
	}
	// Shards moved since (weed shell ec.balance) to servers no attempt
	// used: a finish cannot touch them, but every shard is listed, no
	// replica is, and every earlier server is in the topology, where an
	// original would be listed: done, as a fresh failure would be wrong.
	balanced := build(30,
		srv(sid(1), 10).Shards(5, 0, 1, 2),
		srv(sid(2), 10).Shards(5, 4, 5, 6, 7),
		srv(sid(3), 10).Shards(5, 8, 9, 10),
		srv(sid(4), 10).Shards(5, 11, 12),
		srv(sid(5), 10).Shards(5, 3, 13),
	)
	if _, err := PlanSpec(ecTask(2), balanced, th); !errors.As(err, &done) || len(done.Change.Shards) != placement.TotalShards || done.Change.Shards[3].Server != sid(5) {
		t.Fatalf("EC retry whose shards were moved beyond its earlier servers: %v; want AlreadyDone with the shards where they are", err)
	}
	// The same with an earlier server away (it may hold an original):
	// wait, as for any retry.
	if spec, err := PlanSpec(away, balanced, th); !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), "earlier server "+sid(9)+" is missing") {
		t.Fatalf("EC retry with moved shards, earlier server %s away: %v, %v; want an ErrPlanWait", sid(9), spec, err)
	}
	// A shard missing, or a replica listed: not done, and not the task's
	// to finish.
	for name, topo := range map[string]*seaweed.Topology{
		"13 shards": build(30, srv(sid(1), 10).Shards(5, 0, 1, 2), srv(sid(2), 10).Shards(5, 4, 5, 6, 7), srv(sid(3), 10).Shards(5, 8, 9, 10),
			srv(sid(4), 10).Shards(5, 11, 12), srv(sid(5), 10).Shards(5, 3)),
		"a replica listed": build(30, srv(sid(1), 10, v(5, 7<<20).In("c")).Shards(5, 0, 1, 2), srv(sid(2), 10).Shards(5, 4, 5, 6, 7), srv(sid(3), 10).Shards(5, 8, 9, 10),
			srv(sid(4), 10).Shards(5, 11, 12), srv(sid(5), 10).Shards(5, 3, 13)),
	} {
		if _, err := PlanSpec(ecTask(2), topo, th); errors.As(err, &done) || !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), "already") {
			t.Errorf("EC retry with moved shards, %s: %v; want a plan error saying the volume is already encoded", name, err)
		}
	}
	// Without history (a cluster below fsm.HistoryVersion records none)
	// a retry is told by a started attempt, and the topology is all
	// there is to go by.
	legacy := ecTask(2)
	legacy.EarlierServers = nil
	legacy.StartedAt = now.UnixNano()
	_, err = planSpec(legacy, encoded, time.Time{}, th, false, false)
	if !errors.As(err, &done) {
		t.Fatalf("EC retry without history on a cluster that keeps none: %v, want AlreadyDone", err)
	}
	if c := done.Change; c.TaskId != 9 || c.VolumeId != 5 || c.Type != fsmpb.TaskType_TASK_TYPE_ERASURE_CODING || len(c.Shards) != placement.TotalShards ||
		c.Shards[0].Server != sid(1) || c.Shards[13].Server != sid(4) {
		t.Errorf("EC change %v", c)
	}
	if _, err := PlanSpec(ecTask(1), encoded, th); errors.As(err, &done) || !errors.Is(err, placement.ErrPlan) {
		t.Errorf("EC first attempt on an encoded volume: %v, want a plan error", err)
	}
	if _, err := planSpec(ecTask(1), encoded, time.Time{}, th, false, false); errors.As(err, &done) || !errors.Is(err, placement.ErrPlan) {
		t.Errorf("EC first attempt on an encoded volume, no history kept: %v, want a plan error", err)
	}
	// Requeued by plan waits only: no attempt ran, so the encode the
	// master shows is someone else's (weed shell ec.encode meanwhile).
	waited := ecTask(3)
	waited.EarlierServers = nil
	if _, err := PlanSpec(waited, encoded, th); errors.As(err, &done) || !errors.Is(err, placement.ErrPlan) {
		t.Errorf("EC task that never ran (attempt 3 after plan waits) on an encoded volume: %v, want a plan error", err)
	}
	partial := build(30, srv(sid(1), 10).Shards(5, 0, 1, 2, 3), srv(sid(2), 10).Shards(5, 4, 5, 6, 7))
	if _, err := PlanSpec(ecTask(3), partial, th); errors.As(err, &done) {
		t.Errorf("EC retry with 8 shards: %v, want no AlreadyDone", err)
	}

	mv := func(attempt uint32) *fsmpb.Task {
		t := &fsmpb.Task{Id: 4, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 3, Attempt: attempt, Source: sid(1), Target: sid(2)}
		if attempt > 1 {
			t.EarlierServers = []string{sid(1), sid(2)}
		}
		return t
	}
	moved := build(30, srv(sid(1), 10), srv(sid(2), 10, v(3, 7<<20)), srv(sid(3), 10))
	_, err = PlanSpec(mv(2), moved, th)
	if !errors.As(err, &done) {
		t.Fatalf("move retry with the volume on the target only: %v, want AlreadyDone", err)
	}
	if c := done.Change; c.Source != sid(1) || c.Target != sid(2) || c.OldSize != 7<<20 || c.NewSize != 7<<20 {
		t.Errorf("move change %v", c)
	}
	if !capacity.Reflected(done.Change, moved) {
		t.Error("the change of a move found done is not reflected by the topology it came from")
	}
	if _, err := PlanSpec(mv(1), moved, th); errors.As(err, &done) {
		t.Errorf("move first attempt: %v, want no AlreadyDone", err)
	}
	waitedMv := mv(4)
	waitedMv.EarlierServers = nil
	if _, err := PlanSpec(waitedMv, moved, th); errors.As(err, &done) {
		t.Errorf("move that never ran (attempt 4 after plan waits): %v, want no AlreadyDone", err)
	}
	// No history kept: a retry (an attempt started, none recorded) is
	// judged on its source and target; a task requeued by plan waits only
	// never ran, whatever its attempt number.
	if _, err := planSpec(waitedMv, moved, time.Time{}, th, false, false); errors.As(err, &done) {
		t.Errorf("move that never ran (attempt 4 after plan waits), no history kept: %v, want no AlreadyDone", err)
	}
	waitedMv.StartedAt = now.UnixNano()
	if _, err := planSpec(waitedMv, moved, time.Time{}, th, false, false); !errors.As(err, &done) || done.Change.Source != sid(1) || done.Change.Target != sid(2) {
		t.Errorf("move retry without history on a cluster that keeps none: %v, want AlreadyDone", err)
	}
	both := build(30, srv(sid(1), 10, v(3, 7<<20)), srv(sid(2), 10, v(3, 7<<20)), srv(sid(3), 10))
	if _, err := PlanSpec(mv(2), both, th); errors.As(err, &done) {
		t.Errorf("move retry with the volume still on the source: %v, want no AlreadyDone", err)
	}
}

// TestCompleteDone: the leader completes a task found done itself, through
// the log, with the change the topology shows.
func TestCompleteDone(t *testing.T) {
	s, a := schedulerAtNow()
	f := a.f
	a.applyAll(t,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 3, Source: sid(1), Target: sid(2)}),
		fsm.AssignCmd(1, "w1", []string{sid(1), sid(2)}, &fsmpb.Move{Source: sid(1), Target: sid(2)}),
		fsm.RequeueCmd(1, 0, "", "lease expired", 0, false),
	)
	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	if len(task.EarlierServers) == 0 { // this applier's command version keeps no history
		task.EarlierServers = []string{sid(1), sid(2)}
	}
	moved := build(30, srv(sid(1), 10), srv(sid(2), 10, v(3, 7<<20)))
	_, planErr := PlanSpec(task, moved, DefaultThresholds())
	s.assignOne(context.Background(), task, "w9", nil, planErr)
	f.Read(func(st *fsm.State) {
		got, _ := st.Task(1)
		if got.State != fsmpb.TaskState_TASK_STATE_COMPLETED || got.WorkerId != schedulerWorker || got.Attempt != 2 {
			t.Fatalf("task after completeDone: %v", got)
		}
		if cs := st.CapacityChanges(); len(cs) != 1 || cs[0].TaskId != 1 || cs[0].Target != sid(2) {
			t.Errorf("changes %v", cs)
		}
	})
}

// TestAssignWaitRequeues: a retried move that must wait for an earlier
// attempt's server is requeued until the next poll, never failed (however
// often it waits: a wait is no retry) and never sent to a worker.
func TestAssignWaitRequeues(t *testing.T) {
	f := fsm.New()
	a := &fsmApplier{f: f, at: now}
	s := New(Config{Now: func() time.Time { return now }, MaxRetries: 3}, a, f, nil)
	a.applyAll(t,
		fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 3}),
		fsm.AssignCmd(1, "w1", nil, &fsmpb.Move{Source: swa(1), Target: swa(9)}),
		fsm.RequeueCmd(1, 0, "", "lease expired", 0, false),
	)
	var task *fsmpb.Task
	f.Read(func(st *fsm.State) { task, _ = st.Task(1) })
	if len(task.EarlierMoves) == 0 { // this applier's command version keeps no history
		task.EarlierMoves = []*fsmpb.Move{{Source: swa(1), Target: swa(9)}}
	}
	// vs9, the earlier target, is away.
	topo := build(30, srv(sid(1), 10, v(3, 7<<20)), srv(sid(2), 10))
	spec, planErr := PlanSpec(task, topo, DefaultThresholds())
	if !errors.Is(planErr, placement.ErrPlanWait) {
		t.Fatalf("PlanSpec = %v, %v; want ErrPlanWait", spec, planErr)
	}
	wait := s.cfg.DetectInterval
	for i := 0; i < 6; i++ { // twice MaxRetries
		s.assignOne(context.Background(), task, "w9", spec, planErr)
		f.Read(func(st *fsm.State) {
			got, _ := st.Task(1)
			if got.State != fsmpb.TaskState_TASK_STATE_PENDING || got.RetryCount != 0 || got.NotBefore != now.Add(wait).UnixNano() || !contains(got.LastError, "waiting for earlier move target "+swa(9)) {
				t.Fatalf("task after wait %d: %v; want pending, no retry counted, for %v (the next poll, doubling while the reason stays), the reason", i+1, got, wait)
			}
			task, _ = st.Task(1)
		})
		if len(task.EarlierMoves) == 0 {
			task.EarlierMoves = []*fsmpb.Move{{Source: swa(1), Target: swa(9)}}
		}
		wait = min(2*wait, MaxWaitBackoff)
	}
	// Another reason starts again at the next poll.
	task.LastError = "another reason"
	if got := waitBackoff(task, "waiting for earlier move target", s.cfg.DetectInterval); got != s.cfg.DetectInterval {
		t.Errorf("wait for a new reason: %v, want %v", got, s.cfg.DetectInterval)
	}
}
