package capacity

import (
	"fmt"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// adjustments renders adjustments compactly: "task kind delta(MiB)".
func adjustments(as []*pb.Adjustment) string {
	var out []string
	for _, a := range as {
		k := "in_progress"
		if a.Kind == pb.Adjustment_COMMITTED_UNREPORTED {
			k = "committed"
		}
		out = append(out, fmt.Sprintf("%d %s %s %d", a.TaskId, strings.TrimPrefix(a.Type.String(), "TASK_TYPE_"), k, a.DeltaBytes/mib))
	}
	return strings.Join(out, "; ")
}

func TestProjectVolume(t *testing.T) {
	topo := topotest.Build(1000,
		topotest.Srv(topotest.SID(1), 10, topotest.V(7, 100*mib).Garbage(30*mib), topotest.V(8, 50*mib)),
		topotest.Srv(topotest.SID(2), 10, topotest.V(7, 100*mib).Garbage(30*mib)),
		topotest.Srv(topotest.SID(3), 10))
	tests := []struct {
		name      string
		vol       uint32
		active    *fsmpb.Task
		changes   []*fsmpb.CapacityChange
		projected uint64 // MiB
		adj       string
	}{
		{name: "nothing in flight", vol: 7, projected: 100},
		{name: "vacuum in flight", vol: 7, active: task(1, vac, 7), projected: 70, adj: "1 VACUUM in_progress -30"},
		{name: "pending vacuum counts too", vol: 7, active: &fsmpb.Task{Id: 1, Type: vac, VolumeId: 7, State: fsmpb.TaskState_TASK_STATE_PENDING}, projected: 70, adj: "1 VACUUM in_progress -30"},
		{name: "vacuum committed, master not updated", vol: 7, changes: []*fsmpb.CapacityChange{change(2, vac, 7, 100*mib, 72*mib)}, projected: 72, adj: "2 VACUUM committed -28"},
		{name: "vacuum committed and reflected", vol: 7, changes: []*fsmpb.CapacityChange{change(2, vac, 7, 130*mib, 100*mib)}, projected: 100},
		{name: "vacuum committed then another vacuum", vol: 7, active: task(3, vac, 7), changes: []*fsmpb.CapacityChange{change(2, vac, 7, 100*mib, 70*mib)}, projected: 70, adj: "2 VACUUM committed -30; 3 VACUUM in_progress 0"},
		{name: "ec in flight", vol: 7, active: task(4, ecType, 7), projected: 0, adj: "4 ERASURE_CODING in_progress -100"},
		{name: "ec committed, volume still listed", vol: 8, changes: []*fsmpb.CapacityChange{change(5, ecType, 8, 50*mib, 0)}, projected: 0, adj: "5 ERASURE_CODING committed -50"},
		{name: "vacuum committed then ec in flight", vol: 7, active: task(6, ecType, 7), changes: []*fsmpb.CapacityChange{change(2, vac, 7, 100*mib, 70*mib)}, projected: 0, adj: "2 VACUUM committed -30; 6 ERASURE_CODING in_progress -70"},
		{name: "balance in flight", vol: 8, active: task(7, balType, 8), projected: 50, adj: "7 BALANCE in_progress 0"},
		{name: "balance committed, not reflected", vol: 8, changes: []*fsmpb.CapacityChange{{TaskId: 8, Type: balType, VolumeId: 8, OldSize: 50 * mib, NewSize: 50 * mib, Source: topotest.SID(1), Target: topotest.SID(3)}}, projected: 50, adj: "8 BALANCE committed 0"},
		{name: "balance committed and reflected", vol: 7, changes: []*fsmpb.CapacityChange{{TaskId: 8, Type: balType, VolumeId: 7, Source: topotest.SID(3), Target: topotest.SID(2)}}, projected: 100},
		{name: "never below zero", vol: 8, changes: []*fsmpb.CapacityChange{change(9, ecType, 8, 80*mib, 0)}, projected: 0, adj: "9 ERASURE_CODING committed -80"},
		{name: "other volumes ignored", vol: 8, active: task(1, vac, 7), changes: []*fsmpb.CapacityChange{change(2, vac, 7, 100*mib, 70*mib)}, projected: 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vol, ok := FindVolume(topo, tc.vol)
			if !ok {
				t.Fatalf("volume %d not found", tc.vol)
			}
			got := projectVolume(topo, vol, tc.active, tc.changes)
			if got.VolumeId != tc.vol || got.MasterSize != vol.Size || got.DeletedBytes != vol.DeletedBytes {
				t.Errorf("master figures: got %+v", got)
			}
			if got.ProjectedSize != tc.projected*mib {
				t.Errorf("projected %d MiB, want %d MiB", got.ProjectedSize/mib, tc.projected)
			}
			if a := adjustments(got.Adjustments); a != tc.adj {
				t.Errorf("adjustments %q, want %q", a, tc.adj)
			}
		})
	}
}

func TestFindVolumeErasureCoded(t *testing.T) {
	topo := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10).Shards(9, 0, 1, 2))
	vol, ok := FindVolume(topo, 9)
	if !ok || vol.Size != 0 {
		t.Fatalf("an EC volume: got %+v %v, want size 0", vol, ok)
	}
	if _, ok := FindVolume(topo, 99); ok {
		t.Fatal("unknown volume found")
	}
	if _, ok := FindVolume(nil, 9); ok {
		t.Fatal("found in a nil topology")
	}
}
