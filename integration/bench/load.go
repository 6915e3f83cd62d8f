package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// system is something to load: a cluster of three and an operation.
type system interface {
	name() string
	// op performs one write from client c (its seq-th) against node `node`.
	op(ctx context.Context, c, node int, seq uint64) error
	nodes() int
	leader(ctx context.Context) (int, error)
	stop()
}

type row struct {
	clients  int
	ops      int
	errors   int64
	perSec   float64
	p50, p99 time.Duration
	errKinds map[string]int
}

func measureAll(ctx context.Context, s system, clients []int, warmup, dur time.Duration, leaderOnly bool) ([]row, error) {
	var rows []row
	var seqBase uint64
	for _, c := range clients {
		leader := -1
		if leaderOnly {
			l, err := s.leader(ctx)
			if err != nil {
				return nil, err
			}
			leader = l
		}
		if warmup > 0 {
			loadFor(ctx, s, c, warmup, leader, &seqBase)
		}
		r := loadFor(ctx, s, c, dur, leader, &seqBase)
		if r.ops == 0 {
			return nil, fmt.Errorf("%s: no operation succeeded with %d clients (%d errors)", s.name(), c, r.errors)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// loadFor runs a closed loop: each client issues its next write as soon as
// the previous one returns, for dur.
func loadFor(ctx context.Context, s system, clients int, dur time.Duration, leader int, seqBase *uint64) row {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errs     atomic.Int64
		errKinds = map[string]int{}
	)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			node := c % s.nodes()
			if leader >= 0 {
				node = leader
			}
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				err := s.op(ctx, c, node, atomic.AddUint64(seqBase, 1))
				// A call cut off by the end of the window is not an error
				// (gRPC may see the deadline pass before ctx's own timer fires).
				if !time.Now().Before(deadline) {
					break
				}
				if err != nil {
					errs.Add(1)
					mu.Lock()
					errKinds[err.Error()]++
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := row{clients: clients, ops: len(all), errors: errs.Load(), perSec: float64(len(all)) / elapsed.Seconds()}
	r.errKinds = errKinds
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func printTable(title string, rows []row) {
	fmt.Printf("\n%s\n", title)
	fmt.Printf("%8s %12s %10s %10s %8s\n", "clients", "ops/s", "p50", "p99", "errors")
	for _, r := range rows {
		fmt.Printf("%8d %12.0f %10s %10s %8d\n", r.clients, r.perSec, ms(r.p50), ms(r.p99), r.errors)
	}
	for _, r := range rows {
		for msg, n := range r.errKinds {
			fmt.Printf("  %d clients: %d x %s\n", r.clients, n, msg)
		}
	}
}

func printRatio(gk, etcd []row) {
	fmt.Printf("\ngroundskeeper / etcd throughput\n")
	for i := range gk {
		if i < len(etcd) && etcd[i].perSec > 0 {
			fmt.Printf("%8d clients: %.2fx\n", gk[i].clients, gk[i].perSec/etcd[i].perSec)
		}
	}
}
