package admin_test

// In-process system tests: a simulated SeaweedFS (real gRPC, in memory),
// three admin nodes in a raft quorum started with admin.StartNodes (the
// harness is admintest), and real workers running the real executors. Faults are injected into the
// simulator (failed or slow RPCs, a master outage), into the admins (a
// leader crash) and between a worker and the admins (a network cut).
// Every test checks the outcome on the simulator's side, not only in the
// replicated state. Set GK_TEST_LOG=info (or debug) to see the logs.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

const (
	vacuumT  = fsmpb.TaskType_TASK_TYPE_VACUUM
	ecT      = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	balanceT = fsmpb.TaskType_TASK_TYPE_BALANCE

	pendingS   = fsmpb.TaskState_TASK_STATE_PENDING
	runningS   = fsmpb.TaskState_TASK_STATE_RUNNING
	completedS = fsmpb.TaskState_TASK_STATE_COMPLETED
	failedS    = fsmpb.TaskState_TASK_STATE_FAILED
)

// TestSystemCompletesAllWork: every kind of work the detectors find is done
// for real, the simulator ends in the expected state, nothing overlapped,
// the three admins agree, and every capacity change is retired once the
// master reflects it.
func TestSystemCompletesAllWork(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(5))
	vac := map[uint32]int{s.AddOn(admintest.GarbageSpec, 0): 0, s.AddOn(admintest.GarbageSpec, 1): 1}
	ecVol := s.AddOn(admintest.FullQuietSpec(), 2)
	for server, n := range []int{2, 2, 2, 3} { // server 4 starts empty
		for i := 0; i < n; i++ {
			s.AddOn(admintest.FillerSpec, server)
		}
	}
	sc := admintest.SchedConfig()
	sc.Thresholds.BalanceImbalance = 0.2
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.StartWorker("w2", s.GRPCAddrs(), 2)

	tasks := s.WaitQuiet()
	lastMove := map[uint32]*fsmpb.Task{}
	kinds := map[fsmpb.TaskType]int{}
	for _, tk := range tasks {
		kinds[tk.Type]++
		if tk.State != completedS || tk.Attempt != 1 {
			t.Errorf("task %d (%s of volume %d) ended %s on attempt %d (%q); want completed on attempt 1",
				tk.Id, fsm.TypeName(tk.Type), tk.VolumeId, fsm.StateName(tk.State), tk.Attempt, tk.LastError)
		}
		switch tk.Type {
		case vacuumT:
			if _, ok := vac[tk.VolumeId]; !ok {
				t.Errorf("unexpected vacuum task %d for volume %d", tk.Id, tk.VolumeId)
			}
		case ecT:
			if tk.VolumeId != ecVol {
				t.Errorf("unexpected erasure-coding task %d for volume %d", tk.Id, tk.VolumeId)
			}
		case balanceT:
			lastMove[tk.VolumeId] = tk
		}
	}
	if kinds[vacuumT] != 2 || kinds[ecT] != 1 || kinds[balanceT] == 0 {
		t.Fatalf("tasks by type: %d vacuum, %d erasure coding, %d balance; want 2, 1 and at least 1",
			kinds[vacuumT], kinds[ecT], kinds[balanceT])
	}

	var perServer []int
	for _, srv := range s.Sim.Servers() {
		perServer = append(perServer, len(srv.Volumes()))
	}
	t.Logf("%d tasks: %d vacuum, %d erasure coding, %d balance; volumes per server now %v",
		len(tasks), kinds[vacuumT], kinds[ecT], kinds[balanceT], perServer)

	// The simulator's side.
	for vid, server := range vac {
		s.CheckVacuumed(server, vid, 2*admintest.MB)
	}
	s.CheckErasureCoded(ecVol)
	for vid, tk := range lastMove {
		target, ok1 := s.Sim.ServerByAddress(tk.Target)
		source, ok2 := s.Sim.ServerByAddress(tk.Source)
		if !ok1 || !ok2 {
			t.Errorf("balance task %d names unknown servers %s -> %s", tk.Id, tk.Source, tk.Target)
			continue
		}
		if h := s.Holders(vid); len(h) != 1 || h[0] != target.Index() {
			t.Errorf("volume %d moved from server %d to %d is on servers %v; want the target only", vid, source.Index(), target.Index(), h)
		}
		if v, ok := target.Volume(vid); ok && (v.ReadOnly || v.Size != admintest.FillerSpec.Size) {
			t.Errorf("volume %d on its new server: read-only %v, size %d; want writable, %d", vid, v.ReadOnly, v.Size, admintest.FillerSpec.Size)
		}
	}
	if h := s.Holders(ecVol); len(h) != 0 {
		t.Errorf("erasure-coded volume %d still has replicas on %v", ecVol, h)
	}
	lo, hi := perServer[0], perServer[0]
	for _, n := range perServer {
		lo, hi = min(lo, n), max(hi, n)
	}
	if perServer[4] == 0 || hi-lo > 1 {
		t.Errorf("volumes per server %v after balancing; want the empty server filled and at most one volume of difference", perServer)
	}
	s.CheckNoOverlaps()
	s.WaitHashes(0, 1, 2)
}

