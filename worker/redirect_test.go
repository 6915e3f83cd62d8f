package worker

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// scriptedAdmin answers a worker's hello with one message, then ends the
// stream.
type scriptedAdmin struct{ answer *pb.AdminMessage }

func (a scriptedAdmin) Session(context.Context, ...grpc.CallOption) (pb.WorkerService_SessionClient, error) {
	return &scriptedStream{answer: a.answer}, nil
}

type scriptedStream struct {
	grpc.ClientStream
	mu     sync.Mutex
	answer *pb.AdminMessage
}

func (s *scriptedStream) Send(*pb.WorkerMessage) error { return nil }
func (s *scriptedStream) Recv() (*pb.AdminMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.answer; m != nil {
		s.answer = nil
		return m, nil
	}
	return nil, io.EOF
}

func redirectTo(addr string) scriptedAdmin {
	return scriptedAdmin{&pb.AdminMessage{Body: &pb.AdminMessage_Redirect{Redirect: &pb.Redirect{LeaderId: "x", LeaderGrpcAddr: addr}}}}
}

// TestRedirectOnlyToKnownAdmins: a worker follows an admin's redirect only
// to a configured admin or to a member the last leader that welcomed it
// listed. A redirect elsewhere (the forged SetAdminAddr sent a real
// worker to an attacker) is refused and logged, and the worker goes on with
// its configured admins.
func TestRedirectOnlyToKnownAdmins(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	w := &Worker{cfg: Config{ID: "w1", Admins: []string{"a:1", "b:1"}, MaxConcurrent: 1},
		log: hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{mu: &logMu, w: &logs}})}
	ctx := context.Background()

	redirected, _, err := w.session(ctx, redirectTo("evil:1"), "a:1")
	if redirected || !errors.Is(err, errUnknownRedirect) {
		t.Fatalf("redirect to evil:1: redirected %v, %v; want it refused", redirected, err)
	}
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if !strings.Contains(logged, "refused a redirect") || !strings.Contains(logged, "evil:1") || !strings.Contains(logged, "a:1") {
		t.Errorf("the refusal was not logged with both addresses: %q", logged)
	}
	for range 4 {
		if a := w.pickAddr(); a != "a:1" && a != "b:1" {
			t.Fatalf("after a refused redirect the worker tries %s; want its configured admins", a)
		}
	}

	// A configured admin is followed.
	if redirected, _, _ := w.session(ctx, redirectTo("b:1"), "a:1"); !redirected || w.pickAddr() != "b:1" {
		t.Fatalf("redirect to the configured b:1 not followed (redirected %v)", redirected)
	}

	// A member a leader listed in its welcome is followed too; the list
	// replaces the previous one.
	welcome := func(addrs ...string) scriptedAdmin {
		return scriptedAdmin{&pb.AdminMessage{Body: &pb.AdminMessage_Welcome{Welcome: &pb.Welcome{LeaderId: "l", LeaseMs: 60000, HeartbeatMs: 60000, AdminGrpcAddrs: addrs}}}}
	}
	if _, welcomed, _ := w.session(ctx, welcome("a:1", "c:1"), "a:1"); !welcomed {
		t.Fatal("the scripted welcome was not taken")
	}
	if redirected, _, _ := w.session(ctx, redirectTo("c:1"), "a:1"); !redirected || w.pickAddr() != "c:1" {
		t.Fatalf("redirect to c:1, a member the leader listed, not followed (redirected %v)", redirected)
	}
	w.session(ctx, welcome("a:1", "d:1"), "c:1")
	if redirected, _, err := w.session(ctx, redirectTo("c:1"), "a:1"); redirected || !errors.Is(err, errUnknownRedirect) {
		t.Fatalf("redirect to c:1, no longer listed: redirected %v, %v; want it refused", redirected, err)
	}
	// A welcome listing nothing (an older leader) keeps what is known.
	w.session(ctx, welcome(), "a:1")
	if redirected, _, _ := w.session(ctx, redirectTo("d:1"), "a:1"); !redirected {
		t.Fatal("a welcome without a list made the worker forget the members it knew")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
