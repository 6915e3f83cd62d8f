package web

import (
	"context"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// The data of each page and of its JSON answer: one function per page,
// each calling the node's rpc.Server as a gRPC client would, so a follower
// forwards to the leader as it does for ctl.

// PB is a message of the gRPC API, written as the API's JSON (protojson,
// proto field names) and read by the templates through M.
type PB[T proto.Message] struct{ M T }

var pjOpts = protojson.MarshalOptions{UseProtoNames: true}

func (p PB[T]) MarshalJSON() ([]byte, error) { return pjOpts.Marshal(p.M) }

func wrap[T proto.Message](ms []T) []PB[T] {
	out := make([]PB[T], len(ms))
	for i, m := range ms {
		out[i] = PB[T]{m}
	}
	return out
}

// TaskCount is how many tasks of one type are in one state.
type TaskCount struct {
	Type  string `json:"type"`
	State string `json:"state"`
	Count int    `json:"count"`
}

// Overview is the overview page: the node's status (raft, the masters,
// maintenance, the policy) and the task counts.
type Overview struct {
	Status PB[*pb.StatusResponse] `json:"status"`
	// Counts are this node's own (a local read of its state's counters).
	Counts  []TaskCount    `json:"task_counts"`
	ByState map[string]int `json:"tasks_by_state"`
	Tasks   int            `json:"tasks"`
	// Policy is the status's policy in words, its windows read now.
	Policy PolicyView `json:"policy"`
}

func (h *Handler) overview(ctx context.Context) (*Overview, error) {
	st, err := h.cfg.API.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, err
	}
	o := &Overview{Status: PB[*pb.StatusResponse]{st}, ByState: map[string]int{}, Policy: policyView(st.GetPolicy(), time.Now())}
	if h.cfg.FSM != nil {
		h.cfg.FSM.Read(func(s *fsm.State) {
			s.CountByTypeAndState(func(typ fsmpb.TaskType, state fsmpb.TaskState, n int) {
				if n == 0 {
					return
				}
				o.Counts = append(o.Counts, TaskCount{Type: typeName(typ), State: stateName(state), Count: n})
				o.ByState[stateName(state)] += n
				o.Tasks += n
			})
		})
	}
	sort.Slice(o.Counts, func(i, j int) bool {
		a, b := o.Counts[i], o.Counts[j]
		return a.Type < b.Type || a.Type == b.Type && a.State < b.State
	})
	return o, nil
}

// TaskPage is one page of tasks.
type TaskPage struct {
	Tasks         []PB[*fsmpb.Task] `json:"tasks"`
	NextPageToken string            `json:"next_page_token,omitempty"`
	AppliedIndex  uint64            `json:"applied_index"`
	Query         TaskQuery         `json:"-"`
}

// scanPage and maxScanPages bound the tasks one filtered page looks at
// when filtering by collection or server, which ListTasks does not: a page
// may come back short (even empty) with a token to go on from.
const (
	scanPage     = 1000
	maxScanPages = 20
)

func (h *Handler) tasks(ctx context.Context, q TaskQuery) (*TaskPage, error) {
	req := &pb.ListTasksRequest{States: q.States, Types: q.Types, VolumeId: q.Volume, PageSize: uint32(q.PageSize), PageToken: q.PageToken}
	if q.Collection == "" && q.Server == "" {
		resp, err := h.cfg.API.ListTasks(ctx, req)
		if err != nil {
			return nil, err
		}
		return &TaskPage{Tasks: wrap(resp.Tasks), NextPageToken: resp.NextPageToken, AppliedIndex: resp.AppliedIndex, Query: q}, nil
	}
	page := &TaskPage{Query: q}
	req.PageSize = scanPage
	for range maxScanPages {
		resp, err := h.cfg.API.ListTasks(ctx, req)
		if err != nil {
			return nil, err
		}
		if page.AppliedIndex == 0 {
			page.AppliedIndex = resp.AppliedIndex
		}
		for _, t := range resp.Tasks {
			if !q.matches(t) {
				continue
			}
			page.Tasks = append(page.Tasks, PB[*fsmpb.Task]{t})
			if len(page.Tasks) == q.PageSize {
				if t.Id != resp.Tasks[len(resp.Tasks)-1].Id || resp.NextPageToken != "" {
					page.NextPageToken = rpc.TaskPageToken(t.Id)
				}
				return page, nil
			}
		}
		if resp.NextPageToken == "" {
			return page, nil
		}
		req.PageToken = resp.NextPageToken
		page.NextPageToken = resp.NextPageToken
	}
	return page, nil
}

