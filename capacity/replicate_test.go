package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestReplicateCapacity: a replicate in flight or committed and not yet
// reported adds a copy of the volume on its target (the source keeps its
// own); the master reflects it once it lists the copy there.
func TestReplicateCapacity(t *testing.T) {
	rep := fsmpb.TaskType_TASK_TYPE_REPLICATE
	topo := topotest.Build(1000,
		topotest.Srv(topotest.SID(1), 10, topotest.V(8, 50*mib).RP(1)),
		topotest.Srv(topotest.SID(2), 10, topotest.V(9, 10*mib)),
		topotest.Srv(topotest.SID(3), 10))
	committed := &fsmpb.CapacityChange{TaskId: 2, Type: rep, VolumeId: 8, OldSize: 50 * mib, NewSize: 50 * mib, Source: topotest.SWA(1), Target: topotest.SWA(3)}
	onThird := []fig{{used: 1, free: 9, vols: 1, mib: 50}, {used: 1, free: 9, vols: 1, mib: 10}, {used: 1, free: 9, vols: 1, mib: 50}}
	onSecond := []fig{{used: 1, free: 9, vols: 1, mib: 50}, {used: 2, free: 8, vols: 2, mib: 60}, {used: 0, free: 10}}
	for _, tc := range []struct {
		name    string
		active  []*fsmpb.Task
		changes []*fsmpb.CapacityChange
		want    []fig
	}{
		{name: "in flight, not assigned yet: where a plan puts it", active: []*fsmpb.Task{task(2, rep, 8)}, want: onThird},
		{name: "in flight to its assigned target", active: []*fsmpb.Task{{Id: 2, Type: rep, VolumeId: 8, State: fsmpb.TaskState_TASK_STATE_RUNNING, AttemptServers: []string{topotest.SWA(2)}}}, want: onSecond},
		{name: "committed, unreported", changes: []*fsmpb.CapacityChange{committed}, want: onThird},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := projectServers(topo, IndexServers(topo), topo.Servers, tc.active, tc.changes)
			for i, sc := range got {
				if p := figOf(sc.Disks[0].Projected); p != tc.want[i] {
					t.Errorf("%s projected %+v, want %+v", sc.Server, p, tc.want[i])
				}
			}
		})
	}
	if Reflected(committed, topo) {
		t.Fatal("a replicate is reflected before the master lists its copy")
	}
	after := topotest.Build(1000,
		topotest.Srv(topotest.SID(1), 10, topotest.V(8, 50*mib).RP(1)),
		topotest.Srv(topotest.SID(2), 10, topotest.V(9, 10*mib)),
		topotest.Srv(topotest.SID(3), 10, topotest.V(8, 50*mib).RP(1)))
	if !Reflected(committed, after) {
		t.Fatal("a replicate is not reflected once the master lists its copy")
	}
	gone := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10))
	if !Reflected(committed, gone) {
		t.Fatal("a replicate of a deleted volume is not reflected")
	}
}