// TestSystemRetriesFailedStep: a step that fails once is rolled back, the
// task waits out its backoff and the second attempt completes.
func TestSystemRetriesFailedStep(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vacVol := s.AddOn(admintest.GarbageSpec, 0)
	ecVol := s.AddOn(admintest.FullQuietSpec(), 1)
	vacFault := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vacVol, FailNext: 1})
	ecFault := s.Sim.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: ecVol, FailNext: 1})
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.StartWorker("w2", s.GRPCAddrs(), 1)

	requeued := func(t *fsmpb.Task) bool { return t.State == pendingS && t.Attempt == 2 }
	// After attempt 1 of the vacuum failed: the volume is as it was.
	vt := s.WaitTask(vacVol, "attempt 1 failed and requeued", requeued)
	vstate := s.Replica(0, vacVol)
	if now := s.Task(vt.Id); requeued(now) { // still backing off: the snapshot shows the rolled-back state
		if vstate.ReadOnly || vstate.Compacting || vstate.Compacted || vstate.DeletedBytes != admintest.GarbageSpec.DeletedBytes {
			t.Errorf("volume %d after the failed attempt: %+v; want untouched and writable", vacVol, vstate)
		}
	} else {
		t.Logf("vacuum attempt 2 started before the rolled-back state could be checked")
	}
	admintest.WantContains(t, "last error after the failed compaction", vt.LastError, worker.StepVacuumCompact, "injected fault")
	if vt.RetryCount != 1 {
		t.Errorf("vacuum task retry count %d after one failure, want 1", vt.RetryCount)
	}
	if err := s.Sim.Write(vacVol, 4096, 1); err != nil {
		t.Errorf("volume %d is not writable after the rolled-back attempt: %v", vacVol, err)
	}

	// After attempt 1 of the erasure coding failed: no shard anywhere, the
	// original writable again.
	et := s.WaitTask(ecVol, "attempt 1 failed and requeued", requeued)
	holders, files := s.Holders(ecVol), s.ECFiles(ecVol)
	var ro bool
	if len(holders) == 1 {
		ro = s.Replica(holders[0], ecVol).ReadOnly
	}
	if now := s.Task(et.Id); requeued(now) {
		if len(holders) != 1 || holders[0] != 1 || ro || files != 0 {
			t.Errorf("volume %d after the failed attempt: replicas on %v (read-only %v), %d shard files; want the writable original on server 1 and no shards",
				ecVol, holders, ro, files)
		}
	} else {
		t.Logf("erasure-coding attempt 2 started before the rolled-back state could be checked")
	}
	admintest.WantContains(t, "last error after the failed shard copy", et.LastError, worker.StepEcSpread, "injected fault")

	for _, vid := range []uint32{vacVol, ecVol} {
		done := s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
		if done.State != completedS || done.Attempt != 2 || done.RetryCount != 1 {
			t.Errorf("task %d of volume %d ended %s on attempt %d with %d retries (%q); want completed on attempt 2 after 1 retry",
				done.Id, vid, fsm.StateName(done.State), done.Attempt, done.RetryCount, done.LastError)
		}
	}
	s.CheckVacuumed(0, vacVol, 2*admintest.MB+4096)
	s.CheckErasureCoded(ecVol)
	if vacFault.Fired() != 1 || ecFault.Fired() != 1 {
		t.Errorf("faults fired %d and %d times, want once each", vacFault.Fired(), ecFault.Fired())
	}
	s.CheckNoOverlaps()
}

