package fsm

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Test vocabulary shared by every fsm test: hand-made commands, a harness that
// feeds them through Encode/Decode/Apply at increasing raft indexes, the state
// invariants, and a seeded random command generator. Nothing here reads a
// clock or sleeps; every "time" is a number the test chose.

const (
	vacuum  = fsmpb.TaskType_TASK_TYPE_VACUUM
	ecType  = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	balance = fsmpb.TaskType_TASK_TYPE_BALANCE

	codeNone    = fsmpb.ErrorCode_ERROR_CODE_NONE
	codeInvalid = fsmpb.ErrorCode_ERROR_CODE_INVALID
	codeNotFnd  = fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND
	codeIllegal = fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION
	codeStale   = fsmpb.ErrorCode_ERROR_CODE_STALE_FENCE
	codeBusy    = fsmpb.ErrorCode_ERROR_CODE_VOLUME_BUSY
	codeVersion = fsmpb.ErrorCode_ERROR_CODE_UNKNOWN_VERSION
	codeOwner   = fsmpb.ErrorCode_ERROR_CODE_NOT_OWNER
)

var allStates = []fsmpb.TaskState{pending, assigned, running, completed, failed, cancelled}

// ---- command builders -------------------------------------------------------

func submitCmd(typ fsmpb.TaskType, vol uint32) *fsmpb.Command {
	return SubmitCmd(&fsmpb.SubmitTask{Type: typ, VolumeId: vol})
}

func submitWith(c *fsmpb.SubmitTask) *fsmpb.Command { return SubmitCmd(c) }

func assignCmd(id uint64, worker string) *fsmpb.Command { return AssignCmd(id, worker, nil, nil) }

func startCmd(id, fence uint64) *fsmpb.Command { return StartCmd(id, fence, "") }

func progressCmd(id, fence uint64, p float64, step string) *fsmpb.Command {
	return ProgressCmd(id, fence, "", p, step)
}

func completeCmd(id, fence uint64, ch *fsmpb.CapacityChange) *fsmpb.Command {
	return CompleteCmd(id, fence, "", ch)
}

func failCmd(id, fence uint64, msg string) *fsmpb.Command { return FailCmd(id, fence, "", msg) }

func requeueCmd(id, fence uint64, reason string, retry bool) *fsmpb.Command {
	return RequeueCmd(id, fence, "", reason, 0, retry)
}

func cancelCmd(id uint64, reason string) *fsmpb.Command { return CancelCmd(id, 0, "", reason) }

func requestCancelCmd(id uint64, reason string) *fsmpb.Command { return RequestCancelCmd(id, reason) }

func retireCmd(ids ...uint64) *fsmpb.Command { return RetireCmd(ids...) }

func registerCmd(w *fsmpb.Worker) *fsmpb.Command { return RegisterCmd(w) }

// pruneCmd carries CommandVersion: the generator returns it without
// stamping a version as it does the other commands.
func pruneCmd(ids ...uint64) *fsmpb.Command {
	c := PruneCmd(ids...)
	c.Version = CommandVersion
	return c
}

func deregisterCmd(id string) *fsmpb.Command { return DeregisterCmd(id) }

func adminCmd(id, addr string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetAdminAddr{SetAdminAddr: &fsmpb.SetAdminAddr{Id: id, GrpcAddr: addr}}}
}

// rawBytes marshals cmd exactly as given (unlike Encode, it keeps a wrong Version).
func rawBytes(t testing.TB, cmd *fsmpb.Command) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
	if err != nil {
		t.Fatalf("marshal command: %v", err)
	}
	return b
}

// contentKey is the state's canonical encoding without the applied index.
// Every log entry advances the applied index, refused or not (it has to: it
// is the raft position), so "a refusal changes nothing" is checked on this
// key plus AppliedIndex == index, rather than on Hash().
func contentKey(t testing.TB, s *State) string {
	t.Helper()
	snap := s.Snapshot()
	// Where the log stands, not what it made: the applied index, and the
	// highest command version written (raised by a refused entry too, since
	// the entry is in the log whatever its outcome).
	snap.AppliedIndex, snap.MaxCommandVersion = 0, 0
	b, err := MarshalSnapshot(snap)
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	return string(b)
}

// ---- harness -----------------------------------------------------------------

// harness applies commands to one State at indexes 1, 2, 3, ... with a
// proposer time that advances by 1000 per command. Commands travel through
// Encode and Decode, as they would through the raft log.
type harness struct {
	t   testing.TB
	s   *State
	idx uint64
	now int64
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, s: NewState(), now: 1_000_000}
}

func (h *harness) apply(cmd *fsmpb.Command) *fsmpb.ApplyResult {
	h.t.Helper()
	h.idx++
	h.now += 1000
	b, err := EncodeAgreed(h.now, CurrentVersion, cmd)
	if err != nil {
		h.t.Fatalf("encode: %v", err)
	}
	dec, err := Decode(b)
	if err != nil {
		h.t.Fatalf("decode: %v", err)
	}
	res := h.s.Apply(h.idx, dec)
	if res.Index != h.idx {
		h.t.Fatalf("result index %d, want %d", res.Index, h.idx)
	}
	if h.s.AppliedIndex() != h.idx {
		h.t.Fatalf("applied index %d after applying %d", h.s.AppliedIndex(), h.idx)
	}
	checkInvariants(h.t, h.s)
	return res
}

