package capacity

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
)

// TestDeleteEmptyCapacity: a committed delete_empty the master does not
// show yet frees the volume's slot on every server holding a replica (one
// in flight frees nothing yet); it is reflected once the master lists the
// volume nowhere.
func TestDeleteEmptyCapacity(t *testing.T) {
	de := fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY
	two := func(vols ...topotest.Vol) []*topotest.Node {
		return []*topotest.Node{topotest.Srv(topotest.SID(1), 10, vols...), topotest.Srv(topotest.SID(2), 10, vols...)}
	}
	topo := topotest.Build(1000, two(topotest.V(8, 8).RP(1))...)
	committed := &fsmpb.CapacityChange{TaskId: 2, Type: de, VolumeId: 8, OldSize: 8}
	held := fig{used: 1, free: 9, vols: 1}
	freed := fig{used: 0, free: 10}
	for _, tc := range []struct {
		name    string
		active  []*fsmpb.Task
		changes []*fsmpb.CapacityChange
		want    fig
	}{
		{name: "in flight: nothing freed yet", active: []*fsmpb.Task{task(2, de, 8)}, want: held},
		{name: "committed, unreported", changes: []*fsmpb.CapacityChange{committed}, want: freed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := projectServers(topo, IndexServers(topo), topo.Servers, tc.active, tc.changes)
			for _, sc := range got {
				if p := figOf(sc.Disks[0].Projected); p != tc.want {
					t.Errorf("%s projected %+v, want %+v", sc.Server, p, tc.want)
				}
			}
		})
	}
	if Reflected(committed, topo) {
		t.Fatal("a deletion is reflected while the master lists the volume")
	}
	if !Reflected(committed, topotest.Build(1000, two()...)) {
		t.Fatal("a deletion is not reflected once the master lists the volume nowhere")
	}
}
