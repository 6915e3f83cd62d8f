package admin_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// maxConcurrentPerServer reads the simulator's operation log: for each
// volume server, the most task attempts whose operations on it (from an
// attempt's first to its last) overlap in time.
func maxConcurrentPerServer(ops []sim.Op) map[string]int {
	type span struct{ start, end time.Time }
	spans := map[string]map[string]*span{} // server -> attempt -> span
	for _, o := range ops {
		if o.TaskID == "" {
			continue
		}
		if spans[o.Server] == nil {
			spans[o.Server] = map[string]*span{}
		}
		key := o.TaskID + "/" + o.Fence
		if sp, ok := spans[o.Server][key]; ok {
			sp.start, sp.end = minTime(sp.start, o.Start), maxTime(sp.end, o.End)
		} else {
			spans[o.Server][key] = &span{o.Start, o.End}
		}
	}
	out := map[string]int{}
	for srv, m := range spans {
		type edge struct {
			at    time.Time
			delta int
		}
		var edges []edge
		for _, sp := range m {
			edges = append(edges, edge{sp.start, 1}, edge{sp.end, -1})
		}
		// Ends before starts at the same instant: back to back is not at once.
		sort.Slice(edges, func(i, j int) bool {
			if !edges[i].at.Equal(edges[j].at) {
				return edges[i].at.Before(edges[j].at)
			}
			return edges[i].delta < edges[j].delta
		})
		n := 0
		for _, e := range edges {
			n += e.delta
			out[srv] = max(out[srv], n)
		}
	}
	return out
}

// setPolicy sets p through the leader at expected, retrying while an
// election on this loaded machine leaves no leader (Unavailable: nothing
// was proposed).
func setPolicy(t *testing.T, s *system, p *fsmpb.Policy, expected uint64) *pb.SetPolicyResponse {
	t.Helper()
	var resp *pb.SetPolicyResponse
	var err error
	testutil.EventuallyTrue(t, admintest.Wait, "the policy to be set", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err = s.AdminClient(s.WaitLeader()).SetPolicy(ctx, &pb.SetPolicyRequest{Policy: p, ExpectedRevision: expected})
		return status.Code(err) != codes.Unavailable
	})
	if err != nil {
		t.Fatalf("set policy %v: %v", p, err)
	}
	return resp
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestSystemPolicyPerServerCap: with a per-server cap of 1 and a worker of
// four slots, the vacuums of three volumes on each of two servers never
// overlap on a server (read from the simulator's operation log), yet the
// two servers are worked on at once, and every volume is vacuumed.
func TestSystemPolicyPerServerCap(t *testing.T) {
	t.Parallel()
	cfg := admintest.SimConfig(2)
	cfg.CompactDuration = 600 * time.Millisecond
	s := newSystem(t, cfg)
	var vols []uint32
	for i := range 6 {
		vols = append(vols, s.AddOn(admintest.GarbageSpec, i%2))
	}
	s.StartAdmins(admintest.SchedConfig())
	setPolicy(t, s, &fsmpb.Policy{Caps: &fsmpb.PolicyCaps{PerServer: 1}}, 0)
	testutil.EventuallyTrue(t, admintest.Wait, "six vacuums detected", func() bool { return len(s.Tasks()) == 6 })
	s.StartWorker("w1", s.GRPCAddrs(), 4)
	tasks := s.WaitQuiet()
	done := map[uint32]bool{}
	for _, task := range tasks {
		if task.State == fsmpb.TaskState_TASK_STATE_COMPLETED {
			done[task.VolumeId] = true
		}
	}
	for _, v := range vols {
		if !done[v] {
			t.Errorf("volume %d was not vacuumed", v)
		}
	}
	per := maxConcurrentPerServer(s.Sim.OpLog())
	if len(per) != 2 {
		t.Fatalf("operations on %d servers; want 2: %v", len(per), per)
	}
	for srv, n := range per {
		if n > 1 {
			t.Errorf("server %s had %d attempts at once under a per-server cap of 1:%s", srv, n, admintest.OpsString(s.Sim.OpLog()))
		}
	}
	// Across servers the cap does not serialise: some moment had both.
	all := s.Sim.OpLog()
	for i := range all {
		all[i].Server = "any"
	}
	if got := maxConcurrentPerServer(all)["any"]; got < 2 {
		t.Errorf("at most %d attempts at once over both servers: the cap serialised them all", got)
	}
}

// TestSystemPolicyWindowClosed: while the policy's only maintenance window
// is closed, pending vacuums are not assigned and a volume gaining garbage
// is not detected, over three detection rounds; opening the window
// assigns and detects them.
func TestSystemPolicyWindowClosed(t *testing.T) {
	t.Parallel()
	s := newSystem(t, admintest.SimConfig(1))
	early := []uint32{s.AddOn(admintest.GarbageSpec, 0), s.AddOn(admintest.GarbageSpec, 0)}
	s.StartAdmins(admintest.SchedConfig())
	testutil.EventuallyTrue(t, admintest.Wait, "two vacuums detected", func() bool { return len(s.Tasks()) == 2 })
	// Open only on the day after tomorrow (UTC): closed now.
	other := uint32(time.Now().UTC().Add(48 * time.Hour).Weekday())
	closed := setPolicy(t, s, &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{Days: []uint32{other}, StartHour: 0, EndHour: 24}}}, 0)
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	late := s.AddOn(admintest.GarbageSpec, 0)
	s.WaitPolls(3)
	for _, task := range s.Tasks() {
		if task.State != fsmpb.TaskState_TASK_STATE_PENDING {
			t.Errorf("task %d is %v with the window closed", task.Id, task.State)
		}
		if task.VolumeId == late {
			t.Errorf("volume %d was detected with the window closed: task %d", late, task.Id)
		}
	}
	admintest.WantMetric(t, admintest.MetricsBody(t, s.Node(s.WaitLeader())), "groundskeeper_policy_window_open", 0)

	setPolicy(t, s, &fsmpb.Policy{Windows: []*fsmpb.MaintenanceWindow{{StartHour: 0, EndHour: 24}}}, closed.Policy.Revision)
	tasks := s.WaitQuiet()
	done := map[uint32]bool{}
	for _, task := range tasks {
		if task.State == fsmpb.TaskState_TASK_STATE_COMPLETED {
			done[task.VolumeId] = true
		}
	}
	for _, v := range append(early, late) {
		if !done[v] {
			t.Errorf("volume %d was not vacuumed once the window opened", v)
		}
	}
	admintest.WantMetric(t, admintest.MetricsBody(t, s.Node(s.WaitLeader())), "groundskeeper_policy_window_open", 1)
}
