package scheduler

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Table tests of the maintenance round's pure decisions (decide.go): no
// cluster, no goroutines, the time passed in.

const (
	tLease = 10 * time.Second
	tGrace = 5 * time.Second
	tLimit = tLease + tGrace
)

// attempt is an active task of worker w, assigned at the given time.
func attempt(id uint64, w string, assigned time.Time) *fsmpb.Task {
	return &fsmpb.Task{Id: id, Fence: id * 10, WorkerId: w, AssignedAt: assigned.UnixNano(), State: fsmpb.TaskState_TASK_STATE_RUNNING,
		Type: fsmpb.TaskType_TASK_TYPE_VACUUM}
}

func expiryString(d leaseExpiry) string {
	var parts []string
	for _, e := range d.expired {
		var ids []string
		for _, t := range e.tasks {
			ids = append(ids, fmt.Sprint(t.Id))
		}
		parts = append(parts, e.worker+":"+strings.Join(ids, ","))
	}
	return fmt.Sprintf("expired[%s] drop%v", strings.Join(parts, " "), d.drop)
}

func TestExpiredLeases(t *testing.T) {
	started := now.Add(-time.Hour)
	long := now.Add(-time.Hour) // assigned long ago
	for _, tc := range []struct {
		name      string
		started   time.Time
		active    []*fsmpb.Task
		lastSeen  map[string]time.Time
		connected []string
		want      string
	}{
		{name: "nothing active, everyone heard", active: nil, lastSeen: map[string]time.Time{"w1": now}, connected: []string{"w1"},
			want: "expired[] drop[]"},
		{name: "silent exactly lease+grace: expired and dropped", active: []*fsmpb.Task{attempt(1, "w1", long)},
			lastSeen: map[string]time.Time{"w1": now.Add(-tLimit)}, connected: []string{"w1"}, want: "expired[w1:1] drop[w1]"},
		{name: "silent a nanosecond less than lease+grace: kept", active: []*fsmpb.Task{attempt(1, "w1", long)},
			lastSeen: map[string]time.Time{"w1": now.Add(-tLimit + 1)}, connected: []string{"w1"}, want: "expired[] drop[]"},
		{name: "past the lease, within the grace: kept", active: []*fsmpb.Task{attempt(1, "w1", long)},
			lastSeen: map[string]time.Time{"w1": now.Add(-tLease - time.Second)}, connected: []string{"w1"}, want: "expired[] drop[]"},
		{name: "disconnected but heard within lease+grace: kept (may still roll back under its lease)",
			active: []*fsmpb.Task{attempt(1, "w1", long)}, lastSeen: map[string]time.Time{"w1": now.Add(-time.Second)}, want: "expired[] drop[]"},
		{name: "disconnected and silent: expired, no session to drop", active: []*fsmpb.Task{attempt(1, "w1", long)},
			lastSeen: map[string]time.Time{"w1": now.Add(-time.Minute)}, want: "expired[w1:1] drop[]"},
		{name: "reconnected (heard just now) after a long silence: kept", active: []*fsmpb.Task{attempt(1, "w1", long)},
			lastSeen: map[string]time.Time{"w1": now}, connected: []string{"w1"}, want: "expired[] drop[]"},
		{name: "assigned within lease+grace to a silent worker: kept", active: []*fsmpb.Task{attempt(1, "w1", now.Add(-tLimit+1))},
			lastSeen: map[string]time.Time{"w1": now.Add(-time.Minute)}, want: "expired[] drop[]"},
		{name: "assigned exactly lease+grace ago to a silent worker: expired", active: []*fsmpb.Task{attempt(1, "w1", now.Add(-tLimit))},
			lastSeen: map[string]time.Time{"w1": now.Add(-time.Minute)}, want: "expired[w1:1] drop[]"},
		{name: "never heard by this leader: counted from its start", active: []*fsmpb.Task{attempt(1, "w9", long)},
			want: "expired[w9:1] drop[]"},
		{name: "never heard, leader started a nanosecond less than lease+grace ago: nothing yet", started: now.Add(-tLimit + 1),
			active: []*fsmpb.Task{attempt(1, "w9", long)}, lastSeen: map[string]time.Time{"w1": now.Add(-time.Hour)}, connected: []string{"w1"},
			want: "expired[] drop[]"},
		{name: "new leader exactly lease+grace old: never-heard worker expires", started: now.Add(-tLimit),
			active: []*fsmpb.Task{attempt(1, "w9", long)}, want: "expired[w9:1] drop[]"},
		{name: "session without lastSeen is dropped", connected: []string{"w2"}, want: "expired[] drop[w2]"},
		{name: "grouped by worker in order of first attempt; drops sorted",
			active:    []*fsmpb.Task{attempt(1, "wb", long), attempt(2, "wa", long), attempt(3, "wb", long), attempt(4, "wc", long)},
			lastSeen:  map[string]time.Time{"wa": now.Add(-time.Minute), "wb": now.Add(-time.Minute), "wc": now},
			connected: []string{"wc", "wb", "wa"}, want: "expired[wb:1,3 wa:2] drop[wa wb]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.started
			if st.IsZero() {
				st = started
			}
			got := expiryString(expiredLeases(tc.active, st, tc.lastSeen, tc.connected, now, tLease, tGrace))
			if got != tc.want {
				t.Fatalf("expiredLeases = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLeaseHeld(t *testing.T) {
	for _, tc := range []struct {
		seen  time.Time
		heard bool
		want  bool
	}{
		{now, true, true},
		{now.Add(-tLimit + 1), true, true},
		{now.Add(-tLimit), true, false},
		{now, false, false},
	} {
		if got := leaseHeld(tc.seen, tc.heard, now, tLimit); got != tc.want {
			t.Errorf("leaseHeld(now-%s, heard %v) = %v, want %v", now.Sub(tc.seen), tc.heard, got, tc.want)
		}
	}
}

func cancelling(t *fsmpb.Task, reason string, retry bool, sent time.Time) cancelInfo {
	return cancelInfo{fence: t.Fence, reason: reason, retry: retry, at: sent, sent: sent}
}

func TestCancelsToSend(t *testing.T) {
	req := func(id uint64, reason string) *fsmpb.Task {
		x := attempt(id, "w1", now)
		x.CancelRequested, x.CancelReason = true, reason
		return x
	}
	earlier := now.Add(-time.Minute)
	for _, tc := range []struct {
		name       string
		active     []*fsmpb.Task
		cancelling map[uint64]cancelInfo
		want       []cancelUpdate
	}{
		{name: "no cancel requested: nothing", active: []*fsmpb.Task{attempt(1, "w1", now)}},
		{name: "requested: told once, entry recorded", active: []*fsmpb.Task{req(1, "operator")},
			want: []cancelUpdate{{info: cancelInfo{fence: 10, reason: "operator", at: now, sent: now}, send: true}}},
		{name: "already being cancelled on request: not told again",
			active: []*fsmpb.Task{req(1, "operator")}, cancelling: map[uint64]cancelInfo{1: cancelling(req(1, ""), "operator", false, earlier)}},
		{name: "a stuck cancel in flight: not told again, its end made final with the operator's reason",
			active:     []*fsmpb.Task{req(1, "operator")},
			cancelling: map[uint64]cancelInfo{1: cancelling(req(1, ""), "stuck: no progress", true, earlier)},
			want:       []cancelUpdate{{info: cancelInfo{fence: 10, reason: "operator", at: earlier, sent: earlier}}}},
		{name: "cancelling an earlier attempt: this one is told",
			active:     []*fsmpb.Task{req(1, "operator")},
			cancelling: map[uint64]cancelInfo{1: {fence: 9, reason: "old", sent: earlier}},
			want:       []cancelUpdate{{info: cancelInfo{fence: 10, reason: "operator", at: now, sent: now}, send: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cancelsToSend(tc.active, tc.cancelling, now)
			for i := range got {
				if got[i].task != tc.active[0] {
					t.Fatalf("update %d is for task %v, want the active task", i, got[i].task)
				}
				got[i].task = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("cancelsToSend = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResendCancel(t *testing.T) {
	hb := 2 * time.Second
	ci := cancelInfo{fence: 10, sent: now.Add(-2 * hb)}
	for _, tc := range []struct {
		name  string
		ci    cancelInfo
		fence uint64
		want  bool
	}{
		{"exactly two heartbeats since sent", ci, 10, true},
		{"a nanosecond sooner", cancelInfo{fence: 10, sent: now.Add(-2*hb + 1)}, 10, false},
		{"another attempt's cancel", ci, 11, false},
	} {
		if got := resendCancel(tc.ci, tc.fence, now, hb); got != tc.want {
			t.Errorf("%s: resendCancel = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStuckTasks(t *testing.T) {
	after := map[fsmpb.TaskType]time.Duration{fsmpb.TaskType_TASK_TYPE_VACUUM: 10 * time.Minute}
	a := attempt(1, "w1", now)
	ec := attempt(2, "w1", now)
	ec.Type = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	for _, tc := range []struct {
		name       string
		active     []*fsmpb.Task
		progress   map[uint64]progressInfo
		cancelling map[uint64]cancelInfo
		wantTrack  []uint64
		wantStuck  []string
	}{
		{name: "first seen: its clock starts", active: []*fsmpb.Task{a}, wantTrack: []uint64{1}},
		{name: "progress of an earlier attempt: clock restarts", active: []*fsmpb.Task{a},
			progress: map[uint64]progressInfo{1: {fence: 9, at: now.Add(-time.Hour)}}, wantTrack: []uint64{1}},
		{name: "no progress a nanosecond short of the limit: left", active: []*fsmpb.Task{a},
			progress: map[uint64]progressInfo{1: {fence: 10, at: now.Add(-10*time.Minute + 1)}}},
		{name: "no progress exactly the limit: stuck", active: []*fsmpb.Task{a},
			progress:  map[uint64]progressInfo{1: {fence: 10, step: "compact", at: now.Add(-10 * time.Minute)}},
			wantStuck: []string{`1: stuck: no progress for 10m0s in step "compact"`}},
		{name: "duration truncated to the second", active: []*fsmpb.Task{a},
			progress:  map[uint64]progressInfo{1: {fence: 10, at: now.Add(-10*time.Minute - 1500*time.Millisecond)}},
			wantStuck: []string{`1: stuck: no progress for 10m1s in step ""`}},
		{name: "already being cancelled: left alone", active: []*fsmpb.Task{a},
			progress:   map[uint64]progressInfo{1: {fence: 10, at: now.Add(-time.Hour)}},
			cancelling: map[uint64]cancelInfo{1: {fence: 10}}},
		{name: "a type without a limit gets the default, not 0", active: []*fsmpb.Task{ec},
			progress: map[uint64]progressInfo{2: {fence: 20, at: now.Add(-DefaultStuckAfter + time.Second)}}},
		{name: "a type without a limit is stuck after the default", active: []*fsmpb.Task{ec},
			progress:  map[uint64]progressInfo{2: {fence: 20, at: now.Add(-DefaultStuckAfter)}},
			wantStuck: []string{`2: stuck: no progress for 30m0s in step ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := stuckTasks(tc.active, tc.progress, tc.cancelling, now, after)
			var track []uint64
			for _, x := range d.track {
				track = append(track, x.Id)
			}
			var stuck []string
			for _, x := range d.stuck {
				stuck = append(stuck, fmt.Sprintf("%d: %s", x.task.Id, x.reason))
			}
			if !reflect.DeepEqual(track, tc.wantTrack) || !reflect.DeepEqual(stuck, tc.wantStuck) {
				t.Fatalf("stuckTasks: track %v stuck %q, want track %v stuck %q", track, stuck, tc.wantTrack, tc.wantStuck)
			}
		})
	}
}

func TestBusyVolumes(t *testing.T) {
	cooldown := 30 * time.Minute
	task := func(id uint64, vol uint32, st fsmpb.TaskState, finished time.Time) *fsmpb.Task {
		x := &fsmpb.Task{Id: id, VolumeId: vol, State: st, Type: fsmpb.TaskType_TASK_TYPE_VACUUM}
		if !finished.IsZero() {
			x.FinishedAt = finished.UnixNano()
		}
		return x
	}
	move := func(id uint64, vol uint32, st fsmpb.TaskState, src, dst string) *fsmpb.Task {
		x := task(id, vol, st, time.Time{})
		x.Type, x.Source, x.Target = fsmpb.TaskType_TASK_TYPE_BALANCE, src, dst
		return x
	}
	for _, tc := range []struct {
		name      string
		tasks     []*fsmpb.Task
		changes   []*fsmpb.CapacityChange
		wantBusy  []uint32
		wantMoves []ActiveMove
	}{
		{name: "nothing"},
		{name: "pending, assigned and running tasks hold their volumes", tasks: []*fsmpb.Task{
			task(1, 1, fsmpb.TaskState_TASK_STATE_PENDING, time.Time{}), task(2, 2, fsmpb.TaskState_TASK_STATE_ASSIGNED, time.Time{}),
			task(3, 3, fsmpb.TaskState_TASK_STATE_RUNNING, time.Time{})}, wantBusy: []uint32{1, 2, 3}},
		{name: "completed frees its volume", tasks: []*fsmpb.Task{task(1, 1, fsmpb.TaskState_TASK_STATE_COMPLETED, now)}},
		{name: "failed exactly the cooldown ago: still cooling down", tasks: []*fsmpb.Task{
			task(1, 1, fsmpb.TaskState_TASK_STATE_FAILED, now.Add(-cooldown))}, wantBusy: []uint32{1}},
		{name: "failed a nanosecond more than the cooldown ago: free", tasks: []*fsmpb.Task{
			task(1, 1, fsmpb.TaskState_TASK_STATE_FAILED, now.Add(-cooldown-1))}},
		{name: "cancelled recently: cooling down", tasks: []*fsmpb.Task{
			task(1, 4, fsmpb.TaskState_TASK_STATE_CANCELLED, now.Add(-time.Minute))}, wantBusy: []uint32{4}},
		{name: "unretired capacity change holds its volume", changes: []*fsmpb.CapacityChange{{TaskId: 9, VolumeId: 7}}, wantBusy: []uint32{7}},
		{name: "balance moves in flight listed in task order; finished ones not", tasks: []*fsmpb.Task{
			move(1, 1, fsmpb.TaskState_TASK_STATE_PENDING, "a", "b"), move(2, 2, fsmpb.TaskState_TASK_STATE_FAILED, "c", "d"),
			move(3, 3, fsmpb.TaskState_TASK_STATE_RUNNING, "e", "f")},
			wantBusy: []uint32{1, 3}, wantMoves: []ActiveMove{{VolumeID: 1, Source: "a", Target: "b"}, {VolumeID: 3, Source: "e", Target: "f"}}},
		{name: "a move completed inside the cooldown is listed done, its volume free for other work", tasks: func() []*fsmpb.Task {
			recent := move(1, 1, fsmpb.TaskState_TASK_STATE_COMPLETED, "a", "b")
			recent.FinishedAt = now.Add(-cooldown).UnixNano()
			old := move(2, 2, fsmpb.TaskState_TASK_STATE_COMPLETED, "c", "d")
			old.FinishedAt = now.Add(-cooldown - 1).UnixNano()
			vacuum := task(3, 3, fsmpb.TaskState_TASK_STATE_COMPLETED, now)
			return []*fsmpb.Task{recent, old, vacuum}
		}(), wantMoves: []ActiveMove{{VolumeID: 1, Source: "a", Target: "b", Done: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busy, moves := busyVolumes(tc.tasks, tc.changes, now, cooldown)
			want := map[uint32]bool{}
			for _, v := range tc.wantBusy {
				want[v] = true
			}
			if !reflect.DeepEqual(busy, want) || !reflect.DeepEqual(moves, tc.wantMoves) {
				t.Fatalf("busyVolumes = %v %v, want %v %v", busy, moves, want, tc.wantMoves)
			}
		})
	}
}
