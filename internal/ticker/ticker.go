// Package ticker runs a function at a fixed interval until a context ends:
// the ticker, select and stop that background loops would otherwise each
// write again.
package ticker

import (
	"context"
	"time"
)

// Every calls fn every d (the first call d after Every is called) until ctx
// ends. A call that outlasts d delays the next one; ticks are not queued up.
func Every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fn()
		case <-ctx.Done():
			return
		}
	}
}
