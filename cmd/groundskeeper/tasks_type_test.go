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

// TestCtlTasksType: `ctl tasks --type replicate` lists only the replicate
// tasks; an unknown type is a usage error naming it.
func TestCtlTasksType(t *testing.T) {
	f := fsm.New()
	types := []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_REPLICATE}
	for i, typ := range types {
		b, err := fsm.Encode(time.Now().UnixNano(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: typ, VolumeId: uint32(i + 1)}))
		if err != nil {
			t.Fatal(err)
		}
		if err := fsm.ResultError(f.Apply(fsm.Entry{Index: uint64(i + 1), Command: true, Data: b}).(*fsmpb.ApplyResult)); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer(nil, f, lis.Addr().String(), nil)
	defer srv.Close()
	g := grpc.NewServer(rpc.ServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	var out bytes.Buffer
	if err := runCtl([]string{"--admin", lis.Addr().String(), "--timeout", "20s", "tasks", "--stale", "--type", "replicate", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var tasks []struct {
		ID   uint64 `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(out.Bytes(), &tasks); err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 || tasks[0].ID != 2 || tasks[1].ID != 4 || tasks[0].Type != "replicate" {
		t.Fatalf("ctl tasks --type replicate printed %+v, want tasks 2 and 4", tasks)
	}
	out.Reset()
	if err := runCtl([]string{"--admin", lis.Addr().String(), "--timeout", "20s", "tasks", "--stale", "--type", "vacuum,balance", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &tasks); err != nil || len(tasks) != 2 || tasks[0].ID != 1 || tasks[1].ID != 3 {
		t.Fatalf("ctl tasks --type vacuum,balance printed %+v (%v), want tasks 1 and 3", tasks, err)
	}
	err = runCtl([]string{"--admin", lis.Addr().String(), "tasks", "--type", "rebalance"}, &out)
	if err == nil || !strings.Contains(err.Error(), "rebalance") {
		t.Fatalf("unknown type: %v", err)
	}
}
