package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// capacityOracleStub answers the oracle with fixed figures and records the
// requests it got.
type capacityOracleStub struct {
	pb.UnimplementedCapacityOracleServer
	volReqs chan *pb.GetVolumeCapacityRequest
}

func (s *capacityOracleStub) GetVolumeCapacity(_ context.Context, req *pb.GetVolumeCapacityRequest) (*pb.GetVolumeCapacityResponse, error) {
	s.volReqs <- req
	resp := &pb.GetVolumeCapacityResponse{AppliedIndex: 42}
	for _, id := range req.VolumeIds {
		resp.Volumes = append(resp.Volumes, &pb.VolumeCapacity{VolumeId: id, Collection: "c", MasterSize: 100 << 20, ProjectedSize: 70 << 20,
			DeletedBytes: 30 << 20, Adjustments: []*pb.Adjustment{{TaskId: 3, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, Kind: pb.Adjustment_IN_PROGRESS, DeltaBytes: -30 << 20}}})
	}
	return resp, nil
}

func (s *capacityOracleStub) GetServerCapacity(_ context.Context, req *pb.GetServerCapacityRequest) (*pb.GetServerCapacityResponse, error) {
	resp := &pb.GetServerCapacityResponse{AppliedIndex: 42}
	for _, name := range req.Servers {
		resp.Servers = append(resp.Servers, &pb.ServerCapacity{Server: name, Address: name, Disks: []*pb.DiskCapacity{{
			MaxSlots: 10, Master: &pb.CapacityFigures{UsedSlots: 2, FreeSlots: 8, VolumeBytes: 150 << 20, Volumes: 2},
			Projected: &pb.CapacityFigures{UsedSlots: 1, FreeSlots: 9, VolumeBytes: 100 << 20, Volumes: 1, EcShards: 5, EcShardBytes: 25 << 20},
		}}})
	}
	return resp, nil
}

func startCapacityOracleStub(t *testing.T) (string, *capacityOracleStub) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stub := &capacityOracleStub{volReqs: make(chan *pb.GetVolumeCapacityRequest, 10)}
	g := grpc.NewServer()
	pb.RegisterCapacityOracleServer(g, stub)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String(), stub
}

func TestCtlCapacity(t *testing.T) {
	addr, stub := startCapacityOracleStub(t)
	var out bytes.Buffer
	if err := runCtl([]string{"--admin", addr, "--timeout", "10s", "capacity", "--volume", "7,8", "--json"}, &out); err != nil {
		t.Fatalf("capacity --json: %v", err)
	}
	req := <-stub.volReqs
	if len(req.VolumeIds) != 2 || req.VolumeIds[0] != 7 || req.VolumeIds[1] != 8 || req.Consistency != pb.Consistency_CONSISTENCY_LINEARIZABLE {
		t.Errorf("request %v", req)
	}
	var got struct {
		Volumes []struct {
			VolumeID      uint32 `json:"volume_id"`
			MasterSize    uint64 `json:"master_size"`
			ProjectedSize uint64 `json:"projected_size"`
			Adjustments   []struct {
				TaskID     uint64 `json:"task_id"`
				Type       string `json:"type"`
				Kind       string `json:"kind"`
				DeltaBytes int64  `json:"delta_bytes"`
			} `json:"adjustments"`
		} `json:"volumes"`
		AppliedIndex uint64 `json:"applied_index"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(got.Volumes) != 2 || got.Volumes[1].VolumeID != 8 || got.Volumes[0].MasterSize != 100<<20 || got.Volumes[0].ProjectedSize != 70<<20 ||
		len(got.Volumes[0].Adjustments) != 1 || got.AppliedIndex != 42 {
		t.Fatalf("json %s", out.String())
	}
	if a := got.Volumes[0].Adjustments[0]; a.TaskID != 3 || a.Type != "vacuum" || a.Kind != "in_progress" || a.DeltaBytes != -30<<20 {
		t.Errorf("adjustment %+v", a)
	}

	out.Reset()
	if err := runCtl([]string{"--admin", addr, "capacity", "--volume", "7", "--stale"}, &out); err != nil {
		t.Fatal(err)
	}
	if req := <-stub.volReqs; req.Consistency != pb.Consistency_CONSISTENCY_STALE {
		t.Errorf("--stale sent %v", req.Consistency)
	}
	if s := out.String(); !strings.Contains(s, "100.0 MiB") || !strings.Contains(s, "70.0 MiB") || !strings.Contains(s, "task 3 vacuum in progress -30.0 MiB") {
		t.Errorf("table:\n%s", s)
	}

	out.Reset()
	if err := runCtl([]string{"--admin", addr, "capacity", "--server", "10.0.0.1:8080"}, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "10.0.0.1:8080") || !strings.Contains(s, "5 (+25.0 MiB arriving)") {
		t.Errorf("server table:\n%s", s)
	}
}

func TestCtlCapacityUsage(t *testing.T) {
	for _, args := range [][]string{
		{"capacity"},
		{"capacity", "--volume", "0"},
		{"capacity", "--volume", "7,x"},
		{"capacity", "--volume", "4294967296"},
	} {
		err := runCtl(append([]string{"--admin", "127.0.0.1:1", "--timeout", time.Second.String()}, args...), &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 30 << 20: "30.0 MiB", 5 << 40: "5.0 TiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	if got := signedBytes(-2048); got != "-2.0 KiB" {
		t.Errorf("signedBytes(-2048) = %q", got)
	}
}
