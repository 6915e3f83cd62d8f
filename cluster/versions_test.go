package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestVerifyReadRechecksReadinessAfterRound: leadership lost and regained
// while the verify round is in flight leaves the node leading in a new
// term whose barrier has not run (readiness reset, as watchLeadership does
// on the lost-and-regained notification). The round itself succeeds, but
// the read must not be served: VerifyRead checks readiness again, in the
// term it was ready in, after the round. The change of leadership is
// injected between the round and that check by the verifier the test
// installs.
func TestVerifyReadRechecksReadinessAfterRound(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[c.waitLeader()].node
	if err := n.VerifyRead(context.Background()); err != nil {
		t.Fatalf("a ready leader's read: %v", err)
	}
	n.verifier = newVerifyBatcher(func() error {
		err := n.raft.VerifyLeader().Error()
		// Lost and regained in between: the new term's barrier is not done.
		n.readyTerm.Store(0)
		return err
	})
	err := n.VerifyRead(context.Background())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("read after leadership changed during the round: %v; want ErrNotReady", err)
	}
}

// TestFatalOnUnknownCommand: a committed command this build does not know
// (written here past the leader's gate, as a newer leader would) reaches
// the process through Node.Fatal, naming the entry, and is not applied
// (nor anything after it); a later command is answered "outcome unknown
// here", not as refused, since the other nodes may apply it.
func TestFatalOnUnknownCommand(t *testing.T) {
	c := newCluster(t, 1, nil)
	li := c.waitLeader()
	n, f := c.nodes[li].node, c.nodes[li].fsm
	c.submit(1)
	b, err := fsm.Encode(time.Now().UnixNano(), &fsmpb.Command{Body: &fsmpb.Command_TestCommand{TestCommand: &fsmpb.TestCommand{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fut := n.raft.Apply(b, 10*time.Second)
	if err := fut.Error(); err != nil {
		t.Fatal(err)
	}
	idx := fut.Index()
	select {
	case err := <-n.Fatal():
		var u *fsm.UnknownCommandError
		if !errors.As(err, &u) || u.Index != idx || u.Version != fsm.TestCommandVersion {
			t.Fatalf("fatal %v; want the unknown command at index %d", err, idx)
		}
	case <-ctx.Done():
		t.Fatal("no fatal error after a committed command of an unknown version")
	}
	_, err = n.Apply(ctx, encode(t, submitCmd(2, fsmpb.TaskType_TASK_TYPE_VACUUM)))
	var h *fsm.HaltedError
	if !errors.As(err, &h) || !strings.Contains(err.Error(), "outcome is unknown") {
		t.Fatalf("apply after the halt: %v; want a HaltedError saying the outcome is unknown here", err)
	}
	if got := taskCount(f); got != 1 {
		t.Fatalf("%d tasks; want 1 (nothing applied past the unknown entry)", got)
	}
}
