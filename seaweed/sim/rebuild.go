package sim

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/seaweedfs/seaweedfs/weed/pb/volume_server_pb"
)

// VolumeEcShardsRebuild regenerates, as SeaweedFS's does, every shard of
// the volume whose file this server lacks, from the shard files it holds
// (at least DataShards, complete ones), beside an .ecx; without one it
// rebuilds nothing and answers OK. It does not mount them. The regenerated
// files take the generation of their inputs when every input is of one
// generation; inputs of different generations make a regenerated file of
// none of them (garbage the durability check sees), as SeaweedFS would
// decode and re-encode mixed shards without noticing.
func (h *vsHandler) VolumeEcShardsRebuild(ctx context.Context, req *volume_server_pb.VolumeEcShardsRebuildRequest) (*volume_server_pb.VolumeEcShardsRebuildResponse, error) {
	s, c, vid := h.s, h.s.c, req.VolumeId
	s.mu.Lock()
	if err := s.checkMaintLocked(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	e := s.ecs[vid]
	if e == nil || !e.hasIndex {
		s.mu.Unlock()
		return &volume_server_pb.VolumeEcShardsRebuildResponse{}, nil
	}
	have := e.files & (1<<TotalShards - 1)
	for _, sh := range shardList(have) {
		if e.gens[sh].partial {
			s.mu.Unlock()
			return nil, fmt.Errorf("RebuildEcFiles %s: shard %d is truncated", volumeBase(req.Collection, vid), sh)
		}
	}
	if n := bits.OnesCount32(have); n < DataShards {
		s.mu.Unlock()
		return nil, fmt.Errorf("RebuildEcFiles %s: only %d shards are present, need %d", volumeBase(req.Collection, vid), n, DataShards)
	}
	missing := shardList((1<<TotalShards - 1) &^ have)
	var gen ecGen
	mixed := false
	for i, sh := range shardList(have) {
		if i == 0 {
			gen = e.gens[sh]
		} else if e.gens[sh].id != gen.id {
			mixed = true
		}
	}
	size := e.datSize
	life := s.life
	s.mu.Unlock()
	if len(missing) == 0 {
		return &volume_server_pb.VolumeEcShardsRebuildResponse{}, nil
	}
	if err := sleepCtx(ctx, c.cfg.Clock, c.opDuration(c.cfg.EcGenerateDuration, size)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life != life || s.ecs[vid] != e {
		return nil, fmt.Errorf("RebuildEcFiles %d: server stopped", vid)
	}
	if mixed {
		gen = ecGen{id: c.nowNs()}
	}
	for _, sh := range missing {
		e.files |= 1 << sh
		e.gens[sh] = gen
	}
	return &volume_server_pb.VolumeEcShardsRebuildResponse{RebuiltShardIds: missing}, nil
}

// LoseEcShards destroys shards of an EC volume on this server for good (a
// failed disk): unmounted and their files gone; the index goes with the
// last shard. The master hears of it with the next heartbeat.
func (s *VolumeServer) LoseEcShards(vid uint32, shards ...uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecs[vid]
	if e == nil {
		return
	}
	for _, sh := range shards {
		if sh < 32 {
			e.files &^= 1 << sh
			e.mounted &^= 1 << sh
		}
	}
	if e.files == 0 && e.mounted == 0 {
		delete(s.ecs, vid)
	}
	s.changedLocked(ecKey(vid))
}
