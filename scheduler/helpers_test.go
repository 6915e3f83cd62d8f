package scheduler

import (
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/seaweedfs/seaweedfs/weed/pb/master_pb"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Test topologies are built the way production builds them: as a
// master_pb.VolumeListResponse passed through seaweed.FromVolumeList.

const mib = 1 << 20

// now is the fixed "current time" every test passes explicitly.
var now = time.Unix(1_700_000_000, 0)

// ago is a modification time d before now, in unix seconds.
func ago(d time.Duration) int64 { return now.Add(-d).Unix() }

// The builder is internal/topotest's, under the short names the tests use.
type vol = topotest.Vol
type node = topotest.Node

func sid(n int) string                            { return topotest.SID(n) }
func swa(n int) string                            { return topotest.SWA(n) }
func grpcAddr(n int) string                       { return topotest.GRPCAddr(n) }
func srv(id string, max int64, vols ...vol) *node { return topotest.Srv(id, max, vols...) }
func build(limitMB uint64, nodes ...*node) *seaweed.Topology {
	return topotest.Build(limitMB, nodes...)
}
func volumeList(limitMB uint64, rng *rand.Rand, nodes ...*node) *master_pb.VolumeListResponse {
	return topotest.VolumeList(limitMB, rng, nodes...)
}

// v is a replica of volume id holding size bytes, last modified two days
// ago (cold enough for erasure coding).
func v(id uint32, size uint64) vol { return topotest.V(id, size).Mod(ago(48 * time.Hour)) }

// vrp is a replica of a volume with replica placement rp (001: two copies).
func vrp(id uint32, size uint64, rp uint32) vol { return v(id, size).RP(rp) }

// allShards is shard ids 0..13.
func allShards() []uint32 {
	out := make([]uint32, placement.TotalShards)
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

// idle is a Busy that reports nothing busy.
func idle(uint32) bool { return false }

// busyOn reports the given volumes busy.
func busyOn(ids ...uint32) Busy {
	m := map[uint32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return func(id uint32) bool { return m[id] }
}

// summary renders proposals compactly for table comparisons.
func summary(ps []Proposal) []string {
	out := []string{}
	for _, p := range ps {
		switch p.Type {
		case fsmpb.TaskType_TASK_TYPE_VACUUM:
			out = append(out, fmt.Sprintf("vacuum %d", p.VolumeID))
		case fsmpb.TaskType_TASK_TYPE_ERASURE_CODING:
			out = append(out, fmt.Sprintf("ec %d", p.VolumeID))
		case fsmpb.TaskType_TASK_TYPE_BALANCE:
			out = append(out, fmt.Sprintf("balance %d %s->%s", p.VolumeID, p.Source, p.Target))
		default:
			out = append(out, fmt.Sprintf("%v %d", p.Type, p.VolumeID))
		}
	}
	return out
}

// fillers are n volumes with ids from first, size 1 MiB, no garbage.
func fillers(first uint32, n int) []vol {
	out := make([]vol, n)
	for i := range out {
		out[i] = v(first+uint32(i), 1*mib)
	}
	return out
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
