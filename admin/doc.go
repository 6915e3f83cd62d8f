// Package admin is the composition root of one admin node: it wires the
// raft member (cluster), the replicated state (fsm), the leader's
// scheduler, the node's copy of the master's topology (seaweed), the gRPC
// services (rpc) and the node's metrics registry, starts them in order
// (Start, StartNodes) and stops them in order (Stop). The `admin` and
// `dev` commands of cmd/groundskeeper, the in-process system tests beside
// it and the benchmarks all start admins through this one entry point, so
// what they test is what runs.
//
// It owns wiring and lifecycle only, no decisions (those belong to the
// packages it wires; see docs/architecture.md §3). It must not parse
// flags or environment variables, print to stdout, call os.Exit, install
// signal handlers or touch process-wide settings (the GC target, the
// global go-metrics sink): those belong to the command line, which may run
// several nodes in one process. Errors are returned, logs go to
// Config.Logger.
//
// admintest, beside it, is the in-process system harness: a simulated
// SeaweedFS, three admins started with StartNodes and real workers.
package admin
