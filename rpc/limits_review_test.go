package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestWorkerFailureWithLongErrorIsNotRefused: a worker reports the error
// its executor gave, untruncated, and journals it; the outbox re-sends it
// after every reconnect until the leader acknowledges it. worker/ec.go's
// prepare step names every earlier server of the task (up to
// fsm.MaxEarlierServers), so a task retried over a few hundred servers
// fails with an error far over MaxErrorLen. Refusing that message ends
// the session (taking the worker's other attempts with it) and the same
// report ends the next one: the worker can never report again.
func TestWorkerFailureWithLongErrorIsNotRefused(t *testing.T) {
	earlier := make([]string, 300)
	for i := range earlier {
		earlier[i] = fmt.Sprintf("10.20.%d.%d:8080.18080", i/250, i%250)
	}
	if len(earlier) > fsm.MaxEarlierServers {
		t.Fatal("the history is longer than a task may carry")
	}
	// The text of worker/ec.go's "no replica left" failure.
	msg := fmt.Sprintf("volume %d has no replica left and no EC shards on the earlier attempts' servers (%s): nothing to encode or finish", 42, strings.Join(earlier, ", "))
	for _, m := range []*pb.WorkerMessage{
		{Body: &pb.WorkerMessage_Failed{Failed: &pb.TaskFailed{TaskId: 1, Fence: 7, Error: msg, Step: "prepare"}}},
		{Body: &pb.WorkerMessage_Released{Released: &pb.TaskReleased{TaskId: 1, Fence: 7, Error: msg}}},
	} {
		if err := checkWorkerMessage(m); err != nil {
			t.Errorf("a worker's report of a real failure (%d bytes of error) was refused, which ends its session on every reconnect: %v", len(msg), err)
		}
		got := m.GetFailed().GetError() + m.GetReleased().GetError()
		if len(got) > MaxErrorLen || !strings.HasPrefix(got, msg[:MaxErrorLen/2]) || !strings.HasSuffix(got, " bytes cut)") {
			t.Errorf("the error text was not cut to %d bytes with a marker: %d bytes ending %q", MaxErrorLen, len(got), got[len(got)-30:])
		}
	}
}

// TestApplyBatchRefusesOnlyTheCommandOverALimit: a follower's forwarder
// batches unrelated writes of many callers into one ApplyBatch, whose
// answer has an outcome per command. A command over a string limit (a
// RetryTask forwarded while leadership moves carries the old task's
// collection and history, which no handler checked) must fail alone:
// today the whole call is refused, so every write batched with it fails
// with an error about a field its caller never sent.
func TestApplyBatchRefusesOnlyTheCommandOverALimit(t *testing.T) {
	c := newCluster(t)
	leader := c.nodes[c.waitLeader()]
	var cmds [][]byte
	for _, st := range []*fsmpb.SubmitTask{
		{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 11, Origin: "manual"},
		{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 12, Origin: fsm.RetryOrigin(3), Collection: strings.Repeat("c", MaxCollectionLen+1)},
	} {
		b, err := fsm.Encode(time.Now().UnixNano(), fsm.SubmitCmd(st))
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := leader.server.ApplyBatch(ctx, &pb.ApplyBatchRequest{Commands: cmds})
	if err != nil {
		t.Fatalf("one command over a limit refused the whole batch, failing the other caller's valid submission: %v", err)
	}
	if len(resp.Items) != 2 || codes.Code(resp.Items[0].Code) != codes.OK || codes.Code(resp.Items[1].Code) != codes.InvalidArgument {
		t.Fatalf("outcomes %v, want OK for the valid submission and InvalidArgument for the one over the limit", resp.Items)
	}
}

// TestAddressLimitFitsAnyHostName: a DNS name may be 253 bytes long, so a
// valid admin --grpc-addr (name:port) or SeaweedFS server address
// (name:port.grpcPort) may exceed 256 bytes. cmd/groundskeeper accepts the
// former; as a follower such a node's address publication is refused by
// the leader's ApplyBatch, while as leader it applies it directly.
func TestAddressLimitFitsAnyHostName(t *testing.T) {
	label := strings.Repeat("a", 63)
	host := label + "." + label + "." + label + "." + strings.Repeat("b", 61) // 253 bytes
	if len(host) != 253 {
		t.Fatalf("host name of %d bytes", len(host))
	}
	admin := host + ":65535"
	server := host + ":65535.65535"
	if err := checkForwarded(fsm.SetAdminAddrCmd("a2", admin, 1)); err != nil {
		t.Errorf("a follower's valid admin address (%d bytes) is refused: %v", len(admin), err)
	}
	if err := checkSubmit(&pb.SubmitTaskRequest{VolumeId: 1, Source: server, Target: server}); err != nil {
		t.Errorf("a valid SeaweedFS server address (%d bytes) is refused: %v", len(server), err)
	}
}

// TestListTasksWithoutPagingIsNotSilentlyCut: a client built before
// ListTasks had pages (an older ctl during a rolling upgrade, a grpcurl
// script) sends no page size and ignores next_page_token. It must get
// every task, never the first 500 as if they were all: without a page
// size, ListTasks answers as it did before pages (every task, no token).
func TestListTasksWithoutPagingIsNotSilentlyCut(t *testing.T) {
	f := fsm.New()
	addTasks(t, f, 1, 600)
	s := NewServer(nil, f, "", nil)
	defer s.Close()
	resp, err := s.ListTasks(context.Background(), &pb.ListTasksRequest{Consistency: pb.Consistency_CONSISTENCY_STALE})
	if err != nil || len(resp.Tasks) != 600 || resp.NextPageToken != "" {
		t.Fatalf("a ListTasks without a page size answered %d of 600 tasks, token %q, %v: a client that does not know pages takes them for all", len(resp.GetTasks()), resp.GetNextPageToken(), err)
	}
}
