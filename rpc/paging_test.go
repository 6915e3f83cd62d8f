package rpc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// addTasks applies n vacuum submissions, of volumes from first on, to f as
// raft entries from index first on.
func addTasks(t testing.TB, f *fsm.FSM, first uint32, n int) {
	t.Helper()
	for i := range n {
		vol := first + uint32(i)
		b, err := fsm.Encode(time.Now().UnixNano(), fsm.SubmitCmd(&fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: vol}))
		if err != nil {
			t.Fatal(err)
		}
		res := f.Apply(fsm.Entry{Index: uint64(vol), Command: true, Data: b}).(*fsmpb.ApplyResult)
		if err := fsm.ResultError(res); err != nil {
			t.Fatal(err)
		}
	}
}

// directAdmin is an AdminClient whose ListTasks calls the server's handler.
type directAdmin struct {
	pb.AdminClient
	s     *Server
	pages int
}

func (d *directAdmin) ListTasks(ctx context.Context, req *pb.ListTasksRequest, _ ...grpc.CallOption) (*pb.ListTasksResponse, error) {
	d.pages++
	return d.s.ListTasks(ctx, req)
}

// TestListTasksPages: 1200 tasks list fully, in id order and once each,
// across pages of the default 500; a page size above 5000 is cut to 5000;
// filters hold across pages; a token the server did not give is
// InvalidArgument.
func TestListTasksPages(t *testing.T) {
	f := fsm.New()
	addTasks(t, f, 1, 1200)
	s := NewServer(nil, f, "", nil)
	defer s.Close()
	ctx := context.Background()
	stale := pb.Consistency_CONSISTENCY_STALE

	d := &directAdmin{s: s}
	tasks, _, err := ListAllTasks(ctx, d, &pb.ListTasksRequest{Consistency: stale})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1200 || d.pages != 3 {
		t.Fatalf("%d tasks in %d pages, want 1200 in 3", len(tasks), d.pages)
	}
	for i, tk := range tasks {
		if tk.Id != uint64(i)+1 {
			t.Fatalf("task %d of the listing is %d, want %d", i, tk.Id, i+1)
		}
	}
	first, err := s.ListTasks(ctx, &pb.ListTasksRequest{Consistency: stale})
	if err != nil || len(first.Tasks) != DefaultTaskPageSize || first.NextPageToken == "" {
		t.Fatalf("first page: %d tasks, token %q, %v", len(first.GetTasks()), first.GetNextPageToken(), err)
	}

	// Filters hold across pages: pending tasks of volumes, 7 a page.
	d = &directAdmin{s: s}
	tasks, _, err = ListAllTasks(ctx, d, &pb.ListTasksRequest{Consistency: stale, PageSize: 7,
		States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING}, VolumeId: 33})
	if err != nil || len(tasks) != 1 || tasks[0].VolumeId != 33 || d.pages != 1 {
		t.Fatalf("volume 33 filtered: %v in %d pages, %v", tasks, d.pages, err)
	}

	addTasks(t, f, 1201, 4000)
	big, err := s.ListTasks(ctx, &pb.ListTasksRequest{Consistency: stale, PageSize: 100_000})
	if err != nil || len(big.Tasks) != MaxTaskPageSize || big.NextPageToken == "" {
		t.Fatalf("a page size of 100000: %d tasks, token %q, %v; want %d and a token", len(big.GetTasks()), big.GetNextPageToken(), err, MaxTaskPageSize)
	}
	rest, err := s.ListTasks(ctx, &pb.ListTasksRequest{Consistency: stale, PageSize: 100_000, PageToken: big.NextPageToken})
	if err != nil || len(rest.Tasks) != 200 || rest.Tasks[0].Id != MaxTaskPageSize+1 || rest.NextPageToken != "" {
		t.Fatalf("the page after: %d tasks, token %q, %v", len(rest.GetTasks()), rest.GetNextPageToken(), err)
	}

	for _, token := range []string{"x", "t1.", "t1.0", "t1.-3", "t1.abc", "t2.5", "t1." + string(make([]byte, 100))} {
		_, err := s.ListTasks(ctx, &pb.ListTasksRequest{Consistency: stale, PageToken: token})
		wantCode(t, "page token "+token, err, codes.InvalidArgument)
		wantMessage(t, "page token "+token, err, "page token")
	}
}