// ok applies cmd, requires success and returns the task it produced.
func (h *harness) ok(cmd *fsmpb.Command) *fsmpb.Task {
	h.t.Helper()
	res := h.apply(cmd)
	if res.ErrorCode != codeNone {
		h.t.Fatalf("index %d: %T refused: %v %s", h.idx, cmd.Body, res.ErrorCode, res.Error)
	}
	return res.Task
}

// refuse applies cmd, requires the given error code, and that nothing but the
// applied index changed.
func (h *harness) refuse(code fsmpb.ErrorCode, cmd *fsmpb.Command) *fsmpb.ApplyResult {
	h.t.Helper()
	before := contentKey(h.t, h.s)
	res := h.apply(cmd)
	if res.ErrorCode != code {
		h.t.Fatalf("index %d: %T gave %v (%q), want %v", h.idx, cmd.Body, res.ErrorCode, res.Error, code)
	}
	if res.Error == "" {
		h.t.Fatalf("index %d: refusal %v carries no message", h.idx, code)
	}
	if res.Task != nil || res.Existing {
		h.t.Fatalf("index %d: refusal carries a task: %v", h.idx, res.Task)
	}
	if contentKey(h.t, h.s) != before {
		h.t.Fatalf("index %d: refused %T changed the state", h.idx, cmd.Body)
	}
	return res
}

func (h *harness) task(id uint64) *fsmpb.Task {
	h.t.Helper()
	t, ok := h.s.Task(id)
	if !ok {
		h.t.Fatalf("task %d not found", id)
	}
	return t
}

// taskIn creates a vacuum task on vol and drives it to state st through the
// ordinary commands. Cancelled and failed tasks are reached from running, so
// they carry a fence.
func (h *harness) taskIn(st fsmpb.TaskState, vol uint32) *fsmpb.Task {
	h.t.Helper()
	t := h.ok(submitCmd(vacuum, vol))
	if st == pending {
		return t
	}
	t = h.ok(assignCmd(t.Id, "w1"))
	if st == assigned {
		return t
	}
	t = h.ok(startCmd(t.Id, t.Fence))
	switch st {
	case running:
		return t
	case completed:
		return h.ok(completeCmd(t.Id, t.Fence, nil))
	case failed:
		return h.ok(failCmd(t.Id, t.Fence, "boom"))
	case cancelled:
		return h.ok(cancelCmd(t.Id, "operator"))
	}
	h.t.Fatalf("taskIn: unexpected state %v", st)
	return nil
}

// ---- invariants ----------------------------------------------------------------

// checkInvariants checks everything that must hold of any state reachable by
// applying commands (or by restoring a snapshot of one).
func checkInvariants(t testing.TB, s *State) {
	t.Helper()
	if s.nextTaskID == 0 {
		t.Fatalf("nextTaskID is 0")
	}
	indexed := 0
	for st, set := range s.byState {
		for id := range set {
			task, ok := s.tasks[id]
			if !ok || task.State != st {
				t.Fatalf("byState[%v] holds task %d, which is not in that state", st, id)
			}
			indexed++
		}
	}
	if indexed != len(s.tasks) {
		t.Fatalf("byState indexes %d tasks, state holds %d", indexed, len(s.tasks))
	}
	activeByVol := map[uint32]uint64{}
	for id, tk := range s.tasks {
		if tk == nil {
			t.Fatalf("task %d is nil", id)
		}
		if tk.Id != id {
			t.Fatalf("task stored under %d has id %d", id, tk.Id)
		}
		if id == 0 || id >= s.nextTaskID {
			t.Fatalf("task id %d outside 1..%d", id, s.nextTaskID-1)
		}
		if tk.Attempt < 1 {
			t.Fatalf("task %d has attempt %d", id, tk.Attempt)
		}
		if !ValidType(tk.Type) {
			t.Fatalf("task %d has type %v", id, tk.Type)
		}
		if tk.VolumeId == 0 {
			t.Fatalf("task %d has volume 0", id)
		}
		if _, ok := stateNames[tk.State]; !ok {
			t.Fatalf("task %d has state %v", id, tk.State)
		}
		if tk.Progress < 0 || tk.Progress > 100 || math.IsNaN(tk.Progress) {
			t.Fatalf("task %d has progress %v", id, tk.Progress)
		}
		for i := 1; i < len(tk.Params); i++ {
			if tk.Params[i-1].Key >= tk.Params[i].Key {
				t.Fatalf("task %d params not strictly sorted: %q, %q", id, tk.Params[i-1].Key, tk.Params[i].Key)
			}
		}
		// Fence: 0 while pending, the assigning index while assigned/running.
		// Terminal tasks keep the fence of their last attempt (0 if they were
		// never assigned), so a late report with that fence is told
		// "illegal transition" rather than "stale fence"; see the report.
		switch tk.State {
		case pending:
			if tk.Fence != 0 || tk.WorkerId != "" {
				t.Fatalf("pending task %d has fence %d worker %q", id, tk.Fence, tk.WorkerId)
			}
		case assigned, running:
			if tk.Fence == 0 || tk.WorkerId == "" {
				t.Fatalf("%s task %d has fence %d worker %q", StateName(tk.State), id, tk.Fence, tk.WorkerId)
			}
			if tk.Fence > s.appliedIndex {
				t.Fatalf("task %d fence %d is beyond the applied index %d", id, tk.Fence, s.appliedIndex)
			}
		}
		if Active(tk.State) {
			if other, dup := activeByVol[tk.VolumeId]; dup {
				t.Fatalf("volume %d has two active tasks: %d and %d", tk.VolumeId, other, id)
			}
			activeByVol[tk.VolumeId] = id
		}
	}
	if len(s.active) != len(activeByVol) {
		t.Fatalf("active index has %d volumes, tasks say %d (%v vs %v)", len(s.active), len(activeByVol), s.active, activeByVol)
	}
	for vol, id := range activeByVol {
		if s.active[vol] != id {
			t.Fatalf("active index maps volume %d to %d, want %d", vol, s.active[vol], id)
		}
	}

	perVol := map[uint32]int{}
	for id, ch := range s.changes {
		if ch == nil || ch.TaskId != id {
			t.Fatalf("capacity change stored under %d is %v", id, ch)
		}
		tk, ok := s.tasks[id]
		if !ok {
			t.Fatalf("capacity change %d has no task", id)
		}
		if tk.State != completed || ch.VolumeId != tk.VolumeId || ch.Type != tk.Type {
			t.Fatalf("capacity change %d does not match its task (%s, vol %d)", id, StateName(tk.State), tk.VolumeId)
		}
		for i := 1; i < len(ch.Shards); i++ {
			if ch.Shards[i-1].ShardId > ch.Shards[i].ShardId {
				t.Fatalf("capacity change %d shards not sorted", id)
			}
		}
		perVol[ch.VolumeId]++
	}
	if len(perVol) != len(s.changesByVolume) {
		t.Fatalf("changesByVolume %v, changes say %v", s.changesByVolume, perVol)
	}
	for vol, n := range perVol {
		if s.changesByVolume[vol] != n {
			t.Fatalf("changesByVolume[%d] = %d, changes say %d", vol, s.changesByVolume[vol], n)
		}
		if !s.HasUnreportedChange(vol) {
			t.Fatalf("HasUnreportedChange(%d) false with %d changes", vol, n)
		}
	}

	for id, w := range s.workers {
		if w == nil || w.Id != id || id == "" {
			t.Fatalf("worker stored under %q is %v", id, w)
		}
		for i, c := range w.Capabilities {
			if !ValidType(c) {
				t.Fatalf("worker %q has capability %v", id, c)
			}
			if i > 0 && w.Capabilities[i-1] > c {
				t.Fatalf("worker %q capabilities not sorted", id)
			}
		}
	}
	for id, addr := range s.admins {
		if id == "" || addr == "" {
			t.Fatalf("admin %q has address %q", id, addr)
		}
	}
}

