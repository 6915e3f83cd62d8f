// Package capacity is the capacity oracle's model: projections of volume
// and disk capacity from the master's topology, the active tasks and the
// committed changes the master has not reported yet. Every admin node
// serves it from its own state (docs/architecture.md §7), so it is not a
// leader loop and lives apart from the scheduler.
//
// It is pure: no I/O, no clock of its own (the caller's is passed in), no
// goroutines. It must not touch raft, speak gRPC or make scheduling
// decisions; where a projection needs one (where an encoding in flight puts
// its shards, which way a balance moves), it asks package placement, the
// pure planner below both it and the scheduler, what a plan would decide
// now. It must not import the scheduler (scripts/check.sh enforces it).
package capacity
