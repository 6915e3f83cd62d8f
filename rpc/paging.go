package rpc

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// ListTasks pages: one asking for more than MaxTaskPageSize tasks gets that
// many (a page must fit in a message whatever the state's size). A request
// without a page size (a client from before pages, which ignores
// next_page_token) gets every task and no token, as before, rather than a
// first page it would take for the whole; paging clients send
// DefaultTaskPageSize.
const (
	DefaultTaskPageSize = 500
	MaxTaskPageSize     = 5000
	// pageTokenPrefix versions the token, which holds the id of the last
	// task of the page it follows.
	pageTokenPrefix = "t1."
	maxPageTokenLen = 64
)

// taskPage gives the page size and the id after which a ListTasks page
// starts.
func taskPage(req *pb.ListTasksRequest) (size int, after uint64, err error) {
	// Compared as sent: int(PageSize) is negative above 2^31 where int
	// has 32 bits.
	switch {
	case req.PageSize == 0:
		size = math.MaxInt // no paging: everything after the token
	case req.PageSize > MaxTaskPageSize:
		size = MaxTaskPageSize
	default:
		size = int(req.PageSize)
	}
	if req.PageToken == "" {
		return size, 0, nil
	}
	rest, ok := strings.CutPrefix(req.PageToken, pageTokenPrefix)
	if ok && len(req.PageToken) <= maxPageTokenLen {
		after, err = strconv.ParseUint(rest, 10, 64)
	}
	// Only the form pageToken gives: "t1.007" names task 7 too, but no
	// answer gave it, and accepting it would make two tokens of one page.
	if !ok || err != nil || after == 0 || len(req.PageToken) > maxPageTokenLen || pageToken(after) != req.PageToken {
		return 0, 0, invalid("the page token is not one a ListTasks answer gave: pass a next_page_token back unchanged, or none for the first page")
	}
	return size, after, nil
}

func pageToken(lastID uint64) string { return pageTokenPrefix + strconv.FormatUint(lastID, 10) }

// pageOf cuts the page of at most size tasks after the id after out of
// tasks (in id order), with the token of the page that follows ("" if none).
func pageOf(tasks []*fsmpb.Task, size int, after uint64) ([]*fsmpb.Task, string) {
	i := sort.Search(len(tasks), func(i int) bool { return tasks[i].Id > after })
	page := tasks[i:]
	if len(page) <= size {
		return page, ""
	}
	page = page[:size]
	return page, pageToken(page[size-1].Id)
}

// ListAllTasks calls ListTasks page by page until the last one and gives
// every task, with the applied index of the first page. req's page token
// is overwritten, and its page size set to DefaultTaskPageSize if unset.
func ListAllTasks(ctx context.Context, a pb.AdminClient, req *pb.ListTasksRequest, opts ...grpc.CallOption) ([]*fsmpb.Task, uint64, error) {
	var tasks []*fsmpb.Task
	var index uint64
	req.PageToken = ""
	if req.PageSize == 0 {
		req.PageSize = DefaultTaskPageSize
	}
	for first := true; ; first = false {
		resp, err := a.ListTasks(ctx, req, opts...)
		if err != nil {
			return nil, 0, err
		}
		tasks = append(tasks, resp.Tasks...)
		if first {
			index = resp.AppliedIndex
		}
		if resp.NextPageToken == "" {
			return tasks, index, nil
		}
		req.PageToken = resp.NextPageToken
	}
}

// TaskPageToken is the ListTasks page token of the page after the task
// lastID, for callers that cut pages of their own out of ListTasks pages
// (the dashboard's collection and server filters).
func TaskPageToken(lastID uint64) string { return pageToken(lastID) }