// ---- per-command checker ---------------------------------------------------------

// checker applies commands one at a time and, besides checkInvariants,
// checks what each command did against the state just before it:
//   - a refused command changes nothing but the applied index;
//   - values already handed out are never mutated in place (the named task's
//     previous value after every command; a whole earlier snapshot every
//     fullEvery commands);
//   - at most the one task the command names (or creates) changes, and only
//     by a Legal move (or a running task's progress);
//   - a terminal task never changes again and no task ever disappears;
//   - fence safety: a worker report with a fence other than the current one
//     is never accepted;
//   - the accepted command did exactly what it says (fence = index,
//     attempt+1 on requeue, ...).
//
// Because stored values are immutable, "nothing changed" is checked by
// pointer identity of every stored value, which is stricter than comparing
// encodings and far cheaper.
type checker struct {
	t testing.TB
	// The state's contents before the command (immutable values).
	prev        map[uint64]*fsmpb.Task
	prevChanges map[uint64]*fsmpb.CapacityChange
	// pruned counts tasks a PruneTasks removed.
	pruned      int
	prevWorkers map[string]*fsmpb.Worker
	prevAdmins  map[string]string
	prevNext    uint64
	// Every fullEvery steps, a whole snapshot taken earlier must still encode
	// to the bytes it had then.
	fullEvery, steps int
	heldSnap         *fsmpb.StateSnapshot
	heldBytes        []byte
	// Observed (from, to) state changes and result codes, to show coverage.
	transitions map[[2]fsmpb.TaskState]int
	codes       map[fsmpb.ErrorCode]int
}

func newChecker(t testing.TB, s *State, fullEvery int) *checker {
	t.Helper()
	c := &checker{t: t, fullEvery: max(fullEvery, 1), transitions: map[[2]fsmpb.TaskState]int{}, codes: map[fsmpb.ErrorCode]int{}}
	checkInvariants(t, s)
	c.remember(s)
	c.hold(s)
	return c
}

func (c *checker) remember(s *State) {
	c.prev = make(map[uint64]*fsmpb.Task, len(s.tasks))
	for id, tk := range s.tasks {
		c.prev[id] = tk
	}
	c.prevChanges = make(map[uint64]*fsmpb.CapacityChange, len(s.changes))
	for id, ch := range s.changes {
		c.prevChanges[id] = ch
	}
	c.prevWorkers = make(map[string]*fsmpb.Worker, len(s.workers))
	for id, w := range s.workers {
		c.prevWorkers[id] = w
	}
	c.prevAdmins = make(map[string]string, len(s.admins))
	for id, a := range s.admins {
		c.prevAdmins[id] = a
	}
	c.prevNext = s.nextTaskID
}

// hold keeps a snapshot (sharing the state's values) and its encoding.
func (c *checker) hold(s *State) {
	c.t.Helper()
	c.heldSnap = s.Snapshot()
	b, err := MarshalSnapshot(c.heldSnap)
	if err != nil {
		c.t.Fatalf("marshal: %v", err)
	}
	c.heldBytes = b
}

