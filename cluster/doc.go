// Package cluster runs one admin node's raft: the bbolt log and stable stores,
// the snapshot store, the TCP transport, bootstrapping from a fixed peer list
// exactly once, membership changes, leadership notifications, applying a
// command on the leader and confirming leadership for linearizable reads.
//
// It is the only package that imports hashicorp/raft. It runs the fsm
// package's FSM under raft (fsm.go is the thin adapter that hands it raft's
// log entries and snapshots), but knows nothing about tasks: commands are
// opaque bytes. Forwarding to the leader is the caller's job; Apply on a
// follower returns an error wrapping ErrNotLeader.
package cluster
