package scheduler

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
)

func TestReplicaExtras(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*node
		want  []Loss
	}{
		{"whole 001", []*node{srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1))}, nil},
		{"001 with three copies", []*node{srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)), srv(sid(3), 10, vrp(1, mib, 1))},
			[]Loss{{Volume: 1, Have: 3, Want: 2}}},
		{"000 with two copies", []*node{srv(sid(1), 10, v(4, mib).In("pics")), srv(sid(2), 10, v(4, mib).In("pics"))},
			[]Loss{{Volume: 4, Collection: "pics", Have: 2, Want: 1}}},
		{"001 short of a copy is no extra", []*node{srv(sid(1), 10, vrp(1, mib, 1))}, nil},
		{"cloud-tiered left out", []*node{srv(sid(1), 10, v(1, mib).Remote("s3")), srv(sid(2), 10, v(1, mib).Remote("s3"))}, nil},
		{"volume with EC shards left out", []*node{srv(sid(1), 10, v(1, mib)).Shards(1, 0, 1), srv(sid(2), 10, v(1, mib))}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ReplicaExtras(build(100, c.nodes...)); !slices.Equal(got, c.want) {
				t.Fatalf("extras %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestECShardExtras(t *testing.T) {
	all := allShards()
	cases := []struct {
		name  string
		nodes []*node
		want  []Loss
	}{
		{"each shard once", []*node{srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:]...)}, nil},
		{"two shards twice", []*node{srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:]...), srv(sid(3), 10).Shards(5, 0, 1)},
			[]Loss{{Volume: 5, EC: true, Have: 16, Want: 14}}},
		{"a duplicate with a shard missing is left to the rebuild", []*node{srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:13]...), srv(sid(3), 10).Shards(5, 0)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ECShardExtras(build(100, c.nodes...)); !slices.Equal(got, c.want) {
				t.Fatalf("extras %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestExtraProposals: an extra is proposed only once it has lasted the
// wait, and never for a busy volume; a tracked extra keeps when it was
// first seen across rounds, and one gone drops out.
func TestExtraProposals(t *testing.T) {
	three := build(100, srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)), srv(sid(3), 10, vrp(1, mib, 1), vrp(2, mib, 1)), srv(sid(4), 10, vrp(2, mib, 1)))
	t0 := now
	tr := TrackLosses(nil, Losses(three, ExtraDetectors), t0)
	if got := ExtraProposals(tr, idle, time.Minute, t0.Add(30*time.Second)); len(got) != 0 {
		t.Fatalf("proposed before the wait: %+v", got)
	}
	tr = TrackLosses(tr, Losses(three, ExtraDetectors), t0.Add(time.Minute))
	got := ExtraProposals(tr, idle, time.Minute, t0.Add(time.Minute))
	if len(got) != 1 || got[0].VolumeID != 1 || got[0].Type != fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA || got[0].Priority != RemoveExtraPriority {
		t.Fatalf("proposals %+v; want one remove_extra of volume 1", got)
	}
	if got := ExtraProposals(tr, busyOn(1), time.Minute, t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("proposed for a busy volume: %+v", got)
	}
	whole := build(100, srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)))
	if tr = TrackLosses(tr, Losses(whole, ExtraDetectors), t0.Add(2*time.Minute)); len(tr) != 0 {
		t.Fatalf("tracker %+v after the extra copy went", tr)
	}
	if s := ExtraSummaryOf(TrackLosses(nil, Losses(three, ExtraDetectors), t0)); s.Overreplicated != 1 || s.ECDuplicateShards != 0 {
		t.Fatalf("summary %+v", s)
	}
	if RemoveExtraPriority >= RepairPriorityBase || RemoveExtraPriority <= 10 {
		t.Fatalf("remove_extra priority %d must be below repairs and above routine work", RemoveExtraPriority)
	}
}

func TestExtrasBusy(t *testing.T) {
	recent, old := now.Add(-time.Minute).UnixNano(), now.Add(-time.Hour).UnixNano()
	tasks := []*fsmpb.Task{
		{VolumeId: 1, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, State: fsmpb.TaskState_TASK_STATE_PENDING},
		{VolumeId: 2, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, State: fsmpb.TaskState_TASK_STATE_RUNNING},
		{VolumeId: 3, Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, State: fsmpb.TaskState_TASK_STATE_FAILED, FinishedAt: recent},
		{VolumeId: 4, Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, State: fsmpb.TaskState_TASK_STATE_FAILED, FinishedAt: old},
		{VolumeId: 5, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, State: fsmpb.TaskState_TASK_STATE_FAILED, FinishedAt: recent},
	}
	changes := []*fsmpb.CapacityChange{{VolumeId: 6}}
	busy := extrasBusy(tasks, changes, now, 10*time.Minute)
	for vol, want := range map[uint32]bool{1: true, 2: true, 3: true, 4: false, 5: false, 6: true} {
		if busy[vol] != want {
			t.Errorf("volume %d busy %v, want %v", vol, busy[vol], want)
		}
	}
}