// TestSystemGivesUpWithReason: a step that always fails exhausts the
// retries; the task fails with the step and the error, the volume is left
// as it was, and detection leaves it alone for the failure cooldown.
func TestSystemGivesUpWithReason(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 2)
	fault := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vid, FailNext: 1000})
	sc := admintest.SchedConfig() // MaxRetries 2: three attempts
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 1)

	failed := s.WaitTask(vid, "failed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if failed.State != failedS || failed.Attempt != sc.MaxRetries+1 || failed.RetryCount != sc.MaxRetries {
		t.Fatalf("task %d ended %s on attempt %d after %d retries; want failed on attempt %d after %d",
			failed.Id, fsm.StateName(failed.State), failed.Attempt, failed.RetryCount, sc.MaxRetries+1, sc.MaxRetries)
	}
	admintest.WantContains(t, "last error", failed.LastError, worker.StepVacuumCompact, "injected fault", "gave up after 2 retries")
	if n := fault.Fired(); n != int(sc.MaxRetries)+1 {
		t.Errorf("the compaction was tried %d times, want %d", n, sc.MaxRetries+1)
	}
	s.CheckIntact(2, vid, admintest.GarbageSpec.Size, admintest.GarbageSpec.DeletedBytes)
	if err := s.Sim.Write(vid, 4096, 1); err != nil {
		t.Errorf("volume %d is not writable after the task gave up: %v", vid, err)
	}
	// The volume still has garbage, but the failure cooldown keeps
	// detection away from it.
	s.WaitPolls(3)
	if ts := s.TasksFor(vid); len(ts) != 1 {
		t.Errorf("volume %d has %d tasks after its task failed; want no new task during the cooldown", vid, len(ts))
	}
	s.CheckNoOverlaps()
}