// unchanged reports whether s holds exactly the values remembered.
func (c *checker) unchanged(s *State) bool {
	if s.nextTaskID != c.prevNext || len(s.tasks) != len(c.prev) || len(s.changes) != len(c.prevChanges) ||
		len(s.workers) != len(c.prevWorkers) || len(s.admins) != len(c.prevAdmins) {
		return false
	}
	for id, tk := range s.tasks {
		if c.prev[id] != tk {
			return false
		}
	}
	for id, ch := range s.changes {
		if c.prevChanges[id] != ch {
			return false
		}
	}
	for id, w := range s.workers {
		if c.prevWorkers[id] != w {
			return false
		}
	}
	for id, a := range s.admins {
		if pa, ok := c.prevAdmins[id]; !ok || pa != a {
			return false
		}
	}
	return true
}

func marshalTask(t testing.TB, tk *fsmpb.Task) []byte {
	t.Helper()
	if tk == nil {
		return nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tk)
	if err != nil {
		t.Fatalf("marshal task: %v", err)
	}
	return b
}

func taskIDOf(cmd *fsmpb.Command) (uint64, bool) {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_AssignTask:
		return b.AssignTask.TaskId, true
	case *fsmpb.Command_StartTask:
		return b.StartTask.TaskId, true
	case *fsmpb.Command_ReportProgress:
		return b.ReportProgress.TaskId, true
	case *fsmpb.Command_CompleteTask:
		return b.CompleteTask.TaskId, true
	case *fsmpb.Command_FailTask:
		return b.FailTask.TaskId, true
	case *fsmpb.Command_RequeueTask:
		return b.RequeueTask.TaskId, true
	case *fsmpb.Command_CancelTask:
		return b.CancelTask.TaskId, true
	case *fsmpb.Command_RequestCancel:
		return b.RequestCancel.TaskId, true
	}
	return 0, false
}

// workerFence returns the fence of a worker report (start/progress/complete/fail).
func workerFence(cmd *fsmpb.Command) (uint64, bool) {
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_StartTask:
		return b.StartTask.Fence, true
	case *fsmpb.Command_ReportProgress:
		return b.ReportProgress.Fence, true
	case *fsmpb.Command_CompleteTask:
		return b.CompleteTask.Fence, true
	case *fsmpb.Command_FailTask:
		return b.FailTask.Fence, true
	}
	return 0, false
}

