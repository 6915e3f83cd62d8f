package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestChangeOnAGoneServerIsRetired: a completed change that put data on a
// server absent from the (trusted) topology can never be listed there: it
// is retired, so it no longer holds its volume's repair (or any work) for
// ever; the same change whose server is present but not listing the data
// yet waits.
func TestChangeOnAGoneServerIsRetired(t *testing.T) {
	srv, sid, v := topotest.Srv, topotest.SID, topotest.V
	swa := topotest.SWA
	// Server 3 died; server 2 is alive and lists nothing of volume 8 yet.
	topo := topotest.Build(1000,
		srv(sid(1), 10, v(8, 50*mib).RP(1)).Shards(9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
		srv(sid(2), 10),
	)
	shardsOn := func(server string, ids ...uint32) []*fsmpb.ShardPlacement {
		var out []*fsmpb.ShardPlacement
		for _, id := range ids {
			out = append(out, &fsmpb.ShardPlacement{ShardId: id, Server: server})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		c    *fsmpb.CapacityChange
		want bool
	}{
		{"replicate onto a gone server", &fsmpb.CapacityChange{Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 8, Source: swa(1), Target: swa(3)}, true},
		{"replicate onto a live server not listing it yet", &fsmpb.CapacityChange{Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 8, Source: swa(1), Target: swa(2)}, false},
		{"move onto a gone server", &fsmpb.CapacityChange{Type: balType, VolumeId: 8, Source: swa(1), Target: swa(3)}, true},
		{"move onto a live server not listing it yet", &fsmpb.CapacityChange{Type: balType, VolumeId: 8, Source: swa(1), Target: swa(2)}, false},
		{"rebuilt shards on a gone server", &fsmpb.CapacityChange{Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: 9, Shards: shardsOn(swa(3), 12, 13)}, true},
		{"rebuilt shards on a live server not listing them yet", &fsmpb.CapacityChange{Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: 9, Shards: shardsOn(swa(2), 12, 13)}, false},
		{"encoded shards, some on a gone server", &fsmpb.CapacityChange{Type: ecType, VolumeId: 9, Shards: shardsOn(swa(3), 12, 13)}, true},
		{"encoded shards, some on a live server not listing them yet", &fsmpb.CapacityChange{Type: ecType, VolumeId: 9, Shards: shardsOn(swa(2), 12, 13)}, false},
	} {
		if got := Reflected(tc.c, topo); got != tc.want {
			t.Errorf("%s: Reflected = %v; want %v", tc.name, got, tc.want)
		}
	}
}