// TestSystemWorkerVanishes: a worker cut off from the admins mid-task stops
// and rolls back its attempt before its lease (plus grace) runs out on the
// leader; the task is requeued as attempt 2 and completes on another
// worker without any overlap on the volume, and reports carrying the old
// fence are refused.
func TestSystemWorkerVanishes(t *testing.T) {
	cfg := admintest.SimConfig(4)
	cfg.CompactDuration = 4 * time.Second
	// wA's compaction must still run when its link is cut, however slow
	// the machine: the simulator's slow operations wait until the cut.
	held := newHeldClock()
	t.Cleanup(held.release)
	cfg.Clock = held
	s := newSystem(t, cfg)
	vid := s.AddOn(admintest.GarbageSpec, 1)
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	// Worker A reaches the leader only through a proxy that can be cut.
	proxy := admintest.StartProxy(t, s.Cfgs[leader].GRPCAddr)
	a := s.StartWorker("wA", []string{proxy.Addr()}, 1)
	first := s.WaitTask(vid, "compacting on wA", func(t *fsmpb.Task) bool { return admintest.InCompaction(t) && t.WorkerId == "wA" })
	testutil.EventuallyTrue(t, admintest.Wait, "the compaction to run on the volume server", func() bool { return s.Replica(1, vid).Compacting })
	s.StartWorker("wB", s.GRPCAddrs(), 1)
	s.WaitConnected("wB")

	proxy.Cut()
	cutAt := time.Now()
	held.release()
	second := s.WaitTask(vid, "requeued onto wB", func(t *fsmpb.Task) bool { return t.Attempt == 2 && t.WorkerId == "wB" })
	t.Logf("attempt 2 assigned %s after the cut", time.Unix(0, second.AssignedAt).Sub(cutAt).Round(time.Millisecond))
	if second.RetryCount != 0 {
		t.Errorf("a lost worker counted as a failed attempt: retry count %d", second.RetryCount)
	}
	done := s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if done.State != completedS || done.Attempt != 2 || done.WorkerId != "wB" || done.Fence == first.Fence {
		t.Fatalf("task ended %s on attempt %d by %s with fence %d (first fence %d); want completed on attempt 2 by wB",
			fsm.StateName(done.State), done.Attempt, done.WorkerId, done.Fence, first.Fence)
	}
	s.CheckVacuumed(1, vid, 2*admintest.MB)

	// Every operation of A's attempt ended before the first of B's began.
	ops := s.OpsOf(vid)
	var lastA, firstB time.Time
	sawA := false
	for _, o := range ops {
		switch o.Fence {
		case fenceStr(first.Fence):
			sawA = true
			if o.End.After(lastA) {
				lastA = o.End
			}
		case fenceStr(done.Fence):
			if firstB.IsZero() || o.Start.Before(firstB) {
				firstB = o.Start
			}
		default:
			t.Errorf("operation of an unknown attempt: %s", o)
		}
	}
	if !sawA || firstB.IsZero() || !lastA.Before(firstB) {
		t.Errorf("attempt 1 (fence %d) must end before attempt 2 (fence %d) starts:%s", first.Fence, done.Fence, admintest.OpsString(ops))
	} else {
		t.Logf("attempt 1 stopped %s after the cut, %s before attempt 2 began",
			lastA.Sub(cutAt).Round(time.Millisecond), firstB.Sub(lastA).Round(time.Millisecond))
	}
	if ops[0].Method != "VacuumVolumeCompact" || !strings.Contains(ops[0].Err, "interrupted") {
		t.Errorf("the cut-off worker's compaction should have been interrupted:%s", admintest.OpsString(ops))
	}
	s.CheckNoOverlaps()

	// A late completion from A's attempt, over a worker session: refused.
	a.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	leader = s.WaitLeader()
	stream, welcome, err := s.RawSession(ctx, s.Cfgs[leader].GRPCAddr, &pb.Hello{WorkerId: "wA",
		Capabilities: []fsmpb.TaskType{balanceT}, MaxConcurrent: 1}) // balance: nothing to be given
	if err != nil || welcome.GetWelcome() == nil {
		t.Fatalf("raw session: %v, first message %v", err, welcome)
	}
	late := &pb.TaskCompleted{TaskId: done.Id, Fence: first.Fence, Change: &fsmpb.CapacityChange{OldSize: admintest.GarbageSpec.Size, NewSize: 1}}
	if err := stream.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Completed{Completed: late}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the ack of the late completion: %v", err)
		}
		if ack := m.GetAck(); ack != nil && ack.TaskId == done.Id {
			if ack.Accepted || !strings.Contains(ack.Error, "stale") {
				t.Errorf("late completion with the old fence: ack %v; want refused as stale", ack)
			}
			break
		}
	}
	// The same report as a raft command through the leader: STALE_FENCE.
	res, err := admin.Propose(ctx, s.Node(leader), &fsmpb.Command{Body: &fsmpb.Command_CompleteTask{CompleteTask: &fsmpb.CompleteTask{
		TaskId: done.Id, Fence: first.Fence, Change: late.Change}}})
	if err != nil {
		t.Fatal(err)
	}
	if rerr := fsm.ResultError(res); !errors.Is(rerr, fsm.ErrStaleFence) {
		t.Errorf("CompleteTask with the old fence: %v (code %s); want STALE_FENCE", rerr, res.ErrorCode)
	}
	if now := s.Task(done.Id); !proto.Equal(now, done) {
		t.Errorf("the refused reports changed the task:\n got %v\nwant %v", now, done)
	}
}

func fenceStr(f uint64) string { return strconv.FormatUint(f, 10) }

// TestSystemLeaderFailover: the leader crashes while tasks run; a new
// leader is elected, the workers reconnect and re-attach their attempts
// (same attempt, same fence), the tasks complete, the survivors agree, and
// the old leader catches up when it comes back.
func TestSystemLeaderFailover(t *testing.T) {
	cfg := admintest.SimConfig(4)
	cfg.CompactDuration = 7 * time.Second
	s := newSystem(t, cfg)
	vols := map[uint32]int{}
	for i := 0; i < 3; i++ {
		vols[s.AddOn(admintest.GarbageSpec, i)] = i
	}
	sc := admintest.SchedConfig()
	// A failover (noticing the dead leader, electing, the workers
	// reconnecting) must fit in a lease, or workers rightly give up.
	sc.Lease, sc.Grace = 6*time.Second, 2*time.Second
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.StartWorker("w2", s.GRPCAddrs(), 2)

	before := map[uint32]*fsmpb.Task{}
	for vid := range vols {
		before[vid] = s.WaitTask(vid, "compacting", admintest.InCompaction)
	}
	old := s.Leader()
	crashAt := time.Now()
	s.StopNode(old)
	leader := s.WaitLeader()
	s.WaitConnected("w1", "w2")
	t.Logf("leader %s -> %s, workers back after %s", s.Cfgs[old].ID, s.Cfgs[leader].ID, time.Since(crashAt).Round(time.Millisecond))
	for _, tk := range before {
		if now := s.Task(tk.Id); admintest.Active(now) && (now.Attempt != 1 || now.Fence != tk.Fence) {
			t.Errorf("task %d was requeued by the failover: attempt %d, fence %d -> %d", tk.Id, now.Attempt, tk.Fence, now.Fence)
		}
	}
	for vid, tk := range before {
		done := s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
		if done.State != completedS || done.Attempt != 1 || done.Fence != tk.Fence || done.WorkerId != tk.WorkerId {
			t.Errorf("task %d ended %s on attempt %d by %s with fence %d (%q); want completed by the same attempt (1, %s, fence %d)",
				done.Id, fsm.StateName(done.State), done.Attempt, done.WorkerId, done.Fence, done.LastError, tk.WorkerId, tk.Fence)
		}
		s.CheckVacuumed(vols[vid], vid, 2*admintest.MB)
	}
	s.CheckNoOverlaps()
	s.WaitQuiet()
	var alive []int
	for i := range s.Cfgs {
		if i != old {
			alive = append(alive, i)
		}
	}
	h := s.WaitHashes(alive...)
	s.StartNode(old)
	if h2 := s.WaitHashes(0, 1, 2); h2 != h {
		t.Logf("state moved on while the old leader caught up (%s -> %s)", h[:12], h2[:12])
	}
}

