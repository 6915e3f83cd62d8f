// Package cluster runs one admin node's raft: the bbolt log and stable stores,
// the snapshot store, the TCP transport, bootstrapping from a fixed peer list
// exactly once, membership changes, leadership notifications, applying a
// command on the leader and confirming leadership for linearizable reads.
//
// It knows nothing about tasks: commands are opaque bytes and the state
// machine is whatever raft.FSM it is given. Forwarding to the leader is the
// caller's job; Apply on a follower returns an error wrapping ErrNotLeader.
package cluster
