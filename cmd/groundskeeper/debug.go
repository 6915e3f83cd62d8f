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

// debugWriteTimeout bounds a debug response, a profile included.
const debugWriteTimeout = 70 * time.Second

// loopbackOnly refuses an address other hosts can reach: the profiler shows
// the process's memory, goroutines and command line to whoever connects,
// and serves no TLS, so it is for a shell on the admin's own host (or an
// SSH tunnel to it).
func loopbackOnly(flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address: the profiler shows the process's memory and command line to anyone who connects, so it listens only on 127.0.0.1, [::1] or localhost (reach it from elsewhere through an SSH tunnel)", flag, addr)
}

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
	srv := debugServer(mux)
	go srv.Serve(lis)
	return func() { srv.Close() }, nil
}

// debugServer serves h with timeouts, so that a slow or idle client cannot
// hold connections open; the write timeout leaves room for a 60 s CPU
// profile or trace (pprof refuses a longer one than the server's write
// timeout).
func debugServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: debugWriteTimeout, IdleTimeout: time.Minute}
}