// TestReplicaVictims: the copy whose removal leaves the placement best
// goes first, then the smallest (stalest), then the one on the fullest
// server.
func TestReplicaVictims(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*node
		want  string
	}{
		{"010: the copy sharing a rack goes", []*node{
			srv(sid(1), 10, vrp(1, mib, 10)).Placed("dc1", "r1"), srv(sid(2), 10, vrp(1, mib, 10)).Placed("dc1", "r2"),
			srv(sid(3), 10, vrp(1, mib, 10)).Placed("dc1", "r2")}, sid(2)},
		{"001: the smaller copy goes", []*node{
			srv(sid(1), 10, vrp(1, 2*mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)), srv(sid(3), 10, vrp(1, 2*mib, 1))}, sid(2)},
		{"001 identical: the fullest server's copy goes", []*node{
			srv(sid(1), 10, vrp(1, mib, 1)).WithFree(5), srv(sid(2), 10, vrp(1, mib, 1)).WithFree(7), srv(sid(3), 10, vrp(1, mib, 1)).WithFree(2)}, sid(3)},
		{"placement before size", []*node{
			srv(sid(1), 10, vrp(1, mib, 10)).Placed("dc1", "r1"), srv(sid(2), 10, vrp(1, 2*mib, 10)).Placed("dc1", "r2"),
			srv(sid(3), 10, vrp(1, 2*mib, 10)).Placed("dc1", "r2")}, sid(2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topo := build(100, c.nodes...)
			got := ReplicaVictims(topo.Volumes[1])
			if len(got) != 3 || got[0].Server.ID != c.want {
				ids := []string{}
				for _, r := range got {
					ids = append(ids, r.Server.ID)
				}
				t.Fatalf("victims %v; want %s first", ids, c.want)
			}
		})
	}
}

// TestShardVictim: duplicates go from the server holding more shards of
// the volume; between equals, from the fullest.
func TestShardVictim(t *testing.T) {
	all := allShards()
	topo := build(100, srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:]...),
		srv(sid(3), 10).Shards(5, 0, 1))
	server, shards, ok := ShardVictim(topo.EcVolumes[5], topo)
	if !ok || server != sid(1) || !slices.Equal(shards, []uint32{0, 1}) {
		t.Fatalf("victim %s %v %v; want %s [0 1]", server, shards, ok, sid(1))
	}
	// The returned server holds 5 old shards, each rebuilt onto servers
	// holding fewer: they go from it.
	topo = build(100, srv(sid(1), 10).Shards(5, 0, 1, 2, 3, 4), srv(sid(2), 10).Shards(5, 0, 1, 5, 6), srv(sid(3), 10).Shards(5, 2, 3, 4, 7, 8),
		srv(sid(4), 10).Shards(5, 9, 10, 11, 12, 13))
	server, shards, _ = ShardVictim(topo.EcVolumes[5], topo)
	if server != sid(1) || !slices.Equal(shards, []uint32{0, 1, 2, 3, 4}) {
		t.Fatalf("victim %s %v; want %s [0 1 2 3 4]", server, shards, sid(1))
	}
	topo = build(100, srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:]...), srv(sid(3), 10).Shards(5, 0).WithFree(9),
		srv(sid(4), 10).Shards(5, 0).WithFree(1))
	// sid(1) holds 7: it goes first whatever the free slots.
	if server, _, _ = ShardVictim(topo.EcVolumes[5], topo); server != sid(1) {
		t.Fatalf("victim %s; want %s", server, sid(1))
	}
	if _, _, ok := ShardVictim(build(100, srv(sid(1), 10).Shards(5, all...)).EcVolumes[5], topo); ok {
		t.Fatal("a victim for a volume without duplicates")
	}
}

func TestPlanRemoveExtra(t *testing.T) {
	task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeId: 1}
	topo := build(100, srv(sid(1), 10, vrp(1, 2*mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)), srv(sid(3), 10, vrp(1, 2*mib, 1)))
	spec, err := PlanSpec(task, topo, Thresholds{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source != swa(2) || len(spec.Replicas) != 3 || spec.Replicas[0] != swa(2) || spec.ReplicaPlacement != 1 {
		t.Fatalf("spec source %s replicas %v rp %d; want source %s first of three", spec.Source, spec.Replicas, spec.ReplicaPlacement, swa(2))
	}
	if got := SpecServers(spec); !slices.Equal(got, []string{swa(1), swa(2), swa(3)}) {
		t.Fatalf("spec servers %v", got)
	}
	whole := build(100, srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1)))
	if _, err := PlanSpec(task, whole, Thresholds{}); !errors.Is(err, placement.ErrPlan) {
		t.Fatalf("plan of a volume with no extra copy: %v; want a plan error", err)
	}

	all := allShards()
	ecTask := &fsmpb.Task{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, VolumeId: 5}
	ec := build(100, srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:]...), srv(sid(3), 10).Shards(5, 0, 1))
	spec, err = PlanSpec(ecTask, ec, Thresholds{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source != swa(1) || len(spec.ShardTargets) != 2 || spec.ShardTargets[0].ShardId != 0 || spec.ShardTargets[1].Server != swa(1) || len(spec.PresentShards) != 16 {
		t.Fatalf("EC spec source %s targets %v present %d", spec.Source, spec.ShardTargets, len(spec.PresentShards))
	}
	missing := build(100, srv(sid(1), 10).Shards(5, all[:7]...), srv(sid(2), 10).Shards(5, all[7:13]...), srv(sid(3), 10).Shards(5, 0))
	if _, err := PlanSpec(ecTask, missing, Thresholds{}); !errors.Is(err, placement.ErrPlan) {
		t.Fatalf("plan with a shard missing: %v; want a plan error", err)
	}
}
