package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestStateIndexIsRaftsAppliedIndex: the index a state hash is reported at
// is raft's applied index (not the FSM's last command, which skips raft's
// no-op and barrier entries), on the metric too, and it does not go back
// after an operator restores an older snapshot: the restored state is
// reported at an index past the restore, with the saved content's hash.
func TestStateIndexIsRaftsAppliedIndex(t *testing.T) {
	n, addr := admintest.StartSingleAdmin(t)
	status := func() *pb.StatusResponse {
		st, err := n.API().Status(context.Background(), &pb.StatusRequest{LocalOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	settled := func(what string) *pb.StatusResponse {
		var st *pb.StatusResponse
		testutil.EventuallyTrue(t, admintest.Wait, what, func() bool {
			st = status()
			return st.StateIndex != 0 && st.StateIndex == st.AppliedIndex && st.StateIndex == st.CommitIndex
		})
		return st
	}
	testutil.EventuallyTrue(t, admintest.Wait, "the address published", func() bool { return status().Members[0].GrpcAddr != "" })
	before := settled("the state index to reach raft's applied index")
	_, body := admintest.Scrape(t, adminHandler(n), "/metrics")
	if v, _ := admintest.MetricValue(body, "groundskeeper_raft_applied_index"); uint64(v) < before.StateIndex {
		t.Errorf("metric applied index %v behind the state index %d", v, before.StateIndex)
	}

	file := filepath.Join(t.TempDir(), "snap")
	var out, errOut bytes.Buffer
	if err := runCtlIO([]string{"--admin", addr, "--timeout", "10s", "snapshot", "save", file}, &out, &errOut); err != nil {
		t.Fatalf("snapshot save: %v %s", err, errOut.String())
	}
	for _, vid := range []uint32{7, 8, 9} {
		if _, err := n.API().SubmitTask(context.Background(), &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vid}); err != nil {
			t.Fatal(err)
		}
	}
	mid := settled("the state index after three submits")
	if err := runCtlIO([]string{"--admin", addr, "--timeout", "10s", "snapshot", "restore", file}, &out, &errOut); err != nil {
		t.Fatalf("snapshot restore: %v %s", err, errOut.String())
	}
	after := settled("the state index after the restore")
	if after.StateIndex <= mid.StateIndex {
		t.Errorf("state index %d after the restore; it was %d before (it went back)", after.StateIndex, mid.StateIndex)
	}
	if after.StateHash != before.StateHash {
		t.Errorf("restored state hash %.12s; the saved state's was %.12s", after.StateHash, before.StateHash)
	}
}
