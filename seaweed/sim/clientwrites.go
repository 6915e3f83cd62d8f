package sim

import "fmt"

// Client writes sent to one volume server, routed as SeaweedFS routes them.
//
// A volume server that has shards of the volume mounted takes a delete as
// an EC delete, whatever regular replica it also holds
// (volume_server_handlers_write.go DeleteHandler, volume_grpc_batch_delete.go):
// the needle id is appended to the .ecj of one server that mounts the
// needle's primary data shard (store_ec_delete.go), and nothing reaches the
// regular replicas. Otherwise the server writes its own replica and
// replicates to the volume's other replicas only when its placement asks for
// more than one copy (topology/store_replicate.go): a single-copy volume
// being moved has two replicas, and a write or delete sent to the writable
// copy is acknowledged by it alone.
//
// Every request that is acknowledged is recorded in the volume's ledger, so
// a task that later destroys the only copy holding it is a durability
// violation.

// WriteTo simulates a client write of bytes in files new files sent to the
// server with the given id (or gRPC address).
func (c *Cluster) WriteTo(vid uint32, server string, bytes, files uint64) error {
	return c.clientOp(vid, server, appendRec{bytes: bytes, files: files})
}

// DeleteDataOn simulates a client deleting files files holding bytes bytes
// of vid through the given server: an EC delete journalled in an .ecj if
// that server has shards of vid mounted, a replica delete otherwise.
func (c *Cluster) DeleteDataOn(vid uint32, server string, bytes, files uint64) error {
	return c.clientOp(vid, server, appendRec{delBytes: bytes, dels: files})
}

// OverwriteOn simulates a client overwriting files live needles of vid
// through the given server with data of the same size: each adds an .idx
// entry for an id that is live already, so the live needle set (ids and
// sizes) does not change.
func (c *Cluster) OverwriteOn(vid uint32, server string, files uint64) error {
	return c.clientOp(vid, server, appendRec{overwrites: files})
}

func (c *Cluster) clientOp(vid uint32, server string, rec appendRec) error {
	s, ok := c.ServerByAddress(server)
	if !ok {
		return fmt.Errorf("sim: no volume server %s", server)
	}
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	s.mu.Lock()
	e, r, up := s.ecs[vid], s.vols[vid], s.up
	s.mu.Unlock()
	if !up {
		return fmt.Errorf("sim: volume server %s is down", s.id)
	}
	if rec.dels > 0 && e != nil && e.mounted != 0 {
		return c.ecDeleteLocked(vid, rec)
	}
	if r == nil {
		return fmt.Errorf("sim: volume %d not found on %s", vid, s.id)
	}
	if ReplicaCount(r.rp) > 1 {
		return c.mutateReplicasLocked(vid, rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := r.check(rec); err != nil {
		return fmt.Errorf("sim: volume %d on %s %w", vid, s.id, err)
	}
	rec.ts = c.nowNs()
	r.apply(rec)
	s.changedLocked(volKey(vid))
	c.content.ackLocked(vid, rec.ts)
	return nil
}

// check tells whether the replica takes rec (s.mu held).
func (r *replica) check(rec appendRec) error {
	switch {
	case r.unloaded:
		return fmt.Errorf("is not loaded")
	case r.noWrite() && (rec.bytes > 0 || rec.files > 0 || rec.overwrites > 0 || !r.canDeleteMark):
		return fmt.Errorf("is read only")
	case rec.overwrites > 0 && r.fileCount <= r.deleteCount:
		return fmt.Errorf("has no live needle to overwrite")
	}
	return nil
}

// ecJournalEntry is one needle id in an .ecj: an acknowledged EC delete.
type ecJournalEntry struct {
	needle uint64
	ts     int64 // the delete's id in the ledger
	gen    int64 // EncodeTsNs of the EC volume that journalled it
}

// ecDeleteLocked journals rec's deletes as SeaweedFS does (c.content.mu
// held): each needle on the first server (by index) that mounts its
// primary data shard, which here is the needle id modulo the data shards.
// With none mounting it, a server that still has the shard's file on disk
// is asked, as a stale location cache would: it journals only with the EC
// volume loaded, and acknowledges the delete either way. The needles
// deleted are the oldest live ones of the EC volume's index.
func (c *Cluster) ecDeleteLocked(vid uint32, rec appendRec) error {
	for _, s := range c.servers {
		s.mu.Lock()
	}
	defer func() {
		for i := len(c.servers) - 1; i >= 0; i-- {
			c.servers[i].mu.Unlock()
		}
	}()
	// The index and what every holder has journalled already.
	var ref *ecVol
	gone := map[uint64]bool{}
	for _, s := range c.servers {
		if e := s.ecs[vid]; e != nil && e.hasIndex {
			if ref == nil || e.encodeTsNs > ref.encodeTsNs {
				ref = e
			}
			for _, j := range e.journal {
				gone[j.needle] = true
			}
		}
	}
	if ref == nil {
		return fmt.Errorf("sim: EC volume %d has no index", vid)
	}
	var needles []uint64
	for id := ref.idBase + ref.deleteCount + 1; id <= ref.idBase+ref.fileCount && uint64(len(needles)) < rec.dels; id++ {
		if !gone[id] {
			needles = append(needles, id)
		}
	}
	if uint64(len(needles)) < rec.dels {
		return fmt.Errorf("sim: EC volume %d has %d live needles, not %d to delete", vid, len(needles), rec.dels)
	}
	holders := make([]*ecVol, len(needles))
	for i, id := range needles {
		shard := uint32(id % DataShards)
		var stale *VolumeServer
		for _, s := range c.servers {
			e := s.ecs[vid]
			if !s.up || e == nil {
				continue
			}
			if e.hasIndex && e.mounted&(1<<shard) != 0 {
				holders[i], stale = e, nil
				break
			}
			if stale == nil && e.files&(1<<shard) != 0 {
				stale = s
			}
		}
		if stale != nil {
			// The shard's file is there but not mounted: the sending
			// server's cached shard locations (refreshed from the master
			// only now and then) still name this server. Its
			// VolumeEcBlobDelete journals the delete if it has the EC
			// volume loaded (some shard mounted, the .ecx open), and
			// otherwise answers OK having journalled nothing
			// (volume_grpc_erasure_coding.go): the delete is acknowledged
			// and lost.
			if e := stale.ecs[vid]; e.hasIndex && e.mounted != 0 {
				holders[i] = e
			}
			continue
		}
		if holders[i] == nil {
			return fmt.Errorf("sim: ec shard %d.%d: ec shard missing", vid, shard)
		}
	}
	rec.ts = c.nowNs()
	for i, id := range needles {
		if e := holders[i]; e != nil {
			e.journal = append(e.journal, ecJournalEntry{needle: id, ts: rec.ts, gen: e.encodeTsNs})
		}
	}
	c.content.ackLocked(vid, rec.ts)
	return nil
}

// mergeJournal adds src's journal entries that e lacks (a shard copy with
// its .ecj: SeaweedFS merges the journals as sets of ids).
func (e *ecVol) mergeJournal(src []ecJournalEntry) {
	have := map[uint64]bool{}
	for _, j := range e.journal {
		have[j.needle] = true
	}
	for _, j := range src {
		if !have[j.needle] {
			e.journal = append(e.journal, j)
			have[j.needle] = true
		}
	}
}
