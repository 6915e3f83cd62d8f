package rpc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestWatchCap: a node serves at most MaxWatches capacity watches at once;
// the next is refused with ResourceExhausted in one sentence, and ending
// one watch frees its slot for another.
func TestWatchCap(t *testing.T) {
	const limit = 3
	e := newWatchEnv(t, func(s *Server) {
		l := DefaultStreamLimits()
		l.MaxWatches = limit
		s.SetStreamLimits(l)
	})
	req := &pb.WatchCapacityRequest{VolumeIds: []uint32{7}}
	var cancels []context.CancelFunc
	for i := 0; i < limit; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cancels = append(cancels, cancel)
		next(t, e.watch(ctx, req)) // the first update: the slot is held
	}
	over := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := e.watch(ctx, req).Recv()
		return err
	}
	err := over()
	wantCode(t, "watch beyond the cap", err, codes.ResourceExhausted)
	wantMessage(t, "watch beyond the cap", err, "limit of 3 capacity watches")
	if err := <-e.ended; status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the refused watch's handler returned %v", err)
	}

	cancels[0]()
	select {
	case err := <-e.ended:
		wantCode(t, "the cancelled watch", err, codes.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled watch's handler did not return within 10s")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if u := next(t, e.watch(ctx, req)); vol(u, 7) == nil {
		t.Fatalf("the watch that took the freed slot got %v", u)
	}
	wantCode(t, "watch beyond the cap again", over(), codes.ResourceExhausted)
}