func (c *checker) step(s *State, index uint64, cmd *fsmpb.Command) *fsmpb.ApplyResult {
	t := c.t
	t.Helper()
	prevApplied, prevNext := s.appliedIndex, s.nextTaskID
	prevChangesByVol := map[uint32]int{}
	hadChange := map[uint64]bool{}
	for id, ch := range c.prevChanges {
		prevChangesByVol[ch.VolumeId]++
		hadChange[id] = true
	}
	prevActive := map[uint32]*fsmpb.Task{}
	for _, tk := range c.prev {
		if Active(tk.State) {
			prevActive[tk.VolumeId] = tk
		}
	}
	named, hasNamed := taskIDOf(cmd)
	namedBefore := c.prev[named]
	namedBytes := marshalTask(t, namedBefore)

	res := s.Apply(index, cmd)
	c.codes[res.ErrorCode]++
	c.steps++

	checkInvariants(t, s)
	if res.Index != index {
		t.Fatalf("index %d: result index %d", index, res.Index)
	}
	if want := max(prevApplied, index); s.appliedIndex != want {
		t.Fatalf("index %d: applied index %d, want %d", index, s.appliedIndex, want)
	}
	// Values handed out before the command were not mutated in place.
	if !bytes.Equal(marshalTask(t, namedBefore), namedBytes) {
		t.Fatalf("index %d: %T mutated the stored task %d in place", index, cmd.Body, named)
	}
	if c.steps%c.fullEvery == 0 {
		if b, _ := MarshalSnapshot(c.heldSnap); !bytes.Equal(b, c.heldBytes) {
			t.Fatalf("index %d: a value held by a snapshot from up to %d commands ago was mutated in place", index, c.fullEvery)
		}
		c.hold(s)
	}
	changed := !c.unchanged(s)
	prev := c.prev
	c.remember(s)

	refused := res.ErrorCode != codeNone
	if refused {
		if changed {
			t.Fatalf("index %d: refused %T (%v %s) changed the state", index, cmd.Body, res.ErrorCode, res.Error)
		}
		if res.Task != nil || res.Existing || res.Error == "" {
			t.Fatalf("index %d: refusal result malformed: %v", index, res)
		}
	}
	if cmd.Version < CommandVersion || cmd.Version > CurrentVersion {
		if res.ErrorCode != codeVersion {
			t.Fatalf("index %d: version %d gave %v, want UNKNOWN_VERSION", index, cmd.Version, res.ErrorCode)
		}
		return res
	}
	if cmd.Body == nil && res.ErrorCode != codeInvalid {
		t.Fatalf("index %d: empty body gave %v", index, res.ErrorCode)
	}

	// Which tasks changed, and how.
	pruned := map[uint64]bool{}
	if p, ok := cmd.Body.(*fsmpb.Command_PruneTasks); ok && !refused {
		for _, id := range p.PruneTasks.TaskIds {
			pruned[id] = true
		}
	}
	for id, before := range prev {
		after, ok := s.tasks[id]
		if !ok {
			if !pruned[id] || !Terminal(before.State) || hadChange[id] {
				t.Fatalf("index %d: task %d (%s, change %v) disappeared after %T", index, id, StateName(before.State), hadChange[id], cmd.Body)
			}
			c.pruned++
			continue
		}
		if after == before {
			continue
		}
		if proto.Equal(after, before) {
			continue
		}
		if !hasNamed || id != named {
			t.Fatalf("index %d: %T changed task %d it does not name", index, cmd.Body, id)
		}
		if Terminal(before.State) {
			t.Fatalf("index %d: %T changed terminal (%s) task %d:\n before %v\n after  %v", index, cmd.Body, StateName(before.State), id, before, after)
		}
		if before.State != after.State {
			if !Legal(before.State, after.State) {
				t.Fatalf("index %d: task %d moved %s -> %s, which is not Legal", index, id, StateName(before.State), StateName(after.State))
			}
			c.transitions[[2]fsmpb.TaskState{before.State, after.State}]++
		} else if _, isRequest := cmd.Body.(*fsmpb.Command_RequestCancel); isRequest && after.CancelRequested && !before.CancelRequested {
			// An operator's cancel marks an assigned or running task.
		} else if _, isProgress := cmd.Body.(*fsmpb.Command_ReportProgress); !isProgress || after.State != running {
			t.Fatalf("index %d: %T changed task %d without a state change", index, cmd.Body, id)
		}
	}
	newTasks := 0
	for id := range s.tasks {
		if _, ok := prev[id]; !ok {
			newTasks++
			if _, isSubmit := cmd.Body.(*fsmpb.Command_SubmitTask); !isSubmit || refused || res.Existing {
				t.Fatalf("index %d: task %d appeared from %T", index, id, cmd.Body)
			}
		}
	}
	if newTasks > 1 {
		t.Fatalf("index %d: %d tasks appeared", index, newTasks)
	}

	// Fence safety, whatever else happened.
	if f, ok := workerFence(cmd); ok {
		if before, exists := prev[named]; exists && f != before.Fence {
			if !refused {
				t.Fatalf("index %d: %T with fence %d accepted for task %d at fence %d", index, cmd.Body, f, named, before.Fence)
			}
			// Progress is validated before anything else; the rest must say stale.
			if res.ErrorCode != codeStale && res.ErrorCode != codeInvalid {
				t.Fatalf("index %d: stale %T gave %v", index, cmd.Body, res.ErrorCode)
			}
			if _, isProgress := cmd.Body.(*fsmpb.Command_ReportProgress); !isProgress && res.ErrorCode != codeStale {
				t.Fatalf("index %d: stale %T gave %v, want STALE_FENCE", index, cmd.Body, res.ErrorCode)
			}
		}
	}
	// Ownership, from OwnerVersion on: a report naming another worker than
	// its (current) attempt's is refused; a refusal for that is never given
	// otherwise.
	if w := ownerField(cmd); w != nil && hasNamed {
		// A requeue or cancel with fence 0 names the current attempt.
		f, report := workerFence(cmd)
		if rq, ok := cmd.Body.(*fsmpb.Command_RequeueTask); ok {
			f = rq.RequeueTask.Fence
		}
		if ct, ok := cmd.Body.(*fsmpb.Command_CancelTask); ok {
			f = ct.CancelTask.Fence
		}
		before, exists := prev[named]
		current := exists && (f == before.Fence || (!report && f == 0))
		foreign := cmd.Version >= OwnerVersion && *w != "" && current && before.WorkerId != *w
		if foreign && res.ErrorCode != codeOwner && res.ErrorCode != codeInvalid {
			t.Fatalf("index %d: %T from worker %q on task %d of worker %q gave %v, want NOT_OWNER", index, cmd.Body, *w, named, before.WorkerId, res.ErrorCode)
		}
		if !foreign && res.ErrorCode == codeOwner {
			t.Fatalf("index %d: %T from worker %q (version %d) on task %d of worker %q refused as NOT_OWNER", index, cmd.Body, *w, cmd.Version, named, before.WorkerId)
		}
	}
	if hasNamed {
		if _, exists := prev[named]; !exists && res.ErrorCode != codeNotFnd && res.ErrorCode != codeInvalid {
			t.Fatalf("index %d: %T on unknown task %d gave %v", index, cmd.Body, named, res.ErrorCode)
		}
	}
	if refused {
		return res
	}

	// The accepted command did what it says.
	before, after := prev[named], s.tasks[named]
	sameAttempt := func() {
		if after.Fence != before.Fence || after.Attempt != before.Attempt || after.WorkerId != before.WorkerId || after.RetryCount != before.RetryCount {
			t.Fatalf("index %d: %T changed the attempt of task %d: %v -> %v", index, cmd.Body, named, before, after)
		}
	}
	if hasNamed && (res.Task == nil || !proto.Equal(res.Task, after)) {
		t.Fatalf("index %d: result task %v, stored %v", index, res.Task, after)
	}
	switch b := cmd.Body.(type) {
	case *fsmpb.Command_SubmitTask:
		vol := b.SubmitTask.VolumeId
		if res.Existing {
			if changed || s.nextTaskID != prevNext {
				t.Fatalf("index %d: existing submit changed the state", index)
			}
			pa := prevActive[vol]
			if pa == nil || res.Task == nil || res.Task.Id != pa.Id || pa.Type != b.SubmitTask.Type {
				t.Fatalf("index %d: existing submit returned %v, active was %v", index, res.Task, pa)
			}
			break
		}
		if prevActive[vol] != nil {
			t.Fatalf("index %d: second active task created on volume %d", index, vol)
		}
		if o := b.SubmitTask.Origin; o != "" && !OperatorOrigin(o) && prevChangesByVol[vol] > 0 {
			t.Fatalf("index %d: origin %q accepted on volume %d with an unreported change", index, o, vol)
		}
		nt := res.Task
		if nt == nil || nt.Id != prevNext || s.nextTaskID != prevNext+1 || nt.State != pending || nt.Attempt != 1 || nt.Fence != 0 || nt.CreatedAt != cmd.Now {
			t.Fatalf("index %d: submit produced %v (next id was %d, now %d)", index, nt, prevNext, s.nextTaskID)
		}
	case *fsmpb.Command_AssignTask:
		if before.State != pending || after.State != assigned || after.Fence != index || after.WorkerId != b.AssignTask.WorkerId || after.Attempt != before.Attempt {
			t.Fatalf("index %d: assign %v -> %v", index, before, after)
		}
	case *fsmpb.Command_StartTask:
		if before.State != assigned || after.State != running || after.StartedAt != cmd.Now {
			t.Fatalf("index %d: start %v -> %v", index, before, after)
		}
		sameAttempt()
	case *fsmpb.Command_ReportProgress:
		if before.State != running || after.State != running || after.Progress != b.ReportProgress.Progress || after.Step != b.ReportProgress.Step {
			t.Fatalf("index %d: progress %v -> %v", index, before, after)
		}
		sameAttempt()
	case *fsmpb.Command_CompleteTask:
		if before.State != running || after.State != completed || after.Progress != 100 {
			t.Fatalf("index %d: complete %v -> %v", index, before, after)
		}
		sameAttempt()
		if _, has := s.changes[named]; has != (b.CompleteTask.Change != nil) {
			t.Fatalf("index %d: complete with change=%v left change recorded=%v", index, b.CompleteTask.Change != nil, has)
		}
	case *fsmpb.Command_FailTask:
		if (before.State != assigned && before.State != running) || after.State != failed || after.LastError != b.FailTask.Error {
			t.Fatalf("index %d: fail %v -> %v", index, before, after)
		}
		sameAttempt()
	case *fsmpb.Command_RequeueTask:
		f := b.RequeueTask.Fence
		wantRetry := before.RetryCount
		if b.RequeueTask.CountAsRetry {
			wantRetry++
		}
		if before.CancelRequested {
			// An operator's cancel: the stopped attempt ends the task.
			if (before.State != assigned && before.State != running) || (f != 0 && f != before.Fence) || after.State != cancelled {
				t.Fatalf("index %d: requeue of a task being cancelled %v -> %v", index, before, after)
			}
			sameAttempt()
			break
		}
		if (before.State != assigned && before.State != running) || (f != 0 && f != before.Fence) ||
			after.State != pending || after.Attempt != before.Attempt+1 || after.Fence != 0 || after.WorkerId != "" ||
			after.RetryCount != wantRetry || after.NotBefore != b.RequeueTask.NotBefore {
			t.Fatalf("index %d: requeue(fence %d, retry %v) %v -> %v", index, f, b.RequeueTask.CountAsRetry, before, after)
		}
	case *fsmpb.Command_CancelTask:
		if f := b.CancelTask.Fence; !Active(before.State) || after.State != cancelled || (f != 0 && f != before.Fence) ||
			(b.CancelTask.PendingAttempt != 0 && (before.State != pending || before.Attempt != b.CancelTask.PendingAttempt)) {
			t.Fatalf("index %d: cancel %v -> %v", index, before, after)
		}
		sameAttempt()
	case *fsmpb.Command_RequestCancel:
		want := before.State
		if before.State == pending {
			want = cancelled
		}
		if !Active(before.State) || after.State != want || !after.CancelRequested {
			t.Fatalf("index %d: cancel request %v -> %v", index, before, after)
		}
		sameAttempt()
	case *fsmpb.Command_RetireCapacityChanges:
		for _, id := range b.RetireCapacityChanges.TaskIds {
			if _, still := s.changes[id]; still {
				t.Fatalf("index %d: change %d not retired", index, id)
			}
			if r, kept := s.retired[id]; hadChange[id] && (!kept || r.RetiredAt != cmd.Now || r.TaskId != id) {
				t.Fatalf("index %d: retired change %d not remembered as retired now: %v", index, id, r)
			}
		}
		for id, r := range s.retired {
			if r.RetiredAt < cmd.Now-RetiredKeep {
				t.Fatalf("index %d: change %d retired at %d still remembered at %d", index, id, r.RetiredAt, cmd.Now)
			}
		}
	case *fsmpb.Command_RegisterWorker:
		if _, ok := s.workers[b.RegisterWorker.Worker.GetId()]; !ok {
			t.Fatalf("index %d: worker not registered", index)
		}
	case *fsmpb.Command_DeregisterWorker:
		if _, ok := s.workers[b.DeregisterWorker.WorkerId]; ok {
			t.Fatalf("index %d: worker still registered", index)
		}
	case *fsmpb.Command_PruneTasks:
		for _, id := range b.PruneTasks.TaskIds {
			before, existed := prev[id]
			if _, still := s.tasks[id]; still && existed && Terminal(before.State) && !hadChange[id] {
				t.Fatalf("index %d: terminal task %d without a change was not pruned", index, id)
			}
		}
	case *fsmpb.Command_SetAdminAddr:
		if a, _ := s.AdminAddr(b.SetAdminAddr.Id); a != b.SetAdminAddr.GrpcAddr {
			t.Fatalf("index %d: admin addr %q", index, a)
		}
	}
	return res
}

