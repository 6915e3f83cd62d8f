// Package fsm owns groundskeeper's replicated state: maintenance tasks and
// their legal state transitions, per-volume reservations, committed-but-
// unreported capacity changes, worker registrations and the admin nodes'
// client addresses. It encodes and decodes the versioned raft commands and
// applies them deterministically.
//
// Apply must not read the clock, draw randomness, depend on map iteration
// order, do I/O or start goroutines: every time it records comes from the
// command, stamped by whoever proposed it. The only raft-aware code is the
// thin adapter in raft.go.
package fsm
