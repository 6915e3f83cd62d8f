package rpc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

const benchVolumes = 1_000_000

var (
	benchTopoOnce sync.Once
	benchTopo     *fixedTopology
)

// topology1M: a million volumes (a quarter with two replicas) on 500
// servers, as the oracle benchmark's simulated master has.
func topology1M() *fixedTopology {
	benchTopoOnce.Do(func() {
		const servers = 500
		nodes := make([]*master_pb.DataNodeInfo, servers)
		for i := range nodes {
			nodes[i] = &master_pb.DataNodeInfo{Id: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), DiskInfos: map[string]*master_pb.DiskInfo{"": {MaxVolumeCount: 3000}}}
		}
		for id := uint32(1); id <= benchVolumes; id++ {
			copies := 1
			if id%4 == 0 {
				copies = 2
			}
			for c := range copies {
				d := nodes[(int(id)+c*7)%servers].DiskInfos[""]
				d.VolumeInfos = append(d.VolumeInfos, &master_pb.VolumeInformationMessage{Id: id, Size: uint64(id%30000) << 20, DeletedByteCount: uint64(id%30000) << 15, Collection: "bench"})
			}
		}
		topo := seaweed.FromVolumeList(&master_pb.VolumeListResponse{VolumeSizeLimitMb: 30000, TopologyInfo: &master_pb.TopologyInfo{
			DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: nodes}}}}}})
		benchTopo = &fixedTopology{topo: topo, at: time.Now()}
	})
	return benchTopo
}

// benchServer is an oracle without network or raft (STALE reads need
// neither) over topology1M, with a thousand vacuums in flight.
func benchServer(b *testing.B) *Server {
	b.Helper()
	f := fsm.New()
	for i := uint64(1); i <= 1000; i++ {
		cmd, err := fsm.Encode(1, &fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: uint32(i * 997)}}})
		if err != nil {
			b.Fatal(err)
		}
		f.Apply(fsm.Entry{Index: i, Command: true, Data: cmd})
	}
	s := NewServer(nil, f, "127.0.0.1:1", nil)
	b.Cleanup(s.Close)
	s.SetTopology(topology1M())
	return s
}

// BenchmarkOracleVolumeLookup is one GetVolumeCapacity (STALE) call's work
// on the admin, without gRPC: 1 and 100 ids among a million volumes.
func BenchmarkOracleVolumeLookup(b *testing.B) {
	s := benchServer(b)
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("ids=%d", n), func(b *testing.B) {
			req := &pb.GetVolumeCapacityRequest{VolumeIds: make([]uint32, n), Consistency: pb.Consistency_CONSISTENCY_STALE}
			seq := uint32(0)
			b.ReportAllocs()
			for b.Loop() {
				for k := range req.VolumeIds {
					seq++
					req.VolumeIds[k] = 1 + seq*7919%benchVolumes
				}
				if _, err := s.GetVolumeCapacity(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}

// BenchmarkOracleServerLookup is one GetServerCapacity (STALE) call for one
// server, without gRPC.
func BenchmarkOracleServerLookup(b *testing.B) {
	s := benchServer(b)
	req := &pb.GetServerCapacityRequest{Servers: []string{"10.0.1.7:8080"}, Consistency: pb.Consistency_CONSISTENCY_STALE}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetServerCapacity(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
