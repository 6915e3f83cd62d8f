package scheduler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

func TestReplicaLosses(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*node
		want  []Loss
	}{
		{"whole 001", []*node{srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10, vrp(1, mib, 1))}, nil},
		{"001 with one copy", []*node{srv(sid(1), 10, vrp(1, mib, 1)), srv(sid(2), 10)},
			[]Loss{{Volume: 1, Have: 1, Want: 2}}},
		{"000 is whole with one copy", []*node{srv(sid(1), 10, v(1, mib))}, nil},
		{"002 with two of three", []*node{srv(sid(1), 10, vrp(1, mib, 2)), srv(sid(2), 10, vrp(1, mib, 2)), srv(sid(3), 10)},
			[]Loss{{Volume: 1, Have: 2, Want: 3}}},
		{"010 in a collection", []*node{srv(sid(1), 10, vrp(7, mib, 10).In("pics"))},
			[]Loss{{Volume: 7, Collection: "pics", Have: 1, Want: 2}}},
		{"cloud-tiered volume left out", []*node{srv(sid(1), 10, vrp(1, mib, 1).Remote("s3"))}, nil},
		{"volume with EC shards left out", []*node{srv(sid(1), 10, vrp(1, mib, 1)).Shards(1, 0, 1, 2)}, nil},
		{"sorted by volume", []*node{srv(sid(1), 10, vrp(9, mib, 1), vrp(3, mib, 1)), srv(sid(2), 10, vrp(9, mib, 1))},
			[]Loss{{Volume: 3, Have: 1, Want: 2}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ReplicaLosses(build(100, c.nodes...))
			if !slices.Equal(got, c.want) {
				t.Fatalf("losses %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestLossPriority(t *testing.T) {
	cases := []struct {
		l    Loss
		want int32
	}{
		{Loss{Have: 1, Want: 2}, 200},
		{Loss{Have: 2, Want: 3}, 150},
		{Loss{Have: 1, Want: 3}, 200},
		{Loss{EC: true, Have: 13, Want: 14}, 125},
		{Loss{EC: true, Have: 10, Want: 14}, 200},
		{Loss{EC: true, Have: 8, Want: 14}, 200},
		{Loss{Have: 0, Want: 2}, 200},
	}
	for _, c := range cases {
		if got := c.l.Priority(); got != c.want {
			t.Errorf("%+v: priority %d, want %d", c.l, got, c.want)
		}
		// Every repair outranks every routine type (vacuum's 10 is the highest).
		if c.l.Priority() <= 10 {
			t.Errorf("%+v: priority %d is not above routine work", c.l, c.l.Priority())
		}
	}
}

func TestTrackLosses(t *testing.T) {
	t0 := now
	l1 := Loss{Volume: 1, Have: 1, Want: 2}
	l2 := Loss{Volume: 2, Have: 2, Want: 3}
	tr := TrackLosses(nil, []Loss{l1}, t0)
	if got := tr[lossKey{1, false}].Since; !got.Equal(t0) {
		t.Fatalf("new loss first seen %v, want %v", got, t0)
	}
	// Seen again: keeps its first sighting; a new one starts now; the
	// counts follow the topology.
	l1b := Loss{Volume: 1, Have: 1, Want: 3}
	tr = TrackLosses(tr, []Loss{l1b, l2}, t0.Add(time.Minute))
	if got := tr[lossKey{1, false}]; !got.Since.Equal(t0) || got.Want != 3 {
		t.Fatalf("loss seen again: %+v, want since %v with want 3", got, t0)
	}
	if got := tr[lossKey{2, false}].Since; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("second loss first seen %v", got)
	}
	// Whole again: drops out; lost again later: the wait starts over.
	tr = TrackLosses(tr, []Loss{l2}, t0.Add(2*time.Minute))
	if _, ok := tr[lossKey{1, false}]; ok {
		t.Fatal("a volume whole again is still tracked")
	}
	tr = TrackLosses(tr, []Loss{l1, l2}, t0.Add(3*time.Minute))
	if got := tr[lossKey{1, false}].Since; !got.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("a volume lost again is tracked since %v, want the new loss", got)
	}
	// An EC loss of the same id is tracked on its own.
	tr = TrackLosses(tr, []Loss{l1, {Volume: 1, EC: true, Have: 12, Want: 14}}, t0.Add(4*time.Minute))
	if len(tr) != 2 {
		t.Fatalf("tracker %+v, want the regular and the EC loss of volume 1", tr)
	}
	s := tr.Summary()
	if s.Underreplicated != 1 || s.ECMissingShards != 1 || !s.Oldest.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("summary %+v", s)
	}
}

