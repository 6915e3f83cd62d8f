package scheduler

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
)

// TestDetectSkipsCloudTiered: a volume whose data is in remote storage is
// never proposed for vacuum, erasure coding or balance, however much it
// calls for them; the local volumes beside it still are.
func TestDetectSkipsCloudTiered(t *testing.T) {
	full := uint64(96 * mib)
	// As in TestDetectBusySkippedForEveryType: 1 calls for a vacuum, 2 for
	// an encode, 3 (the smallest on the fullest server) for a move.
	nodes := func(remote ...uint32) []*node {
		r := func(x vol, id uint32) vol {
			for _, rid := range remote {
				if rid == id {
					return x.Remote("s3.cold")
				}
			}
			return x
		}
		return []*node{
			srv(sid(1), 10, r(v(1, 1000).Garbage(900), 1), r(v(2, full).Mod(ago(2*time.Hour)), 2), r(v(3, 10), 3), r(v(4, 20), 4), r(v(5, 30), 5), r(v(6, 40), 6)),
			srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10, v(7, 10)),
		}
	}
	bal := func(id string) string { return "balance " + id + " " + sid(1) + "->" + sid(3) }
	for _, tc := range []struct {
		name   string
		remote []uint32
		want   []string
	}{
		{name: "all local", want: []string{"vacuum 1", "ec 2", bal("3")}},
		{name: "the vacuum, encode and move candidates cloud-tiered", remote: []uint32{1, 2, 3}, want: []string{bal("4")}},
		{name: "every volume on the full server cloud-tiered", remote: []uint32{1, 2, 3, 4, 5, 6}, want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(100, nodes(tc.remote...)...)
			for _, id := range tc.remote {
				if v := topo.Volumes[id]; !v.CloudTiered() || v.RemoteStorage != "s3.cold" {
					t.Fatalf("volume %d: RemoteStorage %q, the topology lost the master's remote storage name", id, v.RemoteStorage)
				}
			}
			got := Detect(topo, idle, nil, oneMove(), now)
			if !reflect.DeepEqual(summary(got), tc.want) {
				t.Fatalf("Detect = %v, want %v", summary(got), tc.want)
			}
			assertPlannable(t, topo, got)
		})
	}
}

// TestPlanRefusesCloudTiered: a task of any type on a cloud-tiered volume
// (a manual submit, or one submitted before the volume was tiered) fails
// when planned, saying so in one sentence.
func TestPlanRefusesCloudTiered(t *testing.T) {
	full := uint64(96 * mib)
	topo := build(100,
		srv(sid(1), 10, v(1, full).Garbage(full/2).Mod(ago(2*time.Hour)).Remote("s3.cold")),
		srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10))
	for _, typ := range []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE} {
		_, err := PlanSpec(&fsmpb.Task{Id: 1, Type: typ, VolumeId: 1}, topo, DefaultThresholds())
		var pe *placement.PlanError
		if !errors.Is(err, placement.ErrPlan) || !errors.As(err, &pe) || !strings.HasPrefix(pe.Reason, "volume 1 is cloud-tiered (its data is in remote storage s3.cold)") || strings.Contains(pe.Reason, "\n") {
			t.Errorf("%s: PlanSpec = %v, want a plan error saying volume 1 is cloud-tiered", typ, err)
		}
	}
}
