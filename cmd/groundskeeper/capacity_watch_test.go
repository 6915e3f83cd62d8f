package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// watchStub serves WatchCapacity: its first stream sends one update and
// breaks as a stopping admin would (Unavailable); later streams send one
// update and wait for the client to go.
type watchStub struct {
	capacityOracleStub
	mu      sync.Mutex
	streams int
	reqs    []*pb.WatchCapacityRequest
}

func (s *watchStub) WatchCapacity(req *pb.WatchCapacityRequest, st pb.CapacityOracle_WatchCapacityServer) error {
	s.mu.Lock()
	s.streams++
	n := s.streams
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	u := &pb.CapacityUpdate{AppliedIndex: uint64(40 + n), Volumes: []*pb.VolumeCapacity{{VolumeId: 7, MasterSize: 100 << 20, ProjectedSize: 70 << 20,
		Adjustments: []*pb.Adjustment{{TaskId: 3, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, Kind: pb.Adjustment_IN_PROGRESS, DeltaBytes: -30 << 20}}}}}
	if n > 1 {
		u.MissingServers = []string{"10.0.0.9:8080"}
	}
	if err := st.Send(u); err != nil {
		return err
	}
	if n == 1 {
		return status.Error(codes.Unavailable, "this admin node is shutting down")
	}
	<-st.Context().Done()
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestCtlCapacityWatch(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		stub := &watchStub{}
		addr := startOracle(t, stub)
		ctx, cancel := context.WithCancel(context.Background())
		prev := ctlInterrupt
		ctlInterrupt = func() (context.Context, context.CancelFunc) { return ctx, cancel }
		var out syncBuffer
		args := []string{"--admin", addr, "--timeout", "10s", "capacity", "--watch", "--volume", "7", "--server", "10.0.0.1:8080"}
		if asJSON {
			args = append(args, "--json")
		}
		done := make(chan error, 1)
		go func() { done <- runCtl(args, &out) }()
		testutil.EventuallyTrue(t, 10*time.Second, "two updates printed", func() bool { return strings.Count(out.String(), "\n") >= 2+boolInt(!asJSON) })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("json=%v: interrupted watch returned %v", asJSON, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("json=%v: the watch did not end when interrupted", asJSON)
		}
		ctlInterrupt = prev
		stub.mu.Lock()
		if stub.streams != 2 || len(stub.reqs[0].VolumeIds) != 1 || stub.reqs[0].Servers[0] != "10.0.0.1:8080" {
			t.Errorf("json=%v: %d streams, first request %v; want a reconnect after Unavailable", asJSON, stub.streams, stub.reqs[0])
		}
		stub.mu.Unlock()
		got := out.String()
		if !asJSON {
			for _, want := range []string{"index 41  volume 7  master 100.0 MiB", "projected 70.0 MiB", "task 3 vacuum in progress -30.0 MiB",
				"index 42  volume 7", "index 42  server 10.0.0.9:8080  no longer in the master's topology"} {
				if !strings.Contains(got, want) {
					t.Errorf("table output lacks %q:\n%s", want, got)
				}
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(got), "\n")
		var first, second capacityUpdateJSON
		if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
			t.Fatalf("want two JSON lines, got:\n%s", got)
		}
		if first.AppliedIndex != 41 || len(first.Volumes) != 1 || first.Volumes[0].ProjectedSize != 70<<20 ||
			first.Volumes[0].Adjustments[0].Kind != "in_progress" || second.AppliedIndex != 42 || second.MissingServers[0] != "10.0.0.9:8080" {
			t.Errorf("JSON lines:\n%s", got)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCtlCapacityWatchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"capacity", "--watch"},
		{"capacity", "--watch", "--volume", "0"},
		{"capacity", "--watch", "--volume", "7,x"},
	} {
		err := runCtl(append([]string{"--admin", "127.0.0.1:1", "--timeout", time.Second.String()}, args...), &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}

func startOracle(t *testing.T, srv pb.CapacityOracleServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterCapacityOracleServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}