func TestRepairProposals(t *testing.T) {
	after := 10 * time.Minute
	tr := TrackLosses(nil, []Loss{
		{Volume: 1, Have: 2, Want: 3},
		{Volume: 2, Have: 1, Want: 2, Collection: "c"},
		{Volume: 3, Have: 0, Want: 2},             // nothing left to copy from
		{Volume: 4, EC: true, Have: 12, Want: 14}, // EC: an ec_rebuild
		{Volume: 5, EC: true, Have: 9, Want: 14},  // below 10 shards: never touched
		{Volume: 6, Have: 1, Want: 2},             // busy
	}, now)
	tr = TrackLosses(tr, append(lossesOf(tr), Loss{Volume: 7, Have: 1, Want: 2}), now.Add(after)) // 7: new
	cases := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"before repair-after", now.Add(after - time.Second), []string{}},
		{"at repair-after, least redundant first", now.Add(after), []string{
			"TASK_TYPE_REPLICATE 2", "TASK_TYPE_REPLICATE 1", "TASK_TYPE_EC_REBUILD 4"}},
		{"the newer loss waits its own time", now.Add(2 * after), []string{
			"TASK_TYPE_REPLICATE 2", "TASK_TYPE_REPLICATE 7", "TASK_TYPE_REPLICATE 1", "TASK_TYPE_EC_REBUILD 4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := RepairProposals(tr, busyOn(6), after, c.at)
			if got := summary(ps); !slices.Equal(got, c.want) {
				t.Fatalf("proposals %v, want %v", got, c.want)
			}
			for _, p := range ps {
				if p.VolumeID == 2 && (p.Collection != "c" || !strings.Contains(p.Reason, "1 of 2 copies")) {
					t.Fatalf("proposal %+v lacks its collection or reason", p)
				}
			}
		})
	}
	if got := summary(RepairProposals(tr, idle, 0, now)); len(got) != 4 {
		t.Fatalf("repair-after 0 proposes every repairable loss at once: got %v", got)
	}
}

func lossesOf(tr RepairTracker) []Loss {
	var out []Loss
	for _, l := range tr.Sorted() {
		out = append(out, l.Loss)
	}
	return out
}

func TestWholeAgain(t *testing.T) {
	topo := build(100,
		srv(sid(1), 10, vrp(1, mib, 1), vrp(2, mib, 1), vrp(3, mib, 1), vrp(4, mib, 1)),
		srv(sid(2), 10, vrp(1, mib, 1), vrp(3, mib, 1), vrp(4, mib, 1)),
		srv(sid(3), 10))
	pending := fsmpb.TaskState_TASK_STATE_PENDING
	rep := fsmpb.TaskType_TASK_TYPE_REPLICATE
	tasks := []*fsmpb.Task{
		{Id: 10, Type: rep, State: pending, VolumeId: 1},                                   // whole: cancel
		{Id: 11, Type: rep, State: pending, VolumeId: 2},                                   // still one copy
		{Id: 12, Type: rep, State: pending, VolumeId: 3, EarlierServers: []string{swa(2)}}, // an earlier copy: verify it
		{Id: 13, Type: rep, State: fsmpb.TaskState_TASK_STATE_ASSIGNED, VolumeId: 4},       // started: its own course
		{Id: 14, Type: fsmpb.TaskType_TASK_TYPE_VACUUM, State: pending, VolumeId: 4},       // not a repair
		{Id: 15, Type: rep, State: pending, VolumeId: 4, EarlierServers: []string{swa(3)}}, // earlier server holds none
		{Id: 16, Type: rep, State: pending, VolumeId: 99},                                  // unknown volume: the planner's
	}
	if got := WholeAgain(tasks, topo); !slices.Equal(got, []uint64{10, 15}) {
		t.Fatalf("whole again %v, want [10 15]", got)
	}
}

