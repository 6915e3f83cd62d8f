package sim

import "time"

// Clock is the time the simulator's slow operations (compaction, volume
// and shard copies, EC generation, injected latency, tailing) wait on.
// The default is the real clock; a test may pass one it advances itself.
type Clock interface {
	Now() time.Time
	// After sends the time on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
