package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// webResult is one dashboard answer.
type webResult struct {
	code int
	body []byte
}

func (r webResult) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r webResult) errText() string {
	var e struct{ Error string }
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

func webDo(t *testing.T, c *http.Client, method, url, body string) webResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return webResult{resp.StatusCode, b}
}

type webTask struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Collection string `json:"collection"`
	VolumeID   uint32 `json:"volume_id"`
}

type webTaskPage struct {
	Tasks         []webTask `json:"tasks"`
	NextPageToken string    `json:"next_page_token"`
}

// TestSystemDashboardAPI: the JSON API and the pages of every endpoint
// over mutual TLS on a three-admin system: readers read and may not act
// (403 in one sentence), operators act through any admin (a follower
// forwards as gRPC does), a worker's certificate reads nothing, a client
// without a certificate is refused in the handshake; bad parameters are
// 400 in one sentence; tasks page with tokens and filter by collection;
// the HTML shows action buttons only to operators; the event stream
// announces a change.
func TestSystemDashboardAPI(t *testing.T) {
	s := newSystem(t, admintest.SimConfig(3))
	s.EnableTLS()
	var vols []uint32
	collections := []string{"pics", "docs"}
	for i := range 5 {
		spec := admintest.GarbageSpec
		spec.Collection = collections[i%2]
		vols = append(vols, s.AddOn(spec, i%3))
	}
	// The detector stays out (no volume reaches the threshold): every task
	// is the test's own.
	sc := admintest.SchedConfig()
	sc.Thresholds.VacuumGarbage = 0.99
	s.StartAdmins(sc)
	l := s.WaitLeader()
	f := (l + 1) % 3
	reader := s.HTTPClient(certs.RoleReader, "test-reader")
	op := s.HTTPClient(certs.RoleOperator, "test-operator")
	wk := s.HTTPClient(certs.RoleWorker, "w-intruder")
	leader, follower := s.URL(l), s.URL(f)

	// Pause through a follower, so submitted tasks stay pending.
	if r := webDo(t, reader, "POST", follower+"/api/v1/pause", `{"reason":"x"}`); r.code != 403 || !strings.Contains(r.errText(), "operator") {
		t.Fatalf("reader pause = %d %s; want 403 naming the operator role", r.code, r.body)
	}
	if r := webDo(t, op, "POST", follower+"/api/v1/pause", `{"reason":"dashboard test"}`); r.code != 200 {
		t.Fatalf("operator pause = %d %s", r.code, r.body)
	}
	var ids []string
	for i, v := range vols {
		r := webDo(t, op, "POST", follower+"/api/v1/tasks", fmt.Sprintf(`{"type":"vacuum","volume_id":%d,"collection":%q}`, v, collections[i%2]))
		if r.code != 200 {
			t.Fatalf("submit vacuum of %d = %d %s", v, r.code, r.body)
		}
		var resp struct{ Task webTask }
		r.json(t, &resp)
		ids = append(ids, resp.Task.ID)
	}

	// Every read endpoint: reader 200, worker certificate 403.
	for _, path := range []string{"/api/v1/overview", "/api/v1/tasks", "/api/v1/tasks/" + ids[0], "/api/v1/workers", "/api/v1/capacity", fmt.Sprintf("/api/v1/volumes/%d", vols[0]),
		"/", "/tasks", "/tasks/" + ids[0], "/workers", "/capacity", fmt.Sprintf("/volumes/%d", vols[0])} {
		for _, base := range []string{leader, follower} {
			if r := webDo(t, reader, "GET", base+path, ""); r.code != 200 {
				t.Errorf("reader GET %s = %d %s", path, r.code, r.body)
			}
		}
		if r := webDo(t, wk, "GET", leader+path, ""); r.code != 403 {
			t.Errorf("worker GET %s = %d; want 403", path, r.code)
		}
	}
	if _, err := s.HTTPClientNoCert().Get(leader + "/api/v1/overview"); err == nil {
		t.Errorf("a client without a certificate was served")
	}

	// Overview: counts, pause, members.
	var ov struct {
		Status struct {
			LeaderID string `json:"leader_id"`
			Members  []struct{ ID string }
			Policy   struct {
				Paused      bool   `json:"paused"`
				PauseReason string `json:"pause_reason"`
				UpdatedBy   string `json:"updated_by"`
			}
		}
		ByState map[string]int `json:"tasks_by_state"`
		Policy  struct {
			Paused     bool     `json:"paused"`
			WindowOpen bool     `json:"window_open"`
			Windows    []string `json:"windows"`
		}
	}
	webDo(t, reader, "GET", leader+"/api/v1/overview", "").json(t, &ov)
	if !ov.Policy.Paused || !ov.Policy.WindowOpen || ov.Policy.Windows != nil {
		t.Errorf("overview policy = %+v; want paused, no windows (open)", ov.Policy)
	}
	if r := webDo(t, reader, "GET", leader+"/", ""); !strings.Contains(string(r.body), `id="policy-card"`) || !strings.Contains(string(r.body), "No maintenance windows") {
		t.Errorf("the overview page shows no policy card saying there are no windows")
	}
	if ov.Status.Policy.UpdatedBy != "test-operator (operator)" {
		t.Errorf("the pause is recorded as by %q; want the operator's certificate", ov.Status.Policy.UpdatedBy)
	}
	if ov.Status.LeaderID != s.Cfgs[l].ID || len(ov.Status.Members) != 3 || !ov.Status.Policy.Paused || ov.Status.Policy.PauseReason != "dashboard test" || ov.ByState["pending"] != 5 {
		t.Errorf("overview = %+v; want leader %s, 3 members, paused by the test, 5 pending", ov, s.Cfgs[l].ID)
	}

	// Paging: pages of 2 cover the 5 tasks once each.
	seen := map[string]bool{}
	token, pages := "", 0
	for {
		var p webTaskPage
		webDo(t, reader, "GET", follower+"/api/v1/tasks?page_size=2&state=pending&page_token="+token, "").json(t, &p)
		pages++
		for _, tk := range p.Tasks {
			if seen[tk.ID] {
				t.Errorf("task %s on two pages", tk.ID)
			}
			seen[tk.ID] = true
		}
		if token = p.NextPageToken; token == "" || pages > 5 {
			break
		}
	}
	if len(seen) != 5 || pages != 3 {
		t.Errorf("paging saw %d tasks in %d pages; want 5 in 3", len(seen), pages)
	}
	// The collection filter, paged too.
	var pics []string
	token = ""
	for range 5 {
		var p webTaskPage
		webDo(t, reader, "GET", leader+"/api/v1/tasks?page_size=1&collection=pics&page_token="+token, "").json(t, &p)
		for _, tk := range p.Tasks {
			pics = append(pics, tk.ID)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	if len(pics) != 3 {
		t.Errorf("collection pics lists %v; want 3 tasks", pics)
	}

	// Bad input: 400 in one sentence.
	for _, path := range []string{"/api/v1/tasks?state=bogus", "/api/v1/tasks?type=nope", "/api/v1/tasks?page_size=0", "/api/v1/tasks?page_size=x",
		"/api/v1/tasks?volume=-1", "/api/v1/tasks?page_token=zz", "/api/v1/tasks?colour=red", "/api/v1/tasks/abc", "/api/v1/tasks/0",
		"/api/v1/volumes/99999", "/api/v1/capacity?page_token=zz", "/api/v1/capacity?page_size=5000"} {
		r := webDo(t, reader, "GET", leader+path, "")
		if msg := r.errText(); r.code != 400 || msg == "" || strings.Contains(strings.TrimSuffix(msg, "."), ". ") {
			t.Errorf("GET %s = %d %q; want 400 with one sentence", path, r.code, msg)
		}
	}
	for _, c := range []struct{ path, body string }{{"/api/v1/tasks", `{"type":"nope","volume_id":1}`}, {"/api/v1/tasks", `{"bogus":1}`}, {"/api/v1/tasks/x/cancel", `{}`}} {
		if r := webDo(t, op, "POST", leader+c.path, c.body); r.code != 400 {
			t.Errorf("POST %s %s = %d %s; want 400", c.path, c.body, r.code, r.body)
		}
	}
	req, _ := http.NewRequest("POST", leader+"/api/v1/resume", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := op.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("a form-encoded action was not refused 400: %v %v", resp, err)
	}
	if r := webDo(t, reader, "GET", leader+"/api/v1/tasks/999999", ""); r.code != 404 {
		t.Errorf("unknown task = %d; want 404", r.code)
	}

	// HTML: buttons only for operators.
	page := webDo(t, reader, "GET", follower+"/tasks/"+ids[0], "")
	if bytes.Contains(page.body, []byte(`id="cancel"`)) {
		t.Errorf("the reader's task page shows a cancel button")
	}
	page = webDo(t, op, "GET", follower+"/tasks/"+ids[0], "")
	if !bytes.Contains(page.body, []byte(`id="cancel"`)) {
		t.Errorf("the operator's task page shows no cancel button")
	}

	// Events: the first event at once, another after a change.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ereq, _ := http.NewRequestWithContext(ctx, "GET", follower+"/api/v1/events", nil)
	eresp, err := s.HTTPClient(certs.RoleReader, "test-reader").Transport.RoundTrip(ereq)
	if err != nil || eresp.StatusCode != 200 {
		t.Fatalf("events: %v %v", eresp, err)
	}
	defer eresp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(eresp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") {
				events <- sc.Text()
			}
		}
		close(events)
	}()
	<-events

	// Cancel: the reader may not, the operator may (through a follower).
	if r := webDo(t, reader, "POST", follower+"/api/v1/tasks/"+ids[0]+"/cancel", `{}`); r.code != 403 {
		t.Errorf("reader cancel = %d; want 403", r.code)
	}
	if r := webDo(t, op, "POST", follower+"/api/v1/tasks/"+ids[0]+"/cancel", `{"reason":"web test"}`); r.code != 200 {
		t.Errorf("operator cancel = %d %s", r.code, r.body)
	}
	select {
	case e := <-events:
		if e == "" {
			t.Errorf("the event stream ended")
		}
	case <-ctx.Done():
		t.Errorf("no event after a cancel")
	}
	testutil.EventuallyTrue(t, admintest.Wait, "the cancelled task to show as cancelled", func() bool {
		var v struct{ Task webTask }
		webDo(t, reader, "GET", leader+"/api/v1/tasks/"+ids[0], "").json(t, &v)
		return v.Task.State == "TASK_STATE_CANCELLED"
	})
	if r := webDo(t, op, "POST", leader+"/api/v1/resume", `{}`); r.code != 200 {
		t.Errorf("operator resume = %d %s", r.code, r.body)
	}
}