func TestRepairAfterValidated(t *testing.T) {
	th := DefaultThresholds()
	if th.RepairAfter != 10*time.Minute {
		t.Fatalf("default repair-after %s, want 10m", th.RepairAfter)
	}
	th.RepairAfter = 0
	if err := th.Validate(); err != nil {
		t.Fatalf("repair-after 0: %v", err)
	}
	th.RepairAfter = -time.Second
	if err := th.Validate(); err == nil || !strings.Contains(err.Error(), "repair-after") {
		t.Fatalf("negative repair-after: %v", err)
	}
}

// TestPlanSpecReplicate: a replicate's spec names the replica to copy from
// and the server to copy to, and its attempt records the target (where a
// partial copy may be left) for a retry.
func TestPlanSpecReplicate(t *testing.T) {
	topo := build(100, srv(sid(1), 10, vrp(1, 8*mib, 1).In("c")), srv(sid(2), 10), srv(sid(3), 10, v(9, mib)))
	task := &fsmpb.Task{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 1, Collection: "c"}
	spec, err := PlanSpec(task, topo, DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if spec.Source != swa(1) || spec.Target != swa(2) || spec.Size != 8*mib || spec.ReplicaPlacement != 1 {
		t.Fatalf("spec %s -> %s size %d rp %d, want %s -> %s", spec.Source, spec.Target, spec.Size, spec.ReplicaPlacement, swa(1), swa(2))
	}
	if got := SpecServers(spec); !slices.Equal(got, []string{swa(2)}) {
		t.Fatalf("attempt servers %v, want the target only", got)
	}
}

func TestRepairHolds(t *testing.T) {
	const cooldown = 30 * time.Minute
	rep, vac, bal := fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_BALANCE
	pending, assigned, running := fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING
	failed, cancelled := fsmpb.TaskState_TASK_STATE_FAILED, fsmpb.TaskState_TASK_STATE_CANCELLED
	recent, old := now.Add(-time.Minute).UnixNano(), now.Add(-time.Hour).UnixNano()
	tasks := []*fsmpb.Task{
		{Id: 1, Type: bal, State: pending, VolumeId: 1, Attempt: 1},                                  // preemptible
		{Id: 2, Type: vac, State: pending, VolumeId: 2, Attempt: 2},                                  // retrying: may have left something
		{Id: 3, Type: vac, State: running, VolumeId: 3},                                              // running
		{Id: 4, Type: rep, State: pending, VolumeId: 4},                                              // a repair pending already
		{Id: 5, Type: rep, State: failed, VolumeId: 5, FinishedAt: recent},                           // failed repair, in cooldown
		{Id: 6, Type: rep, State: failed, VolumeId: 6, FinishedAt: old},                              // after cooldown
		{Id: 7, Type: rep, State: cancelled, VolumeId: 7, FinishedAt: recent},                        // whole again: no hold
		{Id: 8, Type: rep, State: cancelled, VolumeId: 8, FinishedAt: recent, CancelRequested: true}, // operator's cancel
		{Id: 9, Type: vac, State: failed, VolumeId: 9, FinishedAt: recent},                           // routine failure: no hold
		{Id: 10, Type: bal, State: pending, VolumeId: 10, CancelRequested: true},                     // cancelling
		{Id: 11, Type: vac, State: assigned, VolumeId: 11},
		{Id: 12, Type: bal, State: pending, VolumeId: 12},                                                                                // but an unretired change
		{Id: 13, Type: bal, State: pending, VolumeId: 13, Attempt: 2, EarlierServers: []string{"a"}},                                     // a move retry: preemptible (waits for the lost copy for ever)
		{Id: 14, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, State: pending, VolumeId: 14, Attempt: 2, EarlierServers: []string{"a"}}, // EC retry: may have left shards
		{Id: 15, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, State: pending, VolumeId: 15, Attempt: 11},                               // EC whose attempts were all planning waits: preemptible
		{Id: 16, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, State: pending, VolumeId: 16, Attempt: 2, StartedAt: recent},             // EC that started before the history was written: may have left shards
	}
	changes := []*fsmpb.CapacityChange{{TaskId: 99, VolumeId: 12}}
	busy, pre := repairHolds(tasks, changes, now, cooldown, cooldown)
	var gotBusy []uint32
	for v := range busy {
		gotBusy = append(gotBusy, v)
	}
	slices.Sort(gotBusy)
	if want := []uint32{2, 3, 4, 5, 8, 10, 11, 12, 14, 16}; !slices.Equal(gotBusy, want) {
		t.Fatalf("busy %v, want %v", gotBusy, want)
	}
	if len(pre) != 3 || pre[1] != 1 || pre[13] != 13 || pre[15] != 15 {
		t.Fatalf("preemptible %v, want volume 1's task 1, volume 13's task 13 and volume 15's task 15", pre)
	}
}

// TestRepairFailureHold: a failed repair holds its volume for the repair
// delay (at least a minute), not the half-hour failure cooldown; an
// operator's cancel holds it for the whole cooldown.
func TestRepairFailureHold(t *testing.T) {
	for _, c := range []struct{ cooldown, after, want time.Duration }{
		{30 * time.Minute, 10 * time.Minute, 10 * time.Minute},
		{30 * time.Minute, 3 * time.Second, time.Minute},
		{30 * time.Minute, 0, time.Minute},
		{30 * time.Second, 10 * time.Minute, 30 * time.Second},
		{30 * time.Minute, time.Hour, 30 * time.Minute},
	} {
		if got := RepairFailureHold(c.cooldown, c.after); got != c.want {
			t.Errorf("RepairFailureHold(%s, %s) = %s, want %s", c.cooldown, c.after, got, c.want)
		}
	}
	rep := fsmpb.TaskType_TASK_TYPE_REPLICATE
	fiveAgo := now.Add(-5 * time.Minute).UnixNano()
	tasks := []*fsmpb.Task{
		{Id: 1, Type: rep, State: fsmpb.TaskState_TASK_STATE_FAILED, VolumeId: 1, FinishedAt: fiveAgo},
		{Id: 2, Type: rep, State: fsmpb.TaskState_TASK_STATE_CANCELLED, VolumeId: 2, FinishedAt: fiveAgo, CancelRequested: true},
	}
	busy, _ := repairHolds(tasks, nil, now, time.Minute, 30*time.Minute)
	if busy[1] || !busy[2] {
		t.Fatalf("busy %v: want volume 1 free again (its repair failed 5 minutes ago, held 1 minute) and volume 2 held (cancelled by an operator)", busy)
	}
	// Each failure doubles the hold: after three, 4 minutes; after four,
	// 8, so a failure 5 minutes ago holds again.
	for n, want := range map[int]bool{1: false, 3: false, 4: true, 10: true} {
		var ts []*fsmpb.Task
		for i := range n {
			ts = append(ts, &fsmpb.Task{Id: uint64(10 + i), Type: rep, State: fsmpb.TaskState_TASK_STATE_FAILED, VolumeId: 1,
				FinishedAt: now.Add(-time.Duration(5+i) * time.Minute).UnixNano()})
		}
		if busy, _ := repairHolds(ts, nil, now, time.Minute, 30*time.Minute); busy[1] != want {
			t.Errorf("%d failed repairs, the last 5 minutes ago: held %v, want %v", n, busy[1], want)
		}
	}
}
