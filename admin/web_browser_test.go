package admin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/groundskeeper-dev/groundskeeper/admin/admintest"
	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// browserProxy serves the dashboard of base to a browser on loopback in
// plaintext, presenting the certificate of role and name to the admin:
// headless Chromium cannot be handed a client certificate without a
// certificate database, and the proxy keeps the admin's authorization the
// real one (mutual TLS, the role from the certificate).
func browserProxy(t *testing.T, s *system, base string, role certs.Role, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = s.HTTPClient(role, name).Transport
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return "http://" + lis.Addr().String()
}

// chromium finds Debian's chromium: a test without it skips, except under
// CI=true, where it fails (CI installs it, .ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but this test cannot run: no chromium in PATH (apt-get install -y chromium): %v", err)
	}
	t.Skipf("no chromium in PATH (apt-get install -y chromium): %v", err)
	return ""
}

// TestBrowserDashboard drives headless Chromium over the dashboard of a
// three-admin system with mutual TLS on the simulated SeaweedFS: every
// page loads and shows what the JSON API answers; a task submitted while
// paused is seen pending and then, after Resume is clicked, completed on
// the same page without a reload; a reader has no cancel button and is
// refused a cancel it forges (403); an operator cancels from the task
// page. GK_SCREENSHOTS=1 saves each page to docs/dashboard/.
func TestBrowserDashboard(t *testing.T) {
	bin := chromium(t)
	s := newSystem(t, admintest.SimConfig(3))
	s.EnableTLS()
	var vols []uint32
	for i := range 4 {
		vols = append(vols, s.AddOn(admintest.FillerSpec, i%3))
	}
	garbage := s.AddOn(admintest.GarbageSpec, 1)
	s.StartAdmins(admintest.SchedConfig())
	f := (s.WaitLeader() + 1) % 3
	api := s.HTTPClient(certs.RoleOperator, "test-operator")
	apiURL := s.URL(f)
	if r := webDo(t, api, "POST", apiURL+"/api/v1/pause", `{"reason":"browser test"}`); r.code != 200 {
		t.Fatalf("pause = %d %s", r.code, r.body)
	}
	s.StartWorker("w1", s.GRPCAddrs(), 2)
	s.WaitConnected("w1")
	var sub struct{ Task webTask }
	webDo(t, api, "POST", apiURL+"/api/v1/tasks", fmt.Sprintf(`{"type":"vacuum","volume_id":%d}`, vols[0])).json(t, &sub)
	cancelID := sub.Task.ID
	webDo(t, api, "POST", apiURL+"/api/v1/tasks", fmt.Sprintf(`{"type":"vacuum","volume_id":%d}`, garbage)).json(t, &sub)
	runID := sub.Task.ID

	reader := browserProxy(t, s, apiURL, certs.RoleReader, "test-reader")
	operator := browserProxy(t, s, apiURL, certs.RoleOperator, "test-operator")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	defer tcancel()
	shots := os.Getenv("GK_SCREENSHOTS") == "1"
	shot := func(name string) {
		if !shots {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(url, sel string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s %s: %v", url, sel, err)
		}
		return strings.TrimSpace(got)
	}

	// Overview against the API: both read again until they agree (a
	// leader change or a new task between the two reads is not a bug).
	overview := func() (leader, tasks string) {
		var ov struct {
			Status struct {
				LeaderID string `json:"leader_id"`
			}
			Tasks int `json:"tasks"`
		}
		webDo(t, api, "GET", apiURL+"/api/v1/overview", "").json(t, &ov)
		return ov.Status.LeaderID, fmt.Sprint(ov.Tasks)
	}
	testutil.Eventually(t, admintest.Wait, "the overview page to show the API's leader and task count", func() (bool, string) {
		leader, tasks := overview()
		gotLeader, gotTasks := text(reader+"/", "#leader"), text(reader+"/", "#tasks-total")
		return gotLeader == leader && gotTasks == tasks, fmt.Sprintf("page %s/%s, API %s/%s", gotLeader, gotTasks, leader, tasks)
	})
	shot("overview")
	// Workers, capacity, volume.
	if got := text(reader+"/workers", "#workers"); !strings.Contains(got, "w1") {
		t.Errorf("workers page %q lacks w1", got)
	}
	shot("workers")
	var capa struct {
		Servers []struct {
			Server string `json:"server"`
		}
	}
	webDo(t, api, "GET", apiURL+"/api/v1/capacity", "").json(t, &capa)
	got := text(reader+"/capacity", "#capacity")
	for _, sv := range capa.Servers {
		if !strings.Contains(got, sv.Server) {
			t.Errorf("capacity page lacks server %s", sv.Server)
		}
	}
	shot("capacity")
	var vol struct {
		Volume struct {
			MasterSize string `json:"master_size"`
		}
	}
	webDo(t, api, "GET", fmt.Sprintf("%s/api/v1/volumes/%d", apiURL, garbage), "").json(t, &vol)
	if got := text(fmt.Sprintf("%s/volumes/%d", reader, garbage), "#master-size"); !strings.HasPrefix(got, vol.Volume.MasterSize+" ") {
		t.Errorf("volume page master size %q; the API says %s", got, vol.Volume.MasterSize)
	}
	shot("volume")
	if got := text(reader+"/tasks?state=pending", "#tasks"); !strings.Contains(got, runID) || !strings.Contains(got, cancelID) {
		t.Errorf("pending tasks page %q lacks %s and %s", got, runID, cancelID)
	}
	shot("tasks")

	// A reader: no cancel button, and a forged cancel is refused.
	if err := chromedp.Do(ctx, chromedp.Navigate(reader+"/tasks/"+cancelID)); err != nil {
		t.Fatal(err)
	}
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#cancel").length`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/tasks/`+cancelID+`/cancel", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 || status != 403 {
		t.Errorf("reader: %d cancel buttons, forged cancel %d; want none and 403", buttons, status)
	}
	// An operator cancels from the task page; it shows without a reload.
	if err := chromedp.Do(ctx, chromedp.Navigate(operator+"/tasks/"+cancelID),
		chromedp.SendKeys(chromedp.CSS("#cancel-reason"), "browser"), chromedp.Click(chromedp.CSS("#cancel"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#task-state", "cancelled")
	shot("task")

	// The other task: pending, then completed once resumed, on one page.
	if err := chromedp.Do(ctx, chromedp.Navigate(operator+"/tasks/"+runID), chromedp.Evaluate[chromedp.Void](`window.gkPage = 1`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#task-state", "pending")
	if r := webDo(t, api, "POST", apiURL+"/api/v1/resume", `{}`); r.code != 200 {
		t.Fatalf("resume = %d %s", r.code, r.body)
	}
	waitText(t, ctx, "#task-state", "completed")
	if loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.gkPage === 1`)); err != nil || !loaded {
		t.Errorf("the page was reloaded to show completion (%v)", err)
	}
}

// waitText polls the page until sel's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	testutil.Eventually(t, admintest.Wait, fmt.Sprintf("%s to show %q without a reload", sel, want), func() (bool, string) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ""`))
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(got, want), got
	})
}
