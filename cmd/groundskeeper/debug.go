package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

// serveDebug serves Go's profiling endpoints on addr until the returned
// function is called.
func serveDebug(addr string) (func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --debug-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// raft's own timings (commit time, store latency, batch sizes) over the
	// last ten-second intervals.
	sink := metrics.NewInmemSink(10*time.Second, time.Minute)
	if _, err := metrics.NewGlobal(metrics.DefaultConfig("groundskeeper"), sink); err != nil {
		lis.Close()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux.HandleFunc("/debug/metrics", func(w http.ResponseWriter, r *http.Request) {
		data, err := sink.DisplayMetrics(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(data)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(lis)
	return func() { srv.Close() }, nil
}
