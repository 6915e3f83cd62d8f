package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Shared by the targeted faults (faults_targeted_*_test.go, issue 16): each
// round makes its own work (a fresh volume and a task submitted for it),
// arms a simulator hook on an exact RPC of that task, and counts whether
// the hook fired and how the task ended.

// targetedStats counts, per fault kind and variant, the rounds armed, the
// rounds whose hook fired, and how the tasks ended.
type targetedStats struct {
	mu    sync.Mutex
	rows  map[string]*targetedRow
	fails []string // violations found by the rounds themselves
}

type targetedRow struct {
	kind         faultKind
	armed, fired int
	// resubmits counts tasks submitted again because the leader's cached
	// topology did not list the new volume yet (see start).
	resubmits int
	outcomes  map[string]int
}

var targeted = &targetedStats{rows: map[string]*targetedRow{}}

// reset empties the stats for a new run (go test -count=2).
func (s *targetedStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows, s.fails = map[string]*targetedRow{}, nil
}

func (s *targetedStats) row(kind faultKind, variant string) *targetedRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := string(kind) + " " + variant
	r := s.rows[k]
	if r == nil {
		r = &targetedRow{kind: kind, outcomes: map[string]int{}}
		s.rows[k] = r
	}
	return r
}

func (s *targetedStats) add(kind faultKind, variant string, armed, fired bool, outcome string) {
	r := s.row(kind, variant)
	s.mu.Lock()
	defer s.mu.Unlock()
	if armed {
		r.armed++
	}
	if fired {
		r.fired++
	}
	if outcome != "" {
		r.outcomes[outcome]++
	}
}

func (s *targetedStats) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, fmt.Sprintf(format, args...))
}

// ended records how an armed round's task ended (its resubmits counted),
// and a violation if its hook fired and the task did not complete: every
// targeted fault hits a step the task must survive.
func (r *faultRun) ended(kind faultKind, variant string, w *targetWork, fired bool, outcome string, tk *fsmpb.Task) {
	r.noteEnd(kind, w, outcome, tk)
	targeted.add(kind, variant, true, fired, outcome)
	row := targeted.row(kind, variant)
	targeted.mu.Lock()
	row.resubmits += w.resubmits
	targeted.mu.Unlock()
	if fired && outcome != "completed" {
		lastErr := "(task unreadable)"
		if tk != nil {
			lastErr = fmt.Sprintf("after %d attempts, last error %q", tk.Attempt, tk.LastError)
		}
		targeted.violation("round %d, %s %s: task %d (%s of volume %d) ended %s, not completed, %s",
			r.round, kind, variant, w.task, typeNames[w.typ], w.vid, outcome, lastErr)
	}
}

func init() {
	registerRunReset(targeted.reset)
	registerFinalCheck("targeted-fault rounds whose task ended wrongly", func(r *faultRun) (int, []string) {
		targeted.mu.Lock()
		defer targeted.mu.Unlock()
		keys := make([]string, 0, len(targeted.rows))
		for k := range targeted.rows {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		fmt.Fprintf(&b, "  targeted faults (kind variant: armed / fired; resubmitted; task outcomes):\n")
		armed, resubmits := 0, 0
		type kindSum struct{ armed, fired int }
		byKind := map[faultKind]*kindSum{}
		for _, k := range keys {
			row := targeted.rows[k]
			armed += row.armed
			resubmits += row.resubmits
			if byKind[row.kind] == nil {
				byKind[row.kind] = &kindSum{}
			}
			byKind[row.kind].armed += row.armed
			byKind[row.kind].fired += row.fired
			outs := map[string]int{}
			for o, n := range row.outcomes {
				outs[o] = n
			}
			fmt.Fprintf(&b, "    %-58s %3d / %3d; %d; %s\n", k, row.armed, row.fired, row.resubmits, fmtCounts(outs))
		}
		// Resubmits stop once the leader plans from a topology newer than
		// the submission; until then they show here.
		fmt.Fprintf(&b, "  tasks resubmitted because the leader's topology lacked the new volume: %d\n", resubmits)
		fmt.Print(b.String())
		r.t.Log(b.String())
		fails := slices.Clone(targeted.fails)
		kinds := make([]string, 0, len(byKind))
		for k := range byKind {
			kinds = append(kinds, string(k))
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			if sum := byKind[faultKind(k)]; sum.armed >= 3 && sum.fired == 0 {
				fails = append(fails, fmt.Sprintf("%s: armed %d times, its hook never fired (the rounds test nothing)", k, sum.armed))
			}
		}
		return armed, fails
	})
}

// roundRng is the round's own random source (reproducible from the seed).
func (r *faultRun) roundRng(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(r.seed^salt, uint64(r.round)))
}

