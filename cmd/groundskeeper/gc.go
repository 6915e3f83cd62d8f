package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// The GC target follows the live heap. An admin's heap is small until it
// holds a large cluster's topology (about 190 MiB at a million volumes): a
// small heap gets a high GOGC, trading a few MiB for less GC work on the
// per-request garbage, while a large one gets Go's default, so a
// million-volume admin does not grow to five times its live heap.
const (
	gcMinPercent = 100
	gcMaxPercent = 400
	// gcHeadroom is the garbage a heap may grow by before GOGC falls from
	// gcMaxPercent towards gcMinPercent.
	gcHeadroom = 256 << 20
)

// gcPercentFor is the GOGC for a live heap of that many bytes: the headroom
// as a percentage of the heap, between gcMinPercent and gcMaxPercent.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcMaxPercent
	}
	p := uint64(gcHeadroom) * 100 / live
	return int(min(max(p, gcMinPercent), gcMaxPercent))
}

// adaptGC sets the GC target from the live heap now and after every GC
// cycle, for as long as the process runs.
func adaptGC() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	debug.SetGCPercent(gcMaxPercent)
	current := gcMaxPercent
	var watch func(*gcSentinel)
	watch = func(s *gcSentinel) {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := gcPercentFor(sample[0].Value.Uint64()); p != current {
				debug.SetGCPercent(p)
				current = p
			}
		}
		// A fresh sentinel is unreachable again at the next cycle.
		runtime.SetFinalizer(&gcSentinel{}, watch)
	}
	runtime.SetFinalizer(&gcSentinel{}, watch)
}

// gcSentinel is garbage from birth: its finalizer runs once per GC cycle.
// It is too large for the tiny allocator, whose objects may never be
// finalized.
type gcSentinel struct{ _ [32]byte }
