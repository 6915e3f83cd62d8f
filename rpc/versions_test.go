package rpc

import (
	"context"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestReadsReportRaftsAppliedIndex: the applied index a read answers with
// is raft's (the FSM's last command extended over the no-op and barrier
// entries after it), the index Status reports, not the FSM's last command:
// after a leader change the new leader's no-op and barrier put raft ahead
// of the FSM for good while nothing else is written.
func TestReadsReportRaftsAppliedIndex(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	if _, err := call(t, func(ctx context.Context) (*pb.SubmitTaskResponse, error) {
		return c.nodes[l].client.SubmitTask(ctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 5})
	}); err != nil {
		t.Fatal(err)
	}
	_ = c.nodes[l].stop()
	nl := c.waitLeader()
	n := c.nodes[nl]
	stale := pb.Consistency_CONSISTENCY_STALE
	waitFor(t, "reads to answer raft's applied index", func() bool {
		st := n.raft.Status()
		if st.AppliedIndex != st.CommitIndex {
			return false
		}
		ctx := context.Background()
		tasks, err1 := n.server.ListTasks(ctx, &pb.ListTasksRequest{Consistency: stale})
		task, err2 := n.server.GetTask(ctx, &pb.GetTaskRequest{Id: 1, Consistency: stale})
		workers, err3 := n.server.ListWorkers(ctx, &pb.ListWorkersRequest{Consistency: stale})
		if err1 != nil || err2 != nil || err3 != nil {
			return false
		}
		t.Logf("reads at %d %d %d, raft applied %d", tasks.AppliedIndex, task.AppliedIndex, workers.AppliedIndex, st.AppliedIndex)
		return tasks.AppliedIndex == st.AppliedIndex && task.AppliedIndex == st.AppliedIndex && workers.AppliedIndex == st.AppliedIndex
	})
}

// TestStatusShowsHalted: a node whose FSM halted says so, and why, as its
// state in Status (and so in ctl status), until the process exits.
func TestStatusShowsHalted(t *testing.T) {
	c := newCluster(t)
	n := c.nodes[c.waitLeader()]
	v2, err := fsm.Encode(1, &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}})
	if err != nil {
		t.Fatal(err)
	}
	// As if raft handed it the entry of a newer leader.
	n.fsm.ApplyBatch([]fsm.Entry{{Index: 1 << 40, Command: true, Data: v2}})
	st, err := n.server.Status(context.Background(), &pb.StatusRequest{LocalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.State, MemberHalted) || !strings.Contains(st.State, "upgrade this node's binary") {
		t.Errorf("halted node's state %q; want %q and the reason", st.State, MemberHalted)
	}
	for _, m := range st.Members {
		if m.Id == n.id && m.State != st.State {
			t.Errorf("its own member row says %q", m.State)
		}
	}
}
