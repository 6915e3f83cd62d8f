package scheduler

import (
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/topotest"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestDetectDeleteEmpty: only regular volumes empty on every replica
// (nothing but the super block, or every file deleted), listed with all
// the copies their placement asks for, not cloud-tiered, not erasure
// coded, not busy, not read-only unless deletes are allowed (a full
// volume), and quiet for the quiet time are proposed; none at all while
// the quiet time is 0.
func TestDetectDeleteEmpty(t *testing.T) {
	old := now.Add(-2 * time.Hour).Unix()
	recent := now.Add(-10 * time.Minute).Unix()
	two := func(v topotest.Vol) []*topotest.Node {
		return []*topotest.Node{topotest.Srv(topotest.SID(1), 10, v.RP(1)), topotest.Srv(topotest.SID(2), 10, v.RP(1))}
	}
	th := DefaultThresholds()
	th.DeleteEmptyQuiet = time.Hour
	for _, tc := range []struct {
		name  string
		nodes []*topotest.Node
		th    func(Thresholds) Thresholds
		busy  []uint32
		want  []uint32
	}{
		{name: "empty and quiet", nodes: two(topotest.V(1, 8).Mod(old)), want: []uint32{1}},
		{name: "empty, read-only as a full volume (deletes allowed)", nodes: two(topotest.V(1, 8).Mod(old).ReadOnlyCanDelete()), want: []uint32{1}},
		{name: "empty, read-only by the operator (no deletes)", nodes: two(topotest.V(1, 8).Mod(old).ReadOnly())},
		{name: "every file deleted", nodes: two(topotest.V(1, 5000).Garbage(4992).Files(3, 3).Mod(old)), want: []uint32{1}},
		{name: "off: quiet time 0", nodes: two(topotest.V(1, 8).Mod(old)), th: func(t Thresholds) Thresholds { t.DeleteEmptyQuiet = 0; return t }},
		{name: "a live file", nodes: two(topotest.V(1, 5000).Files(3, 2).Mod(old))},
		{name: "a live file on one replica only", nodes: []*topotest.Node{
			topotest.Srv(topotest.SID(1), 10, topotest.V(1, 8).RP(1).Mod(old)),
			topotest.Srv(topotest.SID(2), 10, topotest.V(1, 500).Files(1, 0).RP(1).Mod(old))}},
		{name: "modified recently", nodes: two(topotest.V(1, 8).Mod(recent))},
		{name: "no modification time", nodes: two(topotest.V(1, 8))},
		{name: "cloud-tiered", nodes: two(topotest.V(1, 8).Mod(old).Remote("s3"))},
		{name: "busy", nodes: two(topotest.V(1, 8).Mod(old)), busy: []uint32{1}},
		{name: "a replica missing (a repair's)", nodes: []*topotest.Node{topotest.Srv(topotest.SID(1), 10, topotest.V(1, 8).RP(1).Mod(old)), topotest.Srv(topotest.SID(2), 10)}},
		{name: "erasure coded too", nodes: []*topotest.Node{
			topotest.Srv(topotest.SID(1), 10, topotest.V(1, 8).Mod(old)).Shards(1, 0, 1, 2)}},
		{name: "several, by id", nodes: []*topotest.Node{topotest.Srv(topotest.SID(1), 10, topotest.V(3, 8).Mod(old), topotest.V(2, 9000).Files(1, 0).Mod(old), topotest.V(1, 8).Mod(old))}, want: []uint32{1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := th
			if tc.th != nil {
				th = tc.th(th)
			}
			topo := topotest.Build(1000, tc.nodes...)
			props := DetectDeleteEmpty(topo, func(v uint32) bool { return slices.Contains(tc.busy, v) }, th, now)
			var got []uint32
			for _, p := range props {
				if p.Type != fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY || p.Priority != DeleteEmptyPriority {
					t.Fatalf("proposal %+v: want a delete_empty at priority %d", p, DeleteEmptyPriority)
				}
				got = append(got, p.VolumeID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("proposed volumes %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPlanDeleteEmpty: the spec lists every replica (SpecServers records
// them all); a first attempt refuses a volume listed with fewer replicas
// than its placement, a retry (earlier servers recorded) takes what is
// left.
func TestPlanDeleteEmpty(t *testing.T) {
	old := now.Add(-2 * time.Hour).Unix()
	whole := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10, topotest.V(1, 8).RP(1).Mod(old)), topotest.Srv(topotest.SID(2), 10, topotest.V(1, 8).RP(1).Mod(old)))
	task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, VolumeId: 1, State: fsmpb.TaskState_TASK_STATE_ASSIGNED}
	spec, err := planSpecLoaded(task, whole, time.Time{}, DefaultThresholds(), false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := SpecServers(spec); len(got) != 2 || len(spec.GetReplicas()) != 2 {
		t.Fatalf("spec servers %v, replicas %v: want both replicas", got, spec.GetReplicas())
	}
	short := topotest.Build(1000, topotest.Srv(topotest.SID(1), 10, topotest.V(1, 8).RP(1).Mod(old)), topotest.Srv(topotest.SID(2), 10))
	if _, err := planSpecLoaded(task, short, time.Time{}, DefaultThresholds(), false, false, nil); err == nil {
		t.Fatal("a first attempt was planned on a volume short of a replica")
	}
	retry := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, VolumeId: 1, State: fsmpb.TaskState_TASK_STATE_ASSIGNED, EarlierServers: spec.GetReplicas()}
	var again *pb.TaskSpec
	if again, err = planSpecLoaded(retry, short, time.Time{}, DefaultThresholds(), false, false, nil); err != nil || len(again.GetReplicas()) != 1 {
		t.Fatalf("a retry after a partial delete: %v, %v; want the replica left", again.GetReplicas(), err)
	}
}
