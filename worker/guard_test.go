package worker

import (
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestCallGuard: an attempt may call SeaweedFS until the leader may have
// requeued it (lease + grace after the send time of the last heartbeat it
// acknowledged, less a fifth of the grace), and never once the leader has
// said it is superseded. Acks move the anchor to the send time of the
// heartbeat they answer, in order; a welcome alone does not.
func TestCallGuard(t *testing.T) {
	w := &Worker{lease: time.Second, grace: 500 * time.Millisecond}
	a := &attempt{spec: &pb.TaskSpec{Task: &fsmpb.Task{Id: 7, Fence: 42}}}
	g := w.callGuard(a)
	guard := func() error { _, err := g(); return err }
	if until, err := g(); err != nil || until.IsZero() {
		t.Fatalf("no heartbeat acknowledged yet (a first session): until %v, %v; want allowed for a lease", until, err)
	}
	w.leaseAnchor = time.Now().Add(-1300 * time.Millisecond)
	if until, err := g(); err != nil || !until.Equal(w.leaseAnchor.Add(1400*time.Millisecond)) {
		t.Fatalf("1.3s after the anchor, inside lease 1s + grace 0.5s less 0.1s: until %v (anchor %v), %v", until, w.leaseAnchor, err)
	}
	w.leaseAnchor = time.Now().Add(-1450 * time.Millisecond)
	if err := guard(); err == nil {
		t.Fatal("1.45s after the anchor: allowed, want refused (within the margin)")
	}

	// Two heartbeats in flight; the first ack anchors at the first send.
	first, second := time.Now().Add(-2*time.Second), time.Now().Add(-10*time.Millisecond)
	w.hbSent = []time.Time{first, second}
	w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	if !w.leaseAnchor.Equal(first) {
		t.Fatalf("anchor %v after the first ack, want the first heartbeat's send time %v", w.leaseAnchor, first)
	}
	if err := guard(); err == nil {
		t.Fatal("anchored 2s ago: allowed")
	}
	w.handle(t.Context(), &pb.AdminMessage{Body: &pb.AdminMessage_HeartbeatAck{HeartbeatAck: &pb.HeartbeatAck{}}})
	if !w.leaseAnchor.Equal(second) {
		t.Fatalf("anchor %v after the second ack, want %v", w.leaseAnchor, second)
	}
	if err := guard(); err != nil {
		t.Fatalf("fresh anchor: %v", err)
	}

	// A superseded attempt is refused whatever the lease says.
	w.attempts = map[uint64]*attempt{7: a}
	a.cancel = func() {}
	w.cancel(t.Context(), &pb.Cancel{TaskId: 7, Fence: 42, Reason: "this attempt is no longer current", Superseded: true})
	if err := guard(); err == nil {
		t.Fatal("superseded attempt: allowed")
	}
	// A stuck-attempt cancel (not superseded) keeps the rollback allowed.
	b := &attempt{spec: &pb.TaskSpec{Task: &fsmpb.Task{Id: 8, Fence: 43}}, cancel: func() {}}
	w.attempts[8] = b
	w.cancel(t.Context(), &pb.Cancel{TaskId: 8, Fence: 43, Reason: "stuck"})
	if _, err := w.callGuard(b)(); err != nil || !b.released {
		t.Fatalf("stuck cancel: guard %v, released %v; want allowed and released", err, b.released)
	}
}

// TestFirstHelloAnchorsTheLease: a process's first hello starts its lease
// anchor (a later hello does not move it), so an attempt assigned before
// the first heartbeat ack is refused once lease + grace have passed since
// that hello, e.g. by a worker frozen right after receiving it. Found by
// the fault harness: such a worker compacted and committed a volume its
// task's next attempt was compacting.
func TestFirstHelloAnchorsTheLease(t *testing.T) {
	w := &Worker{lease: time.Second, grace: 500 * time.Millisecond}
	a := &attempt{spec: &pb.TaskSpec{Task: &fsmpb.Task{Id: 7, Fence: 42}}}
	g := w.callGuard(a)
	hello := time.Now().Add(-2 * time.Second)
	w.anchorFirstHello(hello)
	if !w.leaseAnchor.Equal(hello) {
		t.Fatalf("anchor %v after the first hello at %v", w.leaseAnchor, hello)
	}
	if _, err := g(); err == nil {
		t.Fatal("2s after the first hello, with no ack: allowed, want refused (lease 1s + grace 0.5s)")
	}
	w.anchorFirstHello(time.Now())
	if !w.leaseAnchor.Equal(hello) {
		t.Fatal("a later hello moved the anchor")
	}
}
