// Package placement owns where a task's shards and moves go given a
// topology: the EC layout and its spread rule (PlaceShards, CheckSpread),
// a balance's source and target (PlanMove), SeaweedFS's replica placement
// rules (CanAdd, IsGoodMove, Misplaced, SatisfiesPlacement) with the
// Violations measure and the move rule plans use (MoveKeepsPlacement),
// disk types (DiskTypeKey, FreeSlotsOf), and the free-slot and replica
// questions they ask of the topology.
//
// It is pure: no I/O, no clock, no goroutines, no state of its own. It sits
// below both the scheduler, which plans a task's attempt with it, and the
// capacity projection, which places a task in flight where a plan would put
// it now; neither may be imported here.
package placement