// ---- random command generator -------------------------------------------------

// gen makes random commands over a few volumes, workers and task ids, looking
// at the current state so that many commands are valid, while also producing
// invalid ones, stale fences, unknown ids and unknown versions. It only
// reaches the state through sorted or keyed lookups, so the same seed and the
// same state sequence always give the same commands.
type gen struct {
	r      *rand.Rand
	now    int64
	fences map[uint64][]uint64 // every fence ever handed out, per task
}

var (
	genVolumes = []uint32{1, 2, 3, 4}
	genWorkers = []string{"w1", "w2", "w3"}
	genKeys    = []string{"a", "b", "c", "d"}
)

func newGen(seed uint64) *gen {
	return &gen{
		r:      rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		now:    1_700_000_000_000_000_000,
		fences: map[uint64][]uint64{},
	}
}

// learn records the fence a result handed out, so later commands can reuse it
// once it is stale.
func (g *gen) learn(res *fsmpb.ApplyResult) {
	if res != nil && res.Task != nil && res.Task.Fence != 0 {
		fs := g.fences[res.Task.Id]
		if len(fs) == 0 || fs[len(fs)-1] != res.Task.Fence {
			g.fences[res.Task.Id] = append(fs, res.Task.Fence)
		}
	}
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) volume() uint32 {
	if g.r.IntN(30) == 0 {
		return 0
	}
	return genVolumes[g.r.IntN(len(genVolumes))]
}

