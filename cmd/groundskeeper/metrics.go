package main

// The HTTP side of metrics: /metrics, /healthz and /readyz for an admin
// (whose registry the admin package fills) and a worker (whose collector
// is here).

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/groundskeeper-dev/groundskeeper/admin"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// metricsNS is the namespace of every metric, the admin package's too.
const metricsNS = admin.MetricsNamespace

// metricsHandler serves /metrics from reg, /healthz, and /readyz per ready.
func metricsHandler(reg *prometheus.Registry, ready func() (bool, string)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// adminHandler returns an admin node's metrics and health endpoints.
func adminHandler(n *admin.Node) http.Handler {
	return metricsHandler(n.Metrics(), n.Ready)
}

// workerHandler returns a worker's metrics and health endpoints.
func workerHandler(w *worker.Worker) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newWorkerCollector(w), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return metricsHandler(reg, func() (bool, string) {
		if !w.Stats().Connected {
			return false, "not connected to a leader"
		}
		return true, ""
	})
}

// workerCollector reads a worker's load and outcome counts at scrape time.
type workerCollector struct {
	w                                   *worker.Worker
	running, max, connected, finishedTo *prometheus.Desc
}

func newWorkerCollector(w *worker.Worker) *workerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNS, "worker", name), help, labels, nil)
	}
	return &workerCollector{w: w,
		running:    d("running_attempts", "Attempts running on this worker."),
		max:        d("max_concurrent", "How many attempts this worker runs at once (--max-concurrent)."),
		connected:  d("connected", "1 while a session with the leader is up, else 0."),
		finishedTo: d("attempts_finished_total", "Attempts finished on this worker, by outcome reported.", "outcome"),
	}
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.max
	ch <- c.connected
	ch <- c.finishedTo
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Stats()
	conn := 0.0
	if st.Connected {
		conn = 1
	}
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConcurrent))
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, conn)
	ch <- prometheus.MustNewConstMetric(c.finishedTo, prometheus.CounterValue, float64(st.Completed), "completed")
	ch <- prometheus.MustNewConstMetric(c.finishedTo, prometheus.CounterValue, float64(st.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(c.finishedTo, prometheus.CounterValue, float64(st.Released), "released")
}

// listenMetrics opens the --metrics-addr listener; serveMetrics then serves
// h on it until the returned function is called. They are separate so a
// busy address is refused before anything else starts.
func listenMetrics(addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --metrics-addr %s: %w", addr, err)
	}
	return lis, nil
}

func serveMetrics(lis net.Listener, h http.Handler) func() {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	return func() { srv.Close() }
}
