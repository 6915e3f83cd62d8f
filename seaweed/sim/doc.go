// Package sim is a simulated SeaweedFS cluster that speaks the real gRPC
// protocol: one master (master_pb.Seaweed) and N volume servers
// (volume_server_pb.VolumeServer), each a real gRPC server on a loopback
// port. Admin and worker code talk to it exactly as they would to a real
// cluster; all state lives in memory, so it scales to 100,000+ volumes.
//
// It is used by `groundskeeper dev`, by scale benchmarks and by
// fault-injection tests. Behaviour follows docs/seaweedfs-rpcs.md, including
// the error codes and messages, the idempotency quirks (a second concurrent
// VacuumVolumeCompact is a no-op success, a VacuumVolumeCommit without a
// finished compaction unloads the volume until its server restarts, ...)
// and the master's timing (heartbeat delay, partial topology while it
// refills after a restart).
//
// # Addresses and ports
//
// Every server listens for gRPC on a real port (ephemeral by default, see
// Config.BaseHTTPPort). Its HTTP port is virtual — nothing listens there —
// and is always gRPC port − 10000, SeaweedFS's default offset, so both
// address forms resolve: "host:httpPort" (gRPC at httpPort+10000) and
// "host:httpPort.grpcPort". A data node's id and address in VolumeList are
// "<Host>:<httpPort>" (Host is 127.0.0.1 by default; with DistinctHosts
// volume server i is on 127.0.0.<100+i>) and its grpc_port is the
// listening port, so
// seaweed.FromVolumeList derives the dialable address. The master's gRPC
// address is Cluster.MasterAddress().
//
// # Message sizes
//
// A VolumeList of 100,000 volumes is several megabytes, above gRPC's default
// 4 MiB receive limit. The servers accept and send up to MaxMessageSize
// (1 GiB, as SeaweedFS does). Clients must raise their own receive limit:
// dial with grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(sim.MaxMessageSize))
// — DialOptions() returns that together with insecure credentials.
//
// # Task metadata and the operation log
//
// Every mutating volume-server RPC (compact, commit, cleanup, mark
// read-only/writable, delete, copy, tail, and the EC generate, copy, mount,
// unmount and delete) is recorded in an operation log with its volume id,
// server, method, start and end. Callers may attach the gRPC metadata key "gk-task"
// (TaskMetadataKey) with the value "<taskID>/<fence>"; the log records it.
// Overlaps reports every pair of operations on the same volume whose time
// intervals overlap and which belong to different tasks (a different task id
// or fence, or no "gk-task" key at all on either side). Operations of one
// task and fence may overlap freely (e.g. parallel shard copies).
//
// # Faults
//
// InjectFault adds latency or errors per method, server and volume (fail
// the next N calls, or each call with a probability from a seeded source,
// before or after the handler runs). VolumeServer.Stop/Start take a server
// down and bring it back on the same port; StopMaster/StartMaster do the
// same for the master, which then forgets every registration, admin lock and
// vacuum switch, and re-learns the volume servers over Config.MasterRefillDelay
// (VolumeList answers with a partial topology meanwhile, without error).
// With Config.Masters > 1 several master endpoints share the state; one
// leads and the others refuse leader-only calls as SeaweedFS followers do.
// KillMaster/ReviveMaster and StepDown move the leadership; the leader's
// memory is lost with its term, as above.
//
// # Durability
//
// Besides operations the simulator tracks data (content.go): a replica's
// content is the set of client writes (Write, DeleteData) it holds,
// unchanged by compaction, copied by VolumeCopy and extended by
// VolumeTailReceiver; each volume has a ledger of its promised copies and
// of the writes that were acknowledged (a write reaches every replica or
// fails, and a read-only replica refuses it); every EC shard file carries
// the generation it belongs to (the encode's EncodeTsNs and the content it
// encoded); deletes a server takes while it mounts shards of the volume
// are journalled in an .ecj and count as part of that generation, and a
// write sent to one server of a single-copy volume (a move's writable
// target) is acknowledged by that copy alone (clientwrites.go: WriteTo,
// DeleteDataOn, OverwriteOn). Durability (any moment) and DurabilityAtRest (no task in
// flight) compare the disks against the ledgers and report each volume
// whose data is not held as promised, with its op-log history.
//
// Everything is safe for concurrent use.
package sim