func (g *gen) taskType() fsmpb.TaskType {
	switch g.r.IntN(25) {
	case 0:
		return fsmpb.TaskType_TASK_TYPE_UNSPECIFIED
	case 1:
		return fsmpb.TaskType(99)
	}
	return TaskTypes[g.r.IntN(len(TaskTypes))]
}

func (g *gen) taskID(s *State) uint64 {
	n := s.nextTaskID
	switch x := g.r.IntN(10); {
	case x < 6:
		if id, ok := s.active[genVolumes[g.r.IntN(len(genVolumes))]]; ok {
			return id
		}
		fallthrough
	case x < 9:
		if n > 1 {
			return 1 + g.r.Uint64N(n-1)
		}
	}
	return g.r.Uint64N(n + 2) // 0, known or unknown
}

// taskFor returns, half of the time, an active task in state st (looking at
// the volumes from a random start), so that deep sequences (complete, then
// retire, then a detector submit) happen often; otherwise taskID.
func (g *gen) taskFor(s *State, st fsmpb.TaskState) uint64 {
	if g.r.IntN(2) == 0 {
		off := g.r.IntN(len(genVolumes))
		for i := range genVolumes {
			if id, ok := s.active[genVolumes[(off+i)%len(genVolumes)]]; ok && s.tasks[id].State == st {
				return id
			}
		}
	}
	return g.taskID(s)
}

func (g *gen) fence(s *State, id uint64) uint64 {
	var cur uint64
	if t, ok := s.tasks[id]; ok {
		cur = t.Fence
	}
	switch x := g.r.IntN(20); {
	case x < 12:
		return cur
	case x < 15:
		return 0
	case x < 19:
		if fs := g.fences[id]; len(fs) > 0 {
			return fs[g.r.IntN(len(fs))]
		}
		return cur
	}
	return g.r.Uint64N(1000)
}

func (g *gen) progress() float64 {
	switch g.r.IntN(15) {
	case 0:
		return -1
	case 1:
		return 100.5
	case 2:
		return math.NaN()
	case 3:
		return math.Inf(1)
	}
	return float64(g.r.IntN(101))
}

func (g *gen) change() *fsmpb.CapacityChange {
	if g.r.IntN(2) == 0 {
		return nil
	}
	ch := &fsmpb.CapacityChange{OldSize: g.r.Uint64N(1 << 30), NewSize: g.r.Uint64N(1 << 30), Source: "s1", Target: "s2"}
	// Foreign ids the fsm must overwrite.
	ch.TaskId, ch.VolumeId = g.r.Uint64N(5), uint32(g.r.IntN(5))
	for _, id := range g.r.Perm(g.r.IntN(4)) {
		ch.Shards = append(ch.Shards, &fsmpb.ShardPlacement{ShardId: uint32(id), Server: g.pick(genWorkers)})
	}
	return ch
}

