// Package scheduler holds the leader-only maintenance loops: detection from
// the master's topology, the pending queue, worker selection and assignment,
// worker leases, stuck detection, retries with backoff, and reconciliation of
// committed capacity changes against the topology.
//
// Decisions are pure functions tested without a cluster (detect.go, plan.go,
// assign.go; where shards and moves go is package placement's, whether the
// topology shows a change capacity.Reflected); scheduler.go only wires them
// to raft, the master and the worker sessions. It never performs a SeaweedFS operation itself.
package scheduler