// targetWork is a task a targeted round made for itself.
type targetWork struct {
	typ            fsmpb.TaskType
	vid            uint32
	task           uint64
	source, target *sim.VolumeServer // balance
	resubmits      int               // see start
}

// submit submits a task through any admin that answers (a follower
// forwards it to the leader), retrying for a while.
func (r *faultRun) submit(req *pb.SubmitTaskRequest) (uint64, error) {
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range r.admins {
			if a.stopped || !a.running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			resp, err := pb.NewAdminClient(a.conn).SubmitTask(ctx, req)
			cancel()
			if err == nil {
				return resp.Task.Id, nil
			}
			last = err
		}
		time.Sleep(pollEvery)
	}
	return 0, fmt.Errorf("submit %s of volume %d: %w", req.Type, req.VolumeId, last)
}

// makeEcWork adds a full quiet single-replica volume and submits its
// erasure coding.
func (r *faultRun) makeEcWork(rng *rand.Rand) (*targetWork, error) {
	home := rng.IntN(len(r.sim.Servers()))
	vid, err := r.addRoundVolume(sim.VolumeSpec{Size: 98 << 20, FileCount: 900, ModifiedAt: time.Now().Add(-24 * time.Hour).Unix(), Servers: []int{home}}, true)
	if err != nil {
		return nil, fmt.Errorf("add a volume to encode: %w", err)
	}
	return &targetWork{typ: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, vid: vid}, nil
}

// makeBalanceWork adds a volume (written to just now: never quiet enough to
// encode; at least 60 MB: not one the work generator puts garbage on) and
// submits its move to a server with a free slot.
func (r *faultRun) makeBalanceWork(rng *rand.Rand) (*targetWork, error) {
	servers := r.sim.Servers()
	src := rng.IntN(len(servers))
	vid, err := r.addRoundVolume(sim.VolumeSpec{Size: 64 << 20, FileCount: 500, ModifiedAt: time.Now().Unix(), Servers: []int{src}}, false)
	if err != nil {
		return nil, fmt.Errorf("add a volume to move: %w", err)
	}
	var dsts []*sim.VolumeServer
	for i, s := range servers {
		if i != src && int64(len(s.Volumes())) < r.sim.Config().MaxVolumesPerServer-2 {
			dsts = append(dsts, s)
		}
	}
	if len(dsts) == 0 {
		return nil, fmt.Errorf("no server has a free slot for volume %d", vid)
	}
	return &targetWork{typ: fsmpb.TaskType_TASK_TYPE_BALANCE, vid: vid, source: servers[src], target: dsts[rng.IntN(len(dsts))]}, nil
}

// makeVacuumWork adds a volume with half its bytes garbage and submits its
// vacuum.
func (r *faultRun) makeVacuumWork(rng *rand.Rand) (*targetWork, error) {
	vid, err := r.addRoundVolume(sim.VolumeSpec{Size: 40 << 20, FileCount: 400, DeleteCount: 200, DeletedBytes: 20 << 20,
		ModifiedAt: time.Now().Unix(), Servers: []int{rng.IntN(len(r.sim.Servers()))}}, false)
	if err != nil {
		return nil, fmt.Errorf("add a volume to vacuum: %w", err)
	}
	return &targetWork{typ: fsmpb.TaskType_TASK_TYPE_VACUUM, vid: vid}, nil
}

