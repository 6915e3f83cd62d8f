package admintest

// Reading an admin's metrics, and a one-node admin to read them from.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// MetricsBody is node n's /metrics exposition, as Prometheus would scrape it.
func MetricsBody(t testing.TB, n *admin.Node) string {
	t.Helper()
	reg := n.Metrics()
	_, body := Scrape(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), "/metrics")
	return body
}

// Scrape GETs path from h and returns the status code and body.
func Scrape(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// MetricValue finds one series, written as exposed (labels sorted by
// name), in a text exposition.
func MetricValue(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

func WantMetric(t testing.TB, body, series string, want float64) {
	t.Helper()
	got, ok := MetricValue(body, series)
	if !ok {
		t.Errorf("metric %s missing", series)
		return
	}
	if got != want {
		t.Errorf("%s = %v; want %v", series, got, want)
	}
}

// StartSingleAdmin starts a one-voter admin node without a master and
// returns it with its gRPC address.
func StartSingleAdmin(t testing.TB) (*admin.Node, string) {
	t.Helper()
	raftAddr, grpcAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	n, err := admin.Start(context.Background(), admin.Config{ID: "m1", DataDir: filepath.Join(t.TempDir(), "m1"), RaftAddr: raftAddr, GRPCAddr: grpcAddr,
		Peers: []cluster.Peer{{ID: "m1", RaftAddr: raftAddr}}, Bootstrap: true, Logger: testutil.Logger("admin.m1"), Scheduler: SchedConfig()})
	if err != nil {
		t.Fatalf("start admin: %v", err)
	}
	t.Cleanup(func() { n.Stop() })
	testutil.EventuallyTrue(t, Wait, "the single node to lead", func() bool { return n.Raft().IsLeader() })
	return n, grpcAddr
}
