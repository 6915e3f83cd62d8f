// Package fsm owns groundskeeper's replicated state: maintenance tasks and
// their legal state transitions, per-volume reservations, committed-but-
// unreported capacity changes, worker registrations and the admin nodes'
// client addresses. It encodes and decodes the versioned commands of the
// replicated log and applies them deterministically (FSM, in fsm.go), and
// snapshots and restores the state over an io.Writer and an io.Reader.
//
// Apply must not read the clock, draw randomness, depend on map iteration
// order, do I/O or start goroutines: every time it records comes from the
// command, stamped by whoever proposed it.
//
// The package must not link hashicorp/raft (nor may its tests): a log entry
// reaches it as an Entry of plain values. Raft stays in package cluster,
// whose fsm.go adapts FSM to raft.FSM; the scheduler and the worker, which
// read the state, link no raft either.
package fsm