// TestSystemMasterOutage: the SeaweedFS master goes down while a task
// runs. The task finishes (workers talk to volume servers), its completion
// is committed as a capacity change that stays unretired while the master
// is down; nothing is detected meanwhile; after the restart the change is
// retired only once the master reflects it, and nothing is proposed from
// the partial topology the master serves while volume servers re-register.
func TestSystemMasterOutage(t *testing.T) {
	cfg := admintest.SimConfig(6)
	cfg.CompactDuration = 3 * time.Second
	// After the restart the servers re-register one every 1.5 s, server 5
	// last: a partial topology for longer than three detection intervals,
	// even after the leader's reconnection backoff.
	cfg.MasterRefillDelay = 9 * time.Second
	last := cfg.Servers - 1
	s := newSystem(t, cfg)
	vid := s.AddOn(admintest.GarbageSpec, last)
	// Two replicas, on the first and the last server to re-register.
	twin := s.AddOn(sim.VolumeSpec{Size: 4 * admintest.MB, FileCount: 400}, 0, last)
	sc := admintest.SchedConfig()
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 2)

	s.WaitTask(vid, "compacting", admintest.InCompaction)
	stopAt := time.Now()
	s.Sim.StopMaster()
	done := s.WaitTask(vid, "completed with the master down", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if done.State != completedS {
		t.Fatalf("task %d ended %s (%q) while the master was down; want completed", done.Id, fsm.StateName(done.State), done.LastError)
	}
	if !admintest.HasChange(s.Changes(), done.Id) {
		t.Fatalf("the completion of task %d was not committed as a capacity change", done.Id)
	}
	s.CheckVacuumed(last, vid, 2*admintest.MB)
	// Every node shows the outage in its metrics: the master unreachable,
	// and the topology the oracle answers from older than the outage.
	for i := range s.Cfgs {
		n := s.Node(i)
		testutil.EventuallyTrue(t, 10*time.Second, "a"+strconv.Itoa(i+1)+"'s metrics to show the master unreachable", func() bool {
			body := admintest.MetricsBody(t, n)
			down, _ := admintest.MetricValue(body, "groundskeeper_master_reachable")
			age, _ := admintest.MetricValue(body, "groundskeeper_topology_age_seconds")
			servers, _ := admintest.MetricValue(body, "groundskeeper_topology_servers")
			return down == 0 && age >= time.Since(stopAt).Seconds()-0.5 && servers == float64(cfg.Servers)
		})
	}
	// Garbage the master cannot report yet.
	if err := s.Sim.DeleteData(twin, 2*admintest.MB, 200); err != nil {
		t.Fatal(err)
	}
	// The outage lasts three detection intervals; meanwhile nothing changes.
	for until := time.Now().Add(3 * sc.DetectInterval); time.Now().Before(until); time.Sleep(50 * time.Millisecond) {
		if !admintest.HasChange(s.Changes(), done.Id) {
			t.Fatalf("the change of task %d was retired while the master was down", done.Id)
		}
		if n := len(s.Tasks()); n != 1 {
			t.Fatalf("%d tasks exist while the master is down; want nothing new proposed", n)
		}
	}

	restartAt := time.Now()
	if err := s.Sim.StartMaster(); err != nil {
		t.Fatal(err)
	}
	refilled := restartAt.Add(cfg.MasterRefillDelay)
	testutil.EventuallyTrue(t, admintest.Wait, "the change to retire after the restart", func() bool {
		known := s.Sim.RegisteredServers()
		retired := !admintest.HasChange(s.Changes(), done.Id)
		if retired && known < cfg.Servers && s.Sim.RegisteredServers() < cfg.Servers {
			t.Errorf("the change of task %d (volume %d on the server the master hears from last) was retired %s after the restart, while the master knew %d of %d servers",
				done.Id, vid, time.Since(restartAt).Round(time.Millisecond), known, cfg.Servers)
		}
		return retired
	})

	tasks := s.WaitQuiet()
	for _, tk := range tasks {
		created := time.Unix(0, tk.CreatedAt)
		if created.After(stopAt) && created.Before(refilled) {
			t.Errorf("task %d (%s of volume %d) was proposed %s after the master restart, from a partial topology (refill takes %s)",
				tk.Id, fsm.TypeName(tk.Type), tk.VolumeId, created.Sub(restartAt).Round(time.Millisecond), cfg.MasterRefillDelay)
		}
	}
	ts := s.TasksFor(twin)
	if len(ts) != 1 || ts[0].Type != vacuumT || ts[0].State != completedS {
		t.Errorf("volume %d (garbage made during the outage): tasks %v; want one completed vacuum", twin, ts)
	}
	s.CheckVacuumed(0, twin, 2*admintest.MB)
	s.CheckVacuumed(last, twin, 2*admintest.MB)
	s.CheckNoOverlaps()
}

