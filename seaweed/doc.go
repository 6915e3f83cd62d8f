// Package seaweed is groundskeeper's adapter to SeaweedFS: the master client
// (finding and following the master leader among several masters;
// topology, admin lock, master-driven vacuum switch), the volume-server
// operations each maintenance task needs, a pure topology model built from
// the master's VolumeList, how SeaweedFS's gRPC ports are reached (its
// security.toml: plaintext or mutual TLS), and (in sim/) a simulated
// SeaweedFS that speaks the same gRPC protocol.
//
// It decides nothing: what to run and when belongs to the scheduler.
package seaweed
