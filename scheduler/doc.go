// Package scheduler holds the leader-only maintenance loops: detection from
// the master's topology, the pending queue, worker selection and assignment,
// worker leases, stuck detection, retries with backoff, and reconciliation of
// committed capacity changes against the topology.
//
// Decisions are pure functions (detect.go, plan.go, assign.go, reconcile.go)
// tested without a cluster; scheduler.go only wires them to raft, the master
// and the worker sessions. It never performs a SeaweedFS operation itself.
package scheduler
