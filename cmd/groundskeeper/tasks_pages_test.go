package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// TestCtlTasksFollowsPages: `ctl tasks` prints every task of a state that
// takes several ListTasks pages, as it did when one answer held them all.
func TestCtlTasksFollowsPages(t *testing.T) {
	const n = 1200
	f := fsm.New()
	for i := 1; i <= n; i++ {
		b, err := fsm.Encode(time.Now().UnixNano(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(i)}))
		if err != nil {
			t.Fatal(err)
		}
		if err := fsm.ResultError(f.Apply(fsm.Entry{Index: uint64(i), Command: true, Data: b}).(*fsmpb.ApplyResult)); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A raft-less server answers stale reads from its own state.
	srv := rpc.NewServer(nil, f, lis.Addr().String(), nil)
	defer srv.Close()
	g := grpc.NewServer(rpc.ServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	var out bytes.Buffer
	if err := runCtl([]string{"--admin", lis.Addr().String(), "--timeout", "20s", "tasks", "--stale", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var tasks []struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(out.Bytes(), &tasks); err != nil {
		t.Fatal(err)
	}
	if len(tasks) != n || tasks[0].ID != 1 || tasks[n-1].ID != n {
		t.Fatalf("ctl tasks --json printed %d tasks, want %d in id order", len(tasks), n)
	}
	out.Reset()
	if err := runCtl([]string{"--admin", lis.Addr().String(), "--timeout", "20s", "tasks", "--stale", "--state", "pending"}, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != n+1 {
		t.Fatalf("ctl tasks printed %d lines, want a header and %d tasks", lines, n)
	}
}
