package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFollowsTheLiveHeap(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{8 << 20, 400},   // a small admin: 32 MiB of headroom
		{64 << 20, 400},  // 256 MiB of headroom
		{128 << 20, 200}, // still 256 MiB
		{256 << 20, 100},
		{1 << 30, 100}, // never below Go's default
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("live heap %d MiB: GOGC %d, want %d", c.live>>20, got, c.want)
		}
	}
}

func TestAdaptGCLowersTheTargetForALargeHeap(t *testing.T) {
	adaptGC()
	read := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	// Live heap is the size of the objects the last cycle marked, whether
	// or not their pages were ever written: no need to fill it (which,
	// byte by byte under -race, took most of this test's time).
	live := make([]byte, 160<<20)
	// 160 MiB live (and a little more of the test binary's): about 160.
	deadline := time.Now().Add(20 * time.Second)
	for p := read(); p > 160 || p < 140; p = read() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d with 160 MiB live, want about 160", p)
		}
		runtime.GC() // the finalizer of the cycle before adjusts it
	}
	runtime.KeepAlive(live)
	live = nil
	deadline = time.Now().Add(20 * time.Second)
	for p := read(); p != gcMaxPercent; p = read() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d once the heap shrank, want %d", p, gcMaxPercent)
		}
		runtime.GC()
	}
}
