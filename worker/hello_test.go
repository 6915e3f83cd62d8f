package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// silentAdmin accepts a worker's stream and never answers (a SIGSTOPped
// admin whose kernel still accepts connections).
type silentAdmin struct{}

func (silentAdmin) Session(ctx context.Context, _ ...grpc.CallOption) (pb.WorkerService_SessionClient, error) {
	return &silentStream{ctx: ctx}, nil
}

type silentStream struct {
	grpc.ClientStream
	ctx context.Context
}

func (s *silentStream) Send(*pb.WorkerMessage) error { return nil }
func (s *silentStream) Recv() (*pb.AdminMessage, error) {
	<-s.ctx.Done()
	return nil, s.ctx.Err()
}

// TestHelloToASilentAdminIsGivenUp: a worker does not wait on an admin
// that never answers its hello, so it re-attaches to the leader within its
// lease. Found by the fault harness: workers whose leader died kept trying
// a SIGSTOPped follower, re-attached only after the new leader had
// requeued their attempts, and the completions waiting in their outboxes
// were refused as stale; the retries then failed ("already erasure coded").
func TestHelloToASilentAdminIsGivenUp(t *testing.T) {
	w := &Worker{cfg: Config{ID: "w1", MaxConcurrent: 1}, log: hclog.NewNullLogger(), lease: 400 * time.Millisecond}
	began := time.Now()
	_, welcomed, err := w.session(context.Background(), silentAdmin{}, "127.0.0.1:1")
	if welcomed || err == nil || !strings.Contains(err.Error(), "did not answer the hello") {
		t.Fatalf("session with a silent admin: welcomed %v, %v", welcomed, err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("gave up after %s, want about half the lease (200ms)", d)
	}
}