// matches applies the filters ListTasks does not.
func (q TaskQuery) matches(t *fsmpb.Task) bool {
	if q.Collection != "" && t.Collection != q.Collection {
		return false
	}
	if q.Server == "" {
		return true
	}
	if t.Source == q.Server || t.Target == q.Server || t.WorkerId == q.Server {
		return true
	}
	for _, s := range t.AttemptServers {
		if s == q.Server {
			return true
		}
	}
	return false
}

// TaskView is one task.
type TaskView struct {
	Task         PB[*fsmpb.Task] `json:"task"`
	AppliedIndex uint64          `json:"applied_index"`
}

func (h *Handler) task(ctx context.Context, id uint64) (*TaskView, error) {
	resp, err := h.cfg.API.GetTask(ctx, &pb.GetTaskRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return &TaskView{Task: PB[*fsmpb.Task]{resp.Task}, AppliedIndex: resp.AppliedIndex}, nil
}

// Workers are the registered workers.
type Workers struct {
	Workers      []PB[*pb.WorkerStatus] `json:"workers"`
	AppliedIndex uint64                 `json:"applied_index"`
	// At is when this node read the list (unix nanoseconds): how long ago
	// the leader heard from each worker is measured from it.
	At int64 `json:"at"`
}

func (h *Handler) workers(ctx context.Context) (*Workers, error) {
	resp, err := h.cfg.API.ListWorkers(ctx, &pb.ListWorkersRequest{})
	if err != nil {
		return nil, err
	}
	return &Workers{Workers: wrap(resp.Workers), AppliedIndex: resp.AppliedIndex, At: time.Now().UnixNano()}, nil
}

// Capacity is one page of volume servers, used and projected.
type Capacity struct {
	Servers       []PB[*pb.ServerCapacity] `json:"servers"`
	NextPageToken string                   `json:"next_page_token,omitempty"`
	AppliedIndex  uint64                   `json:"applied_index"`
	TopologyAt    int64                    `json:"topology_at"`
}

// serverTokenPrefix versions the capacity page token, which holds the
// last server of the page it follows.
const serverTokenPrefix = "s1."

func (h *Handler) capacity(ctx context.Context, size int, token string) (*Capacity, error) {
	after, ok := strings.CutPrefix(token, serverTokenPrefix)
	if token != "" && (!ok || after == "") {
		return nil, badRequest("the page token is not one a capacity answer gave: pass next_page_token back unchanged, or none for the first page")
	}
	ids, err := h.cfg.API.ServerIDs()
	if err != nil {
		return nil, err
	}
	i := 0
	if token != "" {
		i = sort.Search(len(ids), func(i int) bool { return ids[i] > after })
	}
	page := ids[i:]
	out := &Capacity{}
	if len(page) > size {
		page = page[:size]
		out.NextPageToken = serverTokenPrefix + page[size-1]
	}
	if len(page) == 0 {
		return out, nil
	}
	resp, err := h.cfg.API.GetServerCapacity(ctx, &pb.GetServerCapacityRequest{Servers: page})
	if err != nil {
		return nil, err
	}
	out.Servers, out.AppliedIndex, out.TopologyAt = wrap(resp.Servers), resp.AppliedIndex, resp.TopologyAt
	return out, nil
}

// Volume is one volume's projection: the master's size, the projected
// size and the adjustments behind it (the capacity package's model).
type Volume struct {
	Volume       PB[*pb.VolumeCapacity] `json:"volume"`
	AppliedIndex uint64                 `json:"applied_index"`
	TopologyAt   int64                  `json:"topology_at"`
}

func (h *Handler) volume(ctx context.Context, id uint32) (*Volume, error) {
	resp, err := h.cfg.API.GetVolumeCapacity(ctx, &pb.GetVolumeCapacityRequest{VolumeIds: []uint32{id}})
	if err != nil {
		return nil, err
	}
	return &Volume{Volume: PB[*pb.VolumeCapacity]{resp.Volumes[0]}, AppliedIndex: resp.AppliedIndex, TopologyAt: resp.TopologyAt}, nil
}
