package rpc

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestStreamWatchersDoNotLeak: every stream on a TLS server has a
// goroutine watching its client's certificate (cutOnPeer) and one running
// its handler; opening and ending 200 worker sessions, and making 200
// unary calls, leaves no more goroutines than one session's worth.
func TestStreamWatchersDoNotLeak(t *testing.T) {
	dir, addr, workers := tlsTestServer(t)
	for _, c := range []struct {
		role certs.Role
		name string
	}{{certs.RoleWorker, "w1"}, {certs.RoleReader, "rita"}} {
		if _, err := certs.Issue(dir, c.role, c.name, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	conn := dialAs(t, dir, addr, "w1")
	reader := pb.NewAdminClient(dialAs(t, dir, addr, "rita"))
	round := func(n int) {
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			openSession(t, ctx, conn, "w1")
			if _, err := reader.Status(ctx, &pb.StatusRequest{}); err != nil {
				t.Fatal(err)
			}
			cancel()
			select {
			case <-workers.ended:
			case <-time.After(10 * time.Second):
				t.Fatal("a session's handler did not end after its client went away")
			}
		}
	}
	round(5) // connections up, their goroutines started
	base := runtime.NumGoroutine()
	round(200)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+4 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after 200 sessions and calls, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
