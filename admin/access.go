package admin

import (
	"github.com/groundskeeper-dev/groundskeeper/cluster"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/scheduler"
)

// The parts of a running node, for the command line (dev's report) and
// the tests. They are the node's own: stopping or reconfiguring them
// behind the node's back is not supported.

// ID is the node's raft server id.
func (n *Node) ID() string { return n.raft.ID() }

// Raft is the node's raft member: leadership, status, membership.
func (n *Node) Raft() *cluster.Node { return n.raft }

// FSM is the node's copy of the replicated state.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Scheduler is the node's scheduler; its loops run only while the node leads.
func (n *Node) Scheduler() *scheduler.Scheduler { return n.sched }

// API is the implementation of the node's Admin, Internal and
// CapacityOracle services, callable in-process.
func (n *Node) API() *rpc.Server { return n.server }

// Fatal delivers the error that stopped the node's state machine (a
// committed command this build does not know, docs/architecture.md §4.5):
// the node then applies nothing more and should be stopped.
func (n *Node) Fatal() <-chan error { return n.raft.Fatal() }

// Kill stops the node as a crash would for its clients: every gRPC
// connection (worker sessions included) breaks at once, instead of
// draining as in Stop; then it stops as Stop does. Tests use it to play a
// lost admin.
func (n *Node) Kill() error {
	n.grpc.Stop()
	return n.Stop()
}
