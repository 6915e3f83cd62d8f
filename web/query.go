package web

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// Query parameters: each mistake is a badRequest in one sentence.

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// TaskQuery is the tasks page's filter and page.
type TaskQuery struct {
	States     []fsmpb.TaskState
	Types      []fsmpb.TaskType
	Volume     uint32
	Collection string
	Server     string
	PageSize   int
	PageToken  string
}

// Params gives the query back as URL parameters (the next page's link).
func (q TaskQuery) Params(token string) string {
	v := url.Values{}
	for _, s := range q.States {
		v.Add("state", stateName(s))
	}
	for _, t := range q.Types {
		v.Add("type", typeName(t))
	}
	if q.Volume != 0 {
		v.Set("volume", fmt.Sprint(q.Volume))
	}
	if q.Collection != "" {
		v.Set("collection", q.Collection)
	}
	if q.Server != "" {
		v.Set("server", q.Server)
	}
	if q.PageSize != defaultPageSize {
		v.Set("page_size", fmt.Sprint(q.PageSize))
	}
	if token != "" {
		v.Set("page_token", token)
	}
	return v.Encode()
}

var known = map[string]bool{"state": true, "type": true, "volume": true, "collection": true, "server": true, "page_size": true, "page_token": true}

func parseTaskQuery(v url.Values) (TaskQuery, error) {
	for k := range v {
		if !known[k] {
			return TaskQuery{}, badRequest(fmt.Sprintf("unknown query parameter %q: use state, type, volume, collection, server, page_size or page_token", k))
		}
	}
	q := TaskQuery{Collection: v.Get("collection"), Server: v.Get("server"), PageToken: v.Get("page_token")}
	for _, s := range splitAll(v["state"]) {
		st, ok := parseState(s)
		if !ok {
			return q, badRequest(fmt.Sprintf("unknown task state %q: use one of %s", s, strings.Join(stateNames(), ", ")))
		}
		q.States = append(q.States, st)
	}
	for _, s := range splitAll(v["type"]) {
		t, ok := parseType(s)
		if !ok {
			return q, badRequest(fmt.Sprintf("unknown task type %q: use one of %s", s, strings.Join(typeNames(), ", ")))
		}
		q.Types = append(q.Types, t)
	}
	if s := v.Get("volume"); s != "" {
		id, err := strconv.ParseUint(s, 10, 32)
		if err != nil || id == 0 {
			return q, badRequest(fmt.Sprintf("volume %q is not a volume id (a number from 1 to 4294967295)", s))
		}
		q.Volume = uint32(id)
	}
	if len(q.Collection) > rpc.MaxCollectionLen || len(q.Server) > rpc.MaxAddrLen {
		return q, badRequest("the collection or server filter is too long")
	}
	size, err := parsePageSize(v.Get("page_size"))
	q.PageSize = size
	return q, err
}

func parsePageSize(s string) (int, error) {
	if s == "" {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, badRequest(fmt.Sprintf("page_size %q is not a number from 1 to %d", s, maxPageSize))
	}
	return n, nil
}

func parseID(s, what string, bits int) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, bits)
	if err != nil || id == 0 {
		return 0, badRequest(fmt.Sprintf("%s %q is not a %s id (a positive number)", what, s, what))
	}
	return id, nil
}

func splitAll(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// Enum names as the API shows them: "pending", "ec_encode".

func stateName(s fsmpb.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

func typeName(t fsmpb.TaskType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "TASK_TYPE_"))
}

func parseState(s string) (fsmpb.TaskState, bool) {
	v, ok := fsmpb.TaskState_value["TASK_STATE_"+strings.ToUpper(s)]
	return fsmpb.TaskState(v), ok && v != 0
}

func parseType(s string) (fsmpb.TaskType, bool) {
	v, ok := fsmpb.TaskType_value["TASK_TYPE_"+strings.ToUpper(s)]
	return fsmpb.TaskType(v), ok && v != 0
}

func stateNames() []string {
	var out []string
	for v := range fsmpb.TaskState_name {
		if v != 0 {
			out = append(out, stateName(fsmpb.TaskState(v)))
		}
	}
	sort.Strings(out)
	return out
}

func typeNames() []string {
	var out []string
	for v := range fsmpb.TaskType_name {
		if v != 0 {
			out = append(out, typeName(fsmpb.TaskType(v)))
		}
	}
	sort.Strings(out)
	return out
}

// HasState reports whether the filter names the state (for the form).
func (q TaskQuery) HasState(name string) bool {
	for _, s := range q.States {
		if stateName(s) == name {
			return true
		}
	}
	return false
}

// HasType reports whether the filter names the type (for the form).
func (q TaskQuery) HasType(name string) bool {
	for _, t := range q.Types {
		if typeName(t) == name {
			return true
		}
	}
	return false
}
