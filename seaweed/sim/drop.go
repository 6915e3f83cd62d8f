package sim

import "fmt"

// DropVolume retires a volume the way an operator would (volume.delete on
// every replica, ec.delete of every shard): every regular replica and every
// EC shard file and mount of vid, on every server, up or down, is gone. The
// durability model records it as an intentional deletion: the volume is no
// longer checked, whatever a straggling task later leaves under its id.
//
// The caller makes sure no task is working on the volume; as a guard,
// DropVolume refuses (and changes nothing) while a replica is being
// compacted or copied in, and when no server holds the volume at all.
func (c *Cluster) DropVolume(vid uint32) error {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	for _, s := range c.servers {
		s.mu.Lock()
	}
	defer func() {
		for i := len(c.servers) - 1; i >= 0; i-- {
			c.servers[i].mu.Unlock()
		}
	}()
	held := false
	for _, s := range c.servers {
		r, e := s.vols[vid], s.ecs[vid]
		switch {
		case s.copying[vid]:
			return fmt.Errorf("sim: volume %d is being copied to %s", vid, s.id)
		case r != nil && r.compacting:
			return fmt.Errorf("sim: volume %d is being compacted on %s", vid, s.id)
		}
		held = held || r != nil || e != nil
	}
	if !held {
		return fmt.Errorf("sim: volume %d not found", vid)
	}
	for _, s := range c.servers {
		if _, ok := s.vols[vid]; ok {
			delete(s.vols, vid)
			s.changedLocked(volKey(vid))
		}
		if _, ok := s.ecs[vid]; ok {
			delete(s.ecs, vid)
			s.changedLocked(ecKey(vid))
		}
	}
	c.content.bornLocked(vid, 0, false).dropped = true
	return nil
}

// DroppedVolumes is how many volumes DropVolume retired.
func (c *Cluster) DroppedVolumes() int {
	c.content.mu.Lock()
	defer c.content.mu.Unlock()
	n := 0
	for _, v := range c.content.vols {
		if v.dropped {
			n++
		}
	}
	return n
}

// FreeSlots is the server's own count of free volume slots: its maximum,
// less its volumes, less a slot per started ten mounted EC shards.
func (s *VolumeServer) FreeSlots() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.freeSlotsLocked()
}