// start submits the work's task once the master lists its volume (arm the
// hooks first: the task may run at once).
func (r *faultRun) start(w *targetWork) error {
	if err := r.waitListed(w.vid); err != nil {
		return err
	}
	req := &pb.SubmitTaskRequest{Type: w.typ, VolumeId: w.vid}
	if w.typ == fsmpb.TaskType_TASK_TYPE_BALANCE {
		req.Source, req.Target = w.source.ID(), w.target.ID()
	}
	// The leader plans from its cached copy of the master's topology, which
	// may not list the volume yet: such a task fails at once, before any
	// volume-server call, and is submitted again. Counted (the targeted
	// table's "resubmitted"): 0 once planning waits for a topology newer
	// than the submission.
	deadline := time.Now().Add(20 * time.Second)
	for {
		id, err := r.submit(req)
		w.task = id
		if err != nil {
			return err
		}
		for {
			tk := r.taskNow(id)
			if tk == nil || !terminalStates[tk.State] {
				if tk != nil && tk.State == fsmpb.TaskState_TASK_STATE_RUNNING {
					return nil
				}
				if time.Now().After(deadline) {
					return nil
				}
				time.Sleep(pollEvery)
				continue
			}
			if !strings.Contains(tk.LastError, "not found in the master's topology") || time.Now().After(deadline) {
				return nil
			}
			w.resubmits++
			break
		}
	}
}

// taskNow is the task's current state (nil if it cannot be read).
func (r *faultRun) taskNow(id uint64) *fsmpb.Task {
	tasks, err := r.listTasks()
	if err != nil {
		return nil
	}
	i := slices.IndexFunc(tasks, func(tk *fsmpb.Task) bool { return tk.Id == id })
	if i < 0 {
		return nil
	}
	return tasks[i]
}

// workerOf is the worker process running the task now (nil if none).
func (r *faultRun) workerOf(id uint64) *faultWorker {
	tk := r.taskNow(id)
	if tk == nil {
		return nil
	}
	for _, w := range r.workers {
		if w.ID == tk.WorkerId {
			return w
		}
	}
	return nil
}

// waitEnded waits for the task to be terminal and says how it ended
// ("completed", "failed", ...; "open" if it did not end within timeout).
func (r *faultRun) waitEnded(id uint64, timeout time.Duration) (string, *fsmpb.Task) {
	deadline := time.Now().Add(timeout)
	for {
		tk := r.taskNow(id)
		if tk != nil && terminalStates[tk.State] {
			return strings.TrimPrefix(strings.ToLower(tk.State.String()), "task_state_"), tk
		}
		if time.Now().After(deadline) {
			return "open", tk
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// noteEnd records how the round's task ended.
func (r *faultRun) noteEnd(kind faultKind, w *targetWork, outcome string, tk *fsmpb.Task) {
	if tk == nil {
		r.note("%s: task %d (%s of volume %d): %s", kind, w.task, typeNames[w.typ], w.vid, outcome)
		return
	}
	r.note("%s: task %d (%s of volume %d) %s after %d attempts: %s", kind, w.task, typeNames[w.typ], w.vid, outcome, tk.Attempt, tk.LastError)
}

// waitListed polls the master until its topology lists the volume (a task
// for a volume the master does not list fails at once).
func (r *faultRun) waitListed(vid uint32) error {
	m, err := seaweed.DialMaster(r.masterList())
	if err != nil {
		return err
	}
	defer m.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		topo, err := m.Topology(ctx)
		cancel()
		if err == nil && topo.Volumes[vid] != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("the master does not list volume %d after 20s", vid), err)
		}
		time.Sleep(pollEvery)
	}
}

// waitFired waits for the hook (fired closed) or for the task to end
// without it, up to targetedFireWait; it reports whether the hook fired.
func (r *faultRun) waitFired(fired <-chan struct{}, task uint64) bool {
	deadline := time.After(targetedFireWait)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-fired:
			return true
		case <-deadline:
			return false
		case <-tick.C:
			if tk := r.taskNow(task); tk != nil && terminalStates[tk.State] {
				select {
				case <-fired:
					return true
				default:
					return false
				}
			}
		}
	}
}
