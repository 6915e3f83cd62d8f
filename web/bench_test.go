package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// The dashboard at the scale issue 14 names: 100,000 tasks in the state and
// a million volumes (a quarter with two replicas) on 500 servers in the
// topology. A one-member raft that always leads stands in for the cluster
// (linearizable reads then read locally, as on a leader).

const (
	benchTasks   = 100_000
	benchVolumes = 1_000_000
	benchServers = 500
)

// soloRaft is a leader alone: what the reads need of raft.
type soloRaft struct{ rpc.Raft }

func (soloRaft) ID() string                       { return "b1" }
func (soloRaft) VerifyRead(context.Context) error { return nil }
func (soloRaft) Leader() (string, string)         { return "b1", "127.0.0.1:1" }
func (soloRaft) StateIndex(i uint64) uint64       { return i }
func (soloRaft) Members() ([]cluster.Member, error) {
	return []cluster.Member{{ID: "b1", Suffrage: "Voter"}}, nil
}
func (soloRaft) Status() cluster.Status {
	return cluster.Status{ID: "b1", State: "Leader", LeaderID: "b1"}
}

type benchTopology struct{ topo *seaweed.Topology }

func (b benchTopology) Latest() (*seaweed.Topology, time.Time) { return b.topo, time.Now() }

var (
	benchOnce    sync.Once
	benchHandler *Handler
)

func benchSetup(b *testing.B) *Handler {
	benchOnce.Do(func() {
		nodes := make([]*master_pb.DataNodeInfo, benchServers)
		for i := range nodes {
			nodes[i] = &master_pb.DataNodeInfo{Id: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250), DiskInfos: map[string]*master_pb.DiskInfo{"": {MaxVolumeCount: 3000}}}
		}
		for id := uint32(1); id <= benchVolumes; id++ {
			copies := 1 + int(id%4/3)
			for c := range copies {
				d := nodes[(int(id)+c*7)%benchServers].DiskInfos[""]
				d.VolumeInfos = append(d.VolumeInfos, &master_pb.VolumeInformationMessage{Id: id, Size: uint64(id%30000) << 20, DeletedByteCount: uint64(id%30000) << 15, Collection: fmt.Sprintf("c%d", id%10)})
			}
		}
		topo := seaweed.FromVolumeList(&master_pb.VolumeListResponse{VolumeSizeLimitMb: 30000, TopologyInfo: &master_pb.TopologyInfo{
			DataCenterInfos: []*master_pb.DataCenterInfo{{Id: "dc1", RackInfos: []*master_pb.RackInfo{{Id: "r1", DataNodeInfos: nodes}}}}}})
		f := fsm.New()
		for i := uint64(1); i <= benchTasks; i++ {
			vid := uint32(i * 7)
			cmd, err := fsm.Encode(1, &fsmpb.Command{Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vid, Collection: fmt.Sprintf("c%d", vid%10)}}})
			if err != nil {
				panic(err)
			}
			f.Apply(fsm.Entry{Index: i, Command: true, Data: cmd})
		}
		s := rpc.NewServer(soloRaft{}, f, "127.0.0.1:1", nil)
		s.SetTopology(benchTopology{topo})
		h, err := New(Config{API: s, FSM: f})
		if err != nil {
			panic(err)
		}
		benchHandler = h
	})
	return benchHandler
}

// BenchmarkDashboard is one request's work on the admin (no network): each
// page and its JSON twin at 100,000 tasks and a million volumes.
func BenchmarkDashboard(b *testing.B) {
	h := benchSetup(b)
	for _, path := range []string{
		"/", "/api/v1/overview",
		"/tasks", "/api/v1/tasks", "/api/v1/tasks?page_size=1000", "/api/v1/tasks?state=pending&type=vacuum&page_token=t1.50000",
		"/tasks?collection=c3", "/api/v1/tasks?collection=c3",
		"/tasks/50000", "/api/v1/tasks/50000",
		"/workers", "/api/v1/workers",
		"/capacity", "/api/v1/capacity", "/api/v1/capacity?page_size=1000",
		"/volumes/777", "/api/v1/volumes/777",
	} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
}
