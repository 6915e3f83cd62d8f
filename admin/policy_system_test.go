package admin_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// policyEverywhere reads the policy through every running admin and
// requires them to answer alike (each from its own state: STALE), once
// they have caught up; it returns the policy and its history.
func policyEverywhere(t *testing.T, s *system) (*fsmpb.Policy, []*fsmpb.PolicyChange) {
	t.Helper()
	var p *fsmpb.Policy
	var hist []*fsmpb.PolicyChange
	testutil.EventuallyTrue(t, admintest.Wait, "every admin to answer with the same policy", func() bool {
		p, hist = nil, nil
		for i := range s.Cfgs {
			if s.Node(i) == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := s.AdminClient(i).GetPolicy(ctx, &pb.GetPolicyRequest{Consistency: pb.Consistency_CONSISTENCY_STALE})
			cancel()
			if err != nil {
				return false
			}
			if p == nil {
				p, hist = resp.Policy, resp.History
				continue
			}
			if !proto.Equal(p, resp.Policy) || len(hist) != len(resp.History) {
				return false
			}
			for j := range hist {
				if !proto.Equal(hist[j], resp.History[j]) {
					return false
				}
			}
		}
		return p != nil
	})
	return p, hist
}

// TestSystemPolicyReplicated: over mutual TLS, a policy set through one
// admin is read identical through the others, with the operator's
// certificate as who changed it; a reader may read it but not pause
// (PermissionDenied); the policy survives the leader's kill and a restart
// of every admin.
func TestSystemPolicyReplicated(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(1))
	s.EnableTLS()
	s.StartAdmins(admintest.SchedConfig())
	l := s.WaitLeader()
	f := (l + 1) % 3
	ctx := context.Background()

	reader := pb.NewAdminClient(s.ConnAs(s.Cfgs[f].GRPCAddr, certs.RoleReader, "bob"))
	if _, err := reader.GetPolicy(ctx, &pb.GetPolicyRequest{}); err != nil {
		t.Fatalf("a reader reading the policy: %v", err)
	}
	for what, call := range map[string]func() error{
		"pause":  func() error { _, err := reader.Pause(ctx, &pb.PauseRequest{Reason: "mine"}); return err },
		"resume": func() error { _, err := reader.Resume(ctx, &pb.ResumeRequest{}); return err },
		"set": func() error {
			_, err := reader.SetPolicy(ctx, &pb.SetPolicyRequest{Policy: &fsmpb.Policy{}})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("a reader's %s: %v; want PermissionDenied", what, err)
		}
	}

	set, err := s.AdminClient(f).SetPolicy(ctx, &pb.SetPolicyRequest{Policy: &fsmpb.Policy{
		Types: []*fsmpb.TaskTypePolicy{{Type: fsmpb.TaskType_TASK_TYPE_BALANCE, Disabled: true}}}})
	if err != nil || set.Policy.Revision != 1 || set.Policy.UpdatedBy != "test-operator (operator)" {
		t.Fatalf("set through follower %d: %v, %v", f, set, err)
	}
	if _, err := s.AdminClient((l+2)%3).Pause(ctx, &pb.PauseRequest{Reason: "incident 7"}); err != nil {
		t.Fatalf("pause through the other follower: %v", err)
	}
	want, hist := policyEverywhere(t, s)
	if !want.Paused || want.PauseReason != "incident 7" || want.Revision != 2 || fsm.TypeEnabled(want, fsmpb.TaskType_TASK_TYPE_BALANCE) || len(hist) != 2 {
		t.Fatalf("policy after set and pause: %v, history %v", want, hist)
	}
	// Every node's metrics show it (alerting on a forgotten pause).
	for i := range s.Cfgs {
		body := admintest.MetricsBody(t, s.Node(i))
		admintest.WantMetric(t, body, "groundskeeper_policy_paused", 1)
		admintest.WantMetric(t, body, "groundskeeper_policy_revision", 2)
		admintest.WantMetric(t, body, `groundskeeper_policy_type_enabled{type="balance"}`, 0)
		admintest.WantMetric(t, body, `groundskeeper_policy_type_enabled{type="vacuum"}`, 1)
	}

	s.StopNode(l)
	nl := s.WaitLeader()
	if nl == l {
		t.Fatalf("admin %d still leads after its kill", l)
	}
	resp, err := s.AdminClient(nl).GetPolicy(ctx, &pb.GetPolicyRequest{Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil || !proto.Equal(resp.Policy, want) || len(resp.History) != 2 {
		t.Fatalf("policy from the new leader %d: %v, %v; want %v", nl, resp, err, want)
	}

	for i := range s.Cfgs {
		s.StopNode(i)
	}
	for i := range s.Cfgs {
		s.StartNode(i)
	}
	s.WaitLeader()
	got, gotHist := policyEverywhere(t, s)
	if !proto.Equal(got, want) || len(gotHist) != 2 || !proto.Equal(gotHist[1], hist[1]) {
		t.Fatalf("policy after a full restart: %v %v; want %v %v", got, gotHist, want, hist)
	}
}

// TestSystemPauseStopsAssignments: with the simulated SeaweedFS and a real
// worker of one slot, a pause taken while the first of four vacuums runs
// lets it finish but assigns nothing more, and detects nothing new (a
// volume gaining garbage meanwhile gets no task); resume restarts both.
func TestSystemPauseStopsAssignments(t *testing.T) {
	t.Parallel()
	cfg := admintest.SimConfig(1)
	cfg.CompactDuration = 2 * time.Second
	s := newSystem(t, cfg)
	vols := map[uint32]bool{}
	for range 4 {
		vols[s.AddOn(admintest.GarbageSpec, 0)] = true
	}
	s.StartAdmins(admintest.SchedConfig())
	testutil.EventuallyTrue(t, admintest.Wait, "four vacuums detected", func() bool { return len(s.Tasks()) == 4 })
	s.StartWorker("w1", s.GRPCAddrs(), 1)
	var running *fsmpb.Task
	testutil.EventuallyTrue(t, admintest.Wait, "a vacuum to run", func() bool {
		for _, task := range s.Tasks() {
			if task.State == fsmpb.TaskState_TASK_STATE_RUNNING {
				running = task
				return true
			}
		}
		return false
	})
	ctx := context.Background()
	p, err := s.AdminClient(s.WaitLeader()).Pause(ctx, &pb.PauseRequest{Reason: "test"})
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	pausedAt := p.Index
	late := s.AddOn(admintest.GarbageSpec, 0)

	// The running vacuum finishes (its slot frees), yet nothing more is
	// assigned or detected over three detection rounds after that.
	testutil.EventuallyTrue(t, admintest.Wait, "the running vacuum to finish", func() bool {
		return s.Task(running.Id).State == fsmpb.TaskState_TASK_STATE_COMPLETED
	})
	s.WaitPolls(3)
	pending := 0
	for _, task := range s.Tasks() {
		if task.VolumeId == late {
			t.Errorf("volume %d was detected while paused: task %d", late, task.Id)
		}
		// An attempt assigned before the pause may run (and finish);
		// none may be assigned after it (its fence is the assignment's
		// raft index).
		if task.Fence > pausedAt {
			t.Errorf("task %d is %s with fence %d, assigned after the pause at index %d", task.Id, fsm.StateName(task.State), task.Fence, pausedAt)
		}
		if task.State == fsmpb.TaskState_TASK_STATE_PENDING {
			pending++
		}
	}
	if pending < 2 {
		t.Fatalf("only %d vacuums left pending at the pause: the test proves little", pending)
	}

	begin := time.Now()
	r, err := s.AdminClient(s.WaitLeader()).Resume(ctx, &pb.ResumeRequest{})
	if err != nil || r.Policy.Paused {
		t.Fatalf("resume: %v, %v", r, err)
	}
	testutil.EventuallyTrue(t, admintest.Wait, "an assignment after the resume", func() bool {
		for _, task := range s.Tasks() {
			if task.Id != running.Id && task.Fence > r.Index {
				return true
			}
		}
		return false
	})
	t.Logf("first assignment %v after the resume", time.Since(begin))
	tasks := s.WaitQuiet()
	done := map[uint32]bool{}
	for _, task := range tasks {
		if task.State == fsmpb.TaskState_TASK_STATE_COMPLETED {
			done[task.VolumeId] = true
		}
	}
	for vid := range vols {
		if !done[vid] {
			t.Errorf("volume %d was not vacuumed after the resume", vid)
		}
	}
	if !done[late] {
		t.Errorf("volume %d, added while paused, was not vacuumed after the resume", late)
	}
}