// next returns the next command, stamped with a version (occasionally a wrong
// one) and the proposer time.
func (g *gen) next(s *State) *fsmpb.Command {
	g.now += int64(1 + g.r.IntN(1_000_000))
	var cmd *fsmpb.Command
	if g.r.IntN(30) == 0 {
		// Prune a few ids: terminal ones mostly, but also live, unknown
		// and change-holding ones, which must be kept; rarely none at all.
		var ids []uint64
		for range g.r.IntN(4) {
			ids = append(ids, g.taskID(s))
		}
		cmd = pruneCmd(ids...)
		cmd.Now = g.now
		return cmd
	}
	switch x := g.r.IntN(100); {
	case x < 16:
		c := &fsmpb.SubmitTask{Type: g.taskType(), VolumeId: g.volume(), Collection: g.pick([]string{"", "c1"}), Priority: int32(g.r.IntN(5))}
		c.Origin = []string{"", "manual", "detector", "vacuum_detector"}[g.r.IntN(4)]
		for range g.r.IntN(4) {
			c.Params = append(c.Params, &fsmpb.Param{Key: g.pick(genKeys), Value: g.pick(genWorkers)})
		}
		cmd = submitWith(c)
	case x < 30:
		w := g.pick(genWorkers)
		if g.r.IntN(30) == 0 {
			w = ""
		}
		cmd = assignCmd(g.taskFor(s, pending), w)
	case x < 42:
		id := g.taskFor(s, assigned)
		cmd = startCmd(id, g.fence(s, id))
	case x < 52:
		id := g.taskFor(s, running)
		cmd = progressCmd(id, g.fence(s, id), g.progress(), g.pick([]string{"", "copy", "verify"}))
	case x < 62:
		id := g.taskFor(s, running)
		cmd = completeCmd(id, g.fence(s, id), g.change())
	case x < 67:
		id := g.taskID(s)
		cmd = failCmd(id, g.fence(s, id), g.pick([]string{"disk full", "timeout"}))
	case x < 77:
		id := g.taskID(s)
		f := uint64(0)
		if g.r.IntN(2) == 0 {
			f = g.fence(s, id)
		}
		cmd = requeueCmd(id, f, "lease expired", g.r.IntN(2) == 0)
		cmd.GetRequeueTask().NotBefore = g.now + int64(g.r.IntN(3))*1e9
	case x < 82:
		switch id := g.taskID(s); g.r.IntN(4) {
		case 0:
			cmd = cancelCmd(id, "operator")
		case 3:
			var attempt uint32 = 1
			if tk, ok := s.tasks[id]; ok {
				attempt = tk.Attempt + uint32(g.r.IntN(2))
			}
			cmd = CancelPendingCmd(id, attempt, "no longer needed")
		case 1:
			cmd = requestCancelCmd(id, g.pick([]string{"", "operator"}))
		default:
			cmd = cancelCmd(id, "operator")
			cmd.GetCancelTask().Fence = g.fence(s, id)
		}
	case x < 88:
		var ids []uint64
		changes := s.CapacityChanges()
		for range 1 + g.r.IntN(3) {
			if len(changes) > 0 && g.r.IntN(4) != 0 {
				ids = append(ids, changes[g.r.IntN(len(changes))].TaskId)
			} else {
				ids = append(ids, g.r.Uint64N(s.nextTaskID+2))
			}
		}
		cmd = retireCmd(ids...)
	case x < 92:
		var w *fsmpb.Worker
		if g.r.IntN(20) != 0 {
			w = &fsmpb.Worker{Id: g.pick(genWorkers), MaxConcurrent: uint32(g.r.IntN(4)), Address: "10.0.0.1:1"}
			if g.r.IntN(20) == 0 {
				w.Id = ""
			}
			for _, i := range g.r.Perm(3)[:g.r.IntN(4)] {
				w.Capabilities = append(w.Capabilities, TaskTypes[i])
			}
			if g.r.IntN(20) == 0 {
				w.Capabilities = append(w.Capabilities, fsmpb.TaskType(7))
			}
		}
		cmd = registerCmd(w)
	case x < 95:
		cmd = deregisterCmd(g.pick(genWorkers))
	case x < 98:
		id, addr := g.pick([]string{"a1", "a2", ""}), g.pick([]string{"10.0.0.9:7000", "10.0.0.8:7000", ""})
		cmd = adminCmd(id, addr)
	case x < 99:
		cmd = &fsmpb.Command{} // no body
	default:
		cmd = cancelCmd(g.taskID(s), "from the future")
		cmd.Version = CurrentVersion + 1 + uint32(g.r.IntN(2))
	}
	if w := ownerField(cmd); w != nil {
		// A report from nobody (the leader's own), its attempt's worker or
		// any worker.
		switch g.r.IntN(3) {
		case 1:
			if id, ok := taskIDOf(cmd); ok && s.tasks[id] != nil {
				*w = s.tasks[id].WorkerId
			}
		case 2:
			*w = g.pick(genWorkers)
		}
	}
	if cmd.Version == 0 {
		// Any known version: they differ in the attempt history and the
		// reports' worker check.
		cmd.Version = CommandVersion + uint32(g.r.IntN(int(CurrentVersion)))
	}
	cmd.Now = g.now
	return cmd
}

// randomLog generates n commands against a scratch state and returns them
// encoded, as they would sit in the raft log at indexes 1..n.
func randomLog(t testing.TB, seed uint64, n int) [][]byte {
	t.Helper()
	g, s := newGen(seed), NewState()
	out := make([][]byte, 0, n)
	for i := range n {
		cmd := g.next(s)
		b := rawBytes(t, cmd)
		dec, err := Decode(b)
		if err != nil {
			t.Fatalf("decode own command: %v", err)
		}
		g.learn(s.Apply(uint64(i+1), dec))
		out = append(out, b)
	}
	return out
}

func decodeAll(t testing.TB, log [][]byte) []*fsmpb.Command {
	t.Helper()
	out := make([]*fsmpb.Command, len(log))
	for i, b := range log {
		c, err := Decode(b)
		if err != nil {
			t.Fatalf("decode entry %d: %v", i, err)
		}
		out[i] = c
	}
	return out
}