// TestDashboardPlaintextLoopback: without TLS the dashboard binds only
// loopback (a wildcard --http-addr is refused at start, as --grpc-addr
// is) and, as the plaintext gRPC port, allows every call: a loopback
// client may act.
func TestDashboardPlaintextLoopback(t *testing.T) {
	raftAddr, grpcAddr, httpAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := admin.Config{ID: "m1", DataDir: filepath.Join(t.TempDir(), "m1"), RaftAddr: raftAddr, GRPCAddr: grpcAddr, HTTPAddr: "0.0.0.0:0",
		Peers: []cluster.Peer{{ID: "m1", RaftAddr: raftAddr}}, Bootstrap: true, Logger: testutil.Logger("admin.m1"), Scheduler: admintest.SchedConfig()}
	if _, err := admin.Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("a wildcard --http-addr without TLS started: %v", err)
	}
	cfg.HTTPAddr = httpAddr
	n, err := admin.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start admin: %v", err)
	}
	t.Cleanup(func() { n.Stop() })
	testutil.EventuallyTrue(t, admintest.Wait, "the single node to lead", func() bool { return n.Raft().IsLeader() })
	c := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + n.HTTPAddr()
	if r := webDo(t, c, "GET", base+"/api/v1/overview", ""); r.code != 200 {
		t.Errorf("overview = %d %s", r.code, r.body)
	}
	// 409 until the node has published its command version.
	testutil.Eventually(t, admintest.Wait, "a loopback pause to be applied (every call, as plaintext gRPC)", func() (bool, string) {
		r := webDo(t, c, "POST", base+"/api/v1/pause", `{"reason":"loopback"}`)
		return r.code == 200, fmt.Sprintf("%d %s", r.code, r.body)
	})
	if r := webDo(t, c, "GET", base+"/", ""); r.code != 200 || !bytes.Contains(r.body, []byte(`id="resume"`)) {
		t.Errorf("the loopback overview shows no resume button: %d", r.code)
	}
	if r := webDo(t, c, "GET", base+"/api/v1/capacity", ""); r.code != http.StatusConflict {
		t.Errorf("capacity without a master = %d %s; want 409", r.code, r.body)
	}
}
