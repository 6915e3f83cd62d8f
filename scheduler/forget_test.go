package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

func TestWorkersToForget(t *testing.T) {
	const week = 7 * 24 * time.Hour
	w := func(id string, registered time.Duration) *fsmpb.Worker {
		return &fsmpb.Worker{Id: id, RegisteredAt: now.Add(-registered).UnixNano()}
	}
	for _, tc := range []struct {
		name        string
		registered  []*fsmpb.Worker
		connected   []string
		seen        map[string]time.Duration // ago
		leaderSince time.Duration            // ago
		want        []string
	}{
		{"gone for longer than a week, leader for longer", []*fsmpb.Worker{w("b", 8*week), w("a", 2*week)}, nil, nil, 3 * week, []string{"a", "b"}},
		{"registered within the week", []*fsmpb.Worker{w("a", week-time.Minute)}, nil, nil, 3 * week, nil},
		{"exactly a week", []*fsmpb.Worker{w("a", week)}, nil, nil, week, []string{"a"}},
		{"connected now, registered long ago", []*fsmpb.Worker{w("a", 8*week)}, []string{"a"}, nil, 3 * week, nil},
		{"heard from within the week by this leader", []*fsmpb.Worker{w("a", 8*week)}, nil, map[string]time.Duration{"a": 6 * 24 * time.Hour}, 3 * week, nil},
		{"heard from long ago", []*fsmpb.Worker{w("a", 8*week)}, nil, map[string]time.Duration{"a": 2 * week}, 3 * week, []string{"a"}},
		{"a new leader forgets nobody", []*fsmpb.Worker{w("a", 8*week)}, nil, nil, time.Hour, nil},
		{"none registered", nil, nil, nil, 3 * week, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			connected := map[string]bool{}
			for _, id := range tc.connected {
				connected[id] = true
			}
			seen := map[string]time.Time{}
			for id, ago := range tc.seen {
				seen[id] = now.Add(-ago)
			}
			got := WorkersToForget(tc.registered, connected, seen, now.Add(-tc.leaderSince), now, week)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPruneForgetsGoneWorkers: the leader's prune pass deregisters, through
// the log, a worker unheard of for --worker-forget-after, and keeps a
// connected one and one registered within the period.
func TestPruneForgetsGoneWorkers(t *testing.T) {
	const week = 7 * 24 * time.Hour
	f := fsm.New()
	a := &fsmApplier{f: f, at: now.Add(-2 * week)}
	caps := []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_VACUUM}
	a.applyAll(t, fsm.RegisterCmd(&fsmpb.Worker{Id: "gone", Capabilities: caps, MaxConcurrent: 1}),
		fsm.RegisterCmd(&fsmpb.Worker{Id: "connected", Capabilities: caps, MaxConcurrent: 1}))
	a.at = now.Add(-24 * time.Hour)
	a.applyAll(t, fsm.RegisterCmd(&fsmpb.Worker{Id: "recent", Capabilities: caps, MaxConcurrent: 1}))
	a.at = now

	s := New(Config{Now: func() time.Time { return now }}, a, f, nil)
	s.mu.Lock()
	s.running, s.started = true, now.Add(-2*week)
	s.sessions["connected"] = &Session{id: "connected", max: 1, out: make(chan *pb.AdminMessage, 1), done: make(chan struct{})}
	s.mu.Unlock()
	s.prune(context.Background(), now)

	var ids []string
	f.Read(func(st *fsm.State) {
		for _, w := range st.Workers() {
			ids = append(ids, w.Id)
		}
	})
	slices.Sort(ids)
	if want := []string{"connected", "recent"}; !slices.Equal(ids, want) {
		t.Errorf("registered after the prune: %v, want %v", ids, want)
	}

	// A leader of an hour forgets nobody, however old the registrations.
	f2 := fsm.New()
	a2 := &fsmApplier{f: f2, at: now.Add(-2 * week)}
	a2.applyAll(t, fsm.RegisterCmd(&fsmpb.Worker{Id: "gone", Capabilities: caps, MaxConcurrent: 1}))
	s2 := New(Config{Now: func() time.Time { return now }}, a2, f2, nil)
	s2.mu.Lock()
	s2.running, s2.started = true, now.Add(-time.Hour)
	s2.mu.Unlock()
	before := a2.index
	s2.prune(context.Background(), now)
	if a2.index != before {
		t.Errorf("a leader of one hour proposed %d commands; want none", a2.index-before)
	}
}