// TestSystemUnknownVolume: a manual task for a volume the master does not
// know fails with "not found" instead of being retried.
func TestSystemUnknownVolume(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	s.AddOn(admintest.FillerSpec, 0)
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	leader := s.WaitConnected("w1")
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	// Submitted through a follower, which forwards it.
	resp, err := s.AdminClient((leader+1)%3).SubmitTask(ctx, &pb.SubmitTaskRequest{Type: vacuumT, VolumeId: 4242})
	if err != nil {
		t.Fatalf("task submit: %v", err)
	}
	var got *fsmpb.Task
	testutil.EventuallyTrue(t, admintest.Wait, "the task to end", func() bool { got = s.Task(resp.Task.Id); return !admintest.Active(got) })
	// Planning waits (no retry spent) until a topology asked for after the
	// submission, then fails the task: no retries, no worker ever ran it.
	if got.State != failedS || got.RetryCount != 0 || len(got.EarlierServers) != 0 {
		t.Errorf("task ended %s on attempt %d after %d retries (earlier servers %v); want failed with no retry", fsm.StateName(got.State), got.Attempt, got.RetryCount, got.EarlierServers)
	}
	admintest.WantContains(t, "last error", got.LastError, "not found")
}

// TestSystemBadCapability: a worker cannot be built with a capability it
// has no executor for, and an admin refuses a hello with an unknown one.
func TestSystemBadCapability(t *testing.T) {
	t.Parallel()
	volumes := seaweed.NewVolumeClient()
	defer volumes.Close()
	_, err := worker.New(worker.Config{ID: "wx", Admins: []string{"127.0.0.1:9"}, DataDir: t.TempDir(), MaxConcurrent: 1,
		Capabilities: []fsmpb.TaskType{vacuumT, ecT},
		Executors:    map[fsmpb.TaskType]worker.Executor{vacuumT: worker.NewVacuumExecutor(volumes)}})
	if err == nil {
		t.Fatal("worker.New accepted a capability without an executor")
	}
	admintest.WantContains(t, "worker.New error", err.Error(), "erasure_coding")

	s := newSystem(t, admintest.SimConfig(4))
	s.StartAdmins(admintest.SchedConfig())
	leader := s.WaitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), admintest.Wait)
	defer cancel()
	for _, i := range []int{leader, (leader + 1) % 3} {
		_, first, err := s.RawSession(ctx, s.Cfgs[i].GRPCAddr, &pb.Hello{WorkerId: "wbad",
			Capabilities: []fsmpb.TaskType{vacuumT, fsmpb.TaskType(99)}, MaxConcurrent: 1})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("hello with capability 99 to %s: first message %v, error %v; want InvalidArgument", s.Cfgs[i].ID, first, err)
		} else {
			admintest.WantContains(t, "refusal", status.Convert(err).Message(), "99")
		}
	}
	s.Read(func(st *fsm.State) {
		for _, w := range st.Workers() {
			if w.Id == "wbad" {
				t.Errorf("the refused worker was registered: %v", w)
			}
		}
	})
	// A well-formed worker is still welcome.
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.WaitConnected("w1")
}

