package rpc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestMessageSizeLimits: the server holds every method to its message
// limit, before the handler sees the request: a SubmitTask above 64 KiB is
// refused with ResourceExhausted (and one above the server's 8 MiB before
// it is even decoded), as is a worker message above 1 MiB; a client told
// CallLimits refuses to send the latter itself.
func TestMessageSizeLimits(t *testing.T) {
	c := newCluster(t)
	l := c.waitLeader()
	n := c.nodes[c.followers(l)[0]]
	before := n.fsm.Hash()
	big := func(size int) *pb.SubmitTaskRequest {
		return &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 1, Params: []*fsmpb.Param{{Key: "k", Value: strings.Repeat("v", size)}}}
	}
	for _, size := range []int{maxSmallRequest + 1, MaxRequestMessage + 1} {
		_, err := n.client.SubmitTask(context.Background(), big(size))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("a SubmitTask of %d bytes: %v, want ResourceExhausted", size, err)
		}
	}
	// The same through a client that knows the limits: refused before
	// anything is sent.
	rc, err := Dial([]string{n.grpcAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = pb.NewAdminClient(rc.conns[0]).SubmitTask(context.Background(), big(MaxRequestMessage+1))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a SubmitTask above MaxRequestMessage through Dial: %v, want ResourceExhausted", err)
	}
	// A worker message above 1 MiB ends the session before the scheduler
	// sees it (on a server of its own: the test cluster has no workers).
	g := grpc.NewServer(ServerOptions()...)
	pb.RegisterWorkerServiceServer(g, NewWorkerServer(n.server, noSessions{t}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	wconn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, err := pb.NewWorkerServiceClient(wconn).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hello := &pb.Hello{WorkerId: "w1", MaxConcurrent: 1}
	for i := 0; i < 40_000; i++ {
		hello.Running = append(hello.Running, &pb.RunningTask{TaskId: uint64(i) + 1, Fence: 1 << 40, Step: strings.Repeat("s", 20)})
	}
	if err := ws.Send(&pb.WorkerMessage{Body: &pb.WorkerMessage_Hello{Hello: hello}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a worker hello of over 1 MiB: %v, want ResourceExhausted", err)
	}
	if h := n.fsm.Hash(); h != before {
		t.Errorf("refused messages changed the state")
	}
	// Within the limits all goes on as before.
	if _, err := submit(t, n, fsmpb.TaskType_TASK_TYPE_VACUUM, 5); err != nil {
		t.Fatalf("a small SubmitTask: %v", err)
	}
}
