// Package worker is the maintenance worker: it finds the leader through any
// admin address, holds one session stream with it, journals every accepted
// assignment in a local bbolt file before starting it, and runs the
// executors that perform vacuum, erasure coding and balance with real
// volume-server RPCs, rolling back what a failed attempt changed.
//
// It decides nothing about what to run: assignments come from the leader.
package worker