// TestSystemStuckAttemptRetried: an attempt that makes no progress for
// StuckAfter is cancelled by the leader, rolled back by its worker and
// retried after a backoff.
func TestSystemStuckAttemptRetried(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(4))
	vid := s.AddOn(admintest.GarbageSpec, 3)
	hang := s.Sim.InjectFault(sim.Fault{Method: "VacuumVolumeCompact", VolumeID: vid, Latency: time.Minute})
	sc := admintest.SchedConfig()
	sc.StuckAfter = map[fsmpb.TaskType]time.Duration{vacuumT: 2 * time.Second}
	s.StartAdmins(sc)
	s.StartWorker("w1", s.GRPCAddrs(), 1)

	stuck := s.WaitTask(vid, "the stuck attempt to be cancelled and requeued", func(t *fsmpb.Task) bool { return t.Attempt == 2 })
	hang.Remove()
	admintest.WantContains(t, "requeue reason", stuck.LastError, "stuck", worker.StepVacuumCompact)
	if stuck.RetryCount != 1 {
		t.Errorf("retry count %d after a stuck attempt, want 1", stuck.RetryCount)
	}
	done := s.WaitTask(vid, "completed", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if done.State != completedS || done.Attempt != 2 {
		t.Errorf("task ended %s on attempt %d (%q); want completed on attempt 2", fsm.StateName(done.State), done.Attempt, done.LastError)
	}
	s.CheckVacuumed(3, vid, 2*admintest.MB)
	s.CheckNoOverlaps()
}

// TestSystemVacuumWithDeletesDuringCompaction: data deleted while the
// compaction runs is carried into the new files as garbage (as SeaweedFS
// does); the vacuum still completes on its first attempt instead of failing
// its verify step, and detection is free to vacuum the volume again later.
// Found by the fault harness, whose generator keeps deleting.
func TestSystemVacuumWithDeletesDuringCompaction(t *testing.T) {
	t.Parallel()
	cfg := admintest.SimConfig(4)
	cfg.CompactDuration = 2 * time.Second
	s := newSystem(t, cfg)
	vid := s.AddOn(admintest.GarbageSpec, 1)
	s.StartAdmins(admintest.SchedConfig())
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	s.WaitTask(vid, "compacting", admintest.InCompaction)
	testutil.EventuallyTrue(t, admintest.Wait, "the compaction to run on the volume server", func() bool { return s.Replica(1, vid).Compacting })
	// Delete 1.5 MB of the 2 MB that survive the compaction.
	if err := s.Sim.DeleteData(vid, 3*admintest.MB/2, 150); err != nil {
		t.Fatal(err)
	}
	done := s.WaitTask(vid, "finished", func(t *fsmpb.Task) bool { return !admintest.Active(t) })
	if done.State != completedS || done.Attempt != 1 || done.RetryCount != 0 {
		t.Fatalf("task ended %s on attempt %d (%d retries): %s; want completed on the first attempt", fsm.StateName(done.State), done.Attempt, done.RetryCount, done.LastError)
	}
	v := s.Replica(1, vid)
	if v.CompactRevision == 0 || v.DeletedBytes == 0 || float64(v.DeletedBytes)/float64(v.Size) < 0.3 {
		t.Fatalf("replica after the vacuum: %+v; want a new revision still holding the garbage deleted during the compaction", v)
	}
	s.CheckNoOverlaps()
}

// heldClock is the real clock, except that its timers fire only once
// release was called (and their time has passed): a simulated operation
// started before the release cannot finish before it.
type heldClock struct {
	released chan struct{}
	once     sync.Once
}

func newHeldClock() *heldClock { return &heldClock{released: make(chan struct{})} }

func (c *heldClock) release() { c.once.Do(func() { close(c.released) }) }

func (c *heldClock) Now() time.Time { return time.Now() }

func (c *heldClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	timer := time.After(d)
	go func() {
		<-c.released
		ch <- <-timer
	}()
	return ch
}
