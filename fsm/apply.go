package fsm

import (
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// Apply applies one decoded command at a raft index and reports the outcome.
// Refusals are results, not panics: the state is left exactly as it was.
// The result's Task is the stored immutable value: callers must not modify it.
func (s *State) Apply(index uint64, cmd *fsmpb.Command) *fsmpb.ApplyResult {
	if index > s.appliedIndex {
		s.appliedIndex = index
	}
	res := &fsmpb.ApplyResult{Index: index}
	var (
		task     *fsmpb.Task
		existing bool
		err      *Error
	)
	if cmd.Version < CommandVersion || cmd.Version > s.MaxVersion() {
		err = errorf(fsmpb.ErrorCode_ERROR_CODE_UNKNOWN_VERSION, "command version %d is not supported (this build applies versions %d to %d)", cmd.Version, CommandVersion, s.MaxVersion())
	} else if need := RequiredVersion(cmd); need > cmd.Version {
		err = errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "command body needs version %d, not %d", need, cmd.Version)
	} else {
		// Deterministic: every node applies the same versions in order.
		s.written = max(s.written, cmd.Version)
		switch b := cmd.Body.(type) {
		case *fsmpb.Command_SubmitTask:
			task, existing, err = s.submitTask(cmd.Version, cmd.Now, b.SubmitTask)
		case *fsmpb.Command_AssignTask:
			task, err = s.assignTask(cmd.Version, index, cmd.Now, b.AssignTask)
		case *fsmpb.Command_StartTask:
			task, err = s.startTask(cmd.Version, cmd.Now, b.StartTask)
		case *fsmpb.Command_ReportProgress:
			task, err = s.reportProgress(cmd.Version, cmd.Now, b.ReportProgress)
		case *fsmpb.Command_CompleteTask:
			task, err = s.completeTask(cmd.Version, cmd.Now, b.CompleteTask)
		case *fsmpb.Command_FailTask:
			task, err = s.failTask(cmd.Version, cmd.Now, b.FailTask)
		case *fsmpb.Command_RequeueTask:
			task, err = s.requeueTask(cmd.Version, cmd.Now, b.RequeueTask)
		case *fsmpb.Command_CancelTask:
			task, err = s.cancelTask(cmd.Version, cmd.Now, b.CancelTask)
		case *fsmpb.Command_RequestCancel:
			task, err = s.requestCancel(cmd.Now, b.RequestCancel)
		case *fsmpb.Command_RetireCapacityChanges:
			s.retireCapacityChanges(cmd.Now, b.RetireCapacityChanges)
		case *fsmpb.Command_RegisterWorker:
			err = s.registerWorker(cmd.Now, b.RegisterWorker)
		case *fsmpb.Command_DeregisterWorker:
			err = s.deregisterWorker(b.DeregisterWorker)
		case *fsmpb.Command_SetAdminAddr:
			err = s.setAdminAddr(b.SetAdminAddr)
		case *fsmpb.Command_ForgetAdmin:
			err = s.forgetAdmin(b.ForgetAdmin)
		case *fsmpb.Command_TestCommand:
			if s.testCommandIndex == 0 {
				s.testCommandIndex = index
			}
		case *fsmpb.Command_SetPolicy:
			res.Policy, existing, err = s.setPolicy(cmd.Now, b.SetPolicy)
		case *fsmpb.Command_PruneTasks:
			err = s.pruneTasks(b.PruneTasks)
		default:
			err = errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "command has no known body")
		}
	}
	if err != nil {
		res.ErrorCode, res.Error = err.Code, err.Msg
	}
	res.Task, res.Existing = task, existing
	return res
}

func (s *State) submitTask(version uint32, now int64, c *fsmpb.SubmitTask) (*fsmpb.Task, bool, *Error) {
	if !ValidType(c.Type) {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "unknown task type %d", int32(c.Type))
	}
	if c.VolumeId == 0 {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "volume id must be greater than 0")
	}
	params := make([]*fsmpb.Param, len(c.Params))
	for i, p := range c.Params {
		params[i] = proto.Clone(p).(*fsmpb.Param)
	}
	sort.SliceStable(params, func(i, j int) bool { return params[i].Key < params[j].Key })
	for i := 1; i < len(params); i++ {
		if params[i].Key == params[i-1].Key {
			return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "parameter %q is given twice", params[i].Key)
		}
	}
	if version >= HistoryVersion && (len(c.EarlierServers) > MaxEarlierServers || len(c.EarlierMoves) > MaxEarlierMoves) {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "a submission carries at most %d earlier servers and %d earlier moves", MaxEarlierServers, MaxEarlierMoves)
	}
	if t, ok := s.ActiveTask(c.VolumeId); ok {
		if t.Type == c.Type {
			return t, true, nil
		}
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_VOLUME_BUSY, "volume %d already has an active %s task (%d)", c.VolumeId, TypeName(t.Type), t.Id)
	}
	origin := c.Origin
	if origin == "" {
		origin = "manual"
	}
	// Only detection waits for the master to report completed work; an
	// operator's task (manual, or a retry) may run at once.
	if !OperatorOrigin(origin) && s.HasUnreportedChange(c.VolumeId) {
		return nil, false, errorf(fsmpb.ErrorCode_ERROR_CODE_VOLUME_BUSY, "volume %d has a completed change the master has not reported yet", c.VolumeId)
	}
	t := &fsmpb.Task{
		Id:         s.nextTaskID,
		Type:       c.Type,
		VolumeId:   c.VolumeId,
		Collection: c.Collection,
		Source:     c.Source,
		Target:     c.Target,
		Params:     params,
		State:      pending,
		Priority:   c.Priority,
		Attempt:    1,
		CreatedAt:  now,
		UpdatedAt:  now,
		Origin:     origin,
	}
	if version >= HistoryVersion {
		// A retry of a task: what its attempts may have left.
		t.EarlierServers = sortedUnion(nil, c.EarlierServers)
		t.EarlierMoves = appendMoves(nil, c.EarlierMoves...)
	}
	s.nextTaskID++
	s.putTask(t)
	return t, false, nil
}

// mutable returns a private copy of task id for modification, checking that
// the move to state `to` is legal and, when fence is non-zero, that it matches.
func (s *State) mutable(id uint64, to fsmpb.TaskState, fence uint64, checkFence bool) (*fsmpb.Task, *Error) {
	t, ok := s.tasks[id]
	if !ok {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND, "task %d not found", id)
	}
	if checkFence && fence != t.Fence {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_STALE_FENCE, "task %d: fence %d is stale (current attempt has fence %d)", id, fence, t.Fence)
	}
	// A terminal task never changes again (a retried CompleteTask must not
	// re-record its capacity change); otherwise only a legal move, or staying
	// put (progress on a running task), is allowed.
	if Terminal(t.State) || (to != t.State && !Legal(t.State, to)) {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d cannot go from %s to %s", id, StateName(t.State), StateName(to))
	}
	return proto.Clone(t).(*fsmpb.Task), nil
}

func (s *State) assignTask(version uint32, index uint64, now int64, c *fsmpb.AssignTask) (*fsmpb.Task, *Error) {
	if c.WorkerId == "" {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "assignment names no worker")
	}
	if cur, ok := s.tasks[c.TaskId]; ok && cur.State != pending {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d cannot go from %s to %s", c.TaskId, StateName(cur.State), StateName(assigned))
	}
	t, err := s.mutable(c.TaskId, assigned, 0, false)
	if err != nil {
		return nil, err
	}
	t.State, t.WorkerId, t.Fence = assigned, c.WorkerId, index
	t.AssignedAt, t.UpdatedAt = now, now
	t.Progress, t.Step = 0, ""
	if version >= HistoryVersion {
		t.AttemptServers = sortedUnion(nil, c.Servers)
		t.AttemptMove = nil
		if m := c.GetMove(); m.GetSource() != "" || m.GetTarget() != "" {
			t.AttemptMove = &fsmpb.Move{Source: m.GetSource(), Target: m.GetTarget()}
		}
	}
	s.putTask(t)
	return t, nil
}

// appendMoves appends moves (empty ones skipped) to a copy of l, each
// (source, target) once at its newest place, keeping the newest
// MaxEarlierMoves: a repeated move must not push an older distinct one
// out of the history.
func appendMoves(l []*fsmpb.Move, moves ...*fsmpb.Move) []*fsmpb.Move {
	all := append(slices.Clone(l), moves...)
	out := make([]*fsmpb.Move, 0, len(all))
	seen := map[[2]string]bool{}
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		k := [2]string{m.GetSource(), m.GetTarget()}
		if (k[0] != "" || k[1] != "") && !seen[k] {
			seen[k] = true
			out = append(out, &fsmpb.Move{Source: k[0], Target: k[1]})
		}
	}
	slices.Reverse(out)
	if len(out) > MaxEarlierMoves {
		out = out[len(out)-MaxEarlierMoves:]
	}
	return out
}

// sortedUnion returns the sorted, deduplicated union of a and b without
// empty strings, so that the servers an attempt named are recorded the same
// way on every node whatever order the command listed them in.
func sortedUnion(a, b []string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var out []string
	for _, l := range [][]string{a, b} {
		for _, x := range l {
			if x != "" && !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	slices.Sort(out)
	return out
}

// notOwner refuses a command made of worker's report (worker_id, from
// OwnerVersion on; empty: the leader's own decision) about the attempt of
// task id with fence (checkFence false: whatever attempt is current, as in
// mutable) when that attempt is another worker's. An unknown task or a
// stale fence is left to mutable.
func (s *State) notOwner(version uint32, id, fence uint64, checkFence bool, worker string) *Error {
	if version < OwnerVersion || worker == "" {
		return nil
	}
	t, ok := s.tasks[id]
	if !ok || (checkFence && fence != t.Fence) || t.WorkerId == worker {
		return nil
	}
	return errorf(fsmpb.ErrorCode_ERROR_CODE_NOT_OWNER, "task %d: worker %q reported on attempt %d, which is assigned to %q", id, worker, t.Fence, t.WorkerId)
}

func (s *State) startTask(version uint32, now int64, c *fsmpb.StartTask) (*fsmpb.Task, *Error) {
	if err := s.notOwner(version, c.TaskId, c.Fence, true, c.WorkerId); err != nil {
		return nil, err
	}
	if cur, ok := s.tasks[c.TaskId]; ok && cur.State != assigned && cur.Fence == c.Fence {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d cannot go from %s to %s", c.TaskId, StateName(cur.State), StateName(running))
	}
	t, err := s.mutable(c.TaskId, running, c.Fence, true)
	if err != nil {
		return nil, err
	}
	t.State, t.StartedAt, t.UpdatedAt = running, now, now
	s.putTask(t)
	return t, nil
}

func (s *State) reportProgress(version uint32, now int64, c *fsmpb.ReportProgress) (*fsmpb.Task, *Error) {
	if c.Progress < 0 || c.Progress > 100 || c.Progress != c.Progress {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "progress %v is outside 0-100", c.Progress)
	}
	if err := s.notOwner(version, c.TaskId, c.Fence, true, c.WorkerId); err != nil {
		return nil, err
	}
	if cur, ok := s.tasks[c.TaskId]; ok && cur.State != running && cur.Fence == c.Fence {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d is %s, not running", c.TaskId, StateName(cur.State))
	}
	t, err := s.mutable(c.TaskId, running, c.Fence, true)
	if err != nil {
		return nil, err
	}
	t.Progress, t.Step, t.UpdatedAt = c.Progress, c.Step, now
	s.putTask(t)
	return t, nil
}

func (s *State) completeTask(version uint32, now int64, c *fsmpb.CompleteTask) (*fsmpb.Task, *Error) {
	if err := s.notOwner(version, c.TaskId, c.Fence, true, c.WorkerId); err != nil {
		return nil, err
	}
	t, err := s.mutable(c.TaskId, completed, c.Fence, true)
	if err != nil {
		return nil, err
	}
	t.State, t.Progress, t.FinishedAt, t.UpdatedAt = completed, 100, now, now
	t.LastError = ""
	s.putTask(t)
	if c.Change != nil {
		ch := proto.Clone(c.Change).(*fsmpb.CapacityChange)
		ch.TaskId, ch.Type, ch.VolumeId, ch.CompletedAt = t.Id, t.Type, t.VolumeId, now
		if ch.Collection == "" {
			ch.Collection = t.Collection
		}
		sort.SliceStable(ch.Shards, func(i, j int) bool { return ch.Shards[i].ShardId < ch.Shards[j].ShardId })
		s.addChange(ch)
	}
	return t, nil
}

func (s *State) failTask(version uint32, now int64, c *fsmpb.FailTask) (*fsmpb.Task, *Error) {
	if err := s.notOwner(version, c.TaskId, c.Fence, true, c.WorkerId); err != nil {
		return nil, err
	}
	t, err := s.mutable(c.TaskId, failed, c.Fence, true)
	if err != nil {
		return nil, err
	}
	t.State, t.LastError, t.FinishedAt, t.UpdatedAt = failed, c.Error, now, now
	s.putTask(t)
	return t, nil
}

func (s *State) requeueTask(version uint32, now int64, c *fsmpb.RequeueTask) (*fsmpb.Task, *Error) {
	if err := s.notOwner(version, c.TaskId, c.Fence, c.Fence != 0, c.WorkerId); err != nil {
		return nil, err
	}
	if cur, ok := s.tasks[c.TaskId]; ok && cur.State == pending {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d is already pending", c.TaskId)
	}
	t, err := s.mutable(c.TaskId, pending, c.Fence, c.Fence != 0)
	if err != nil {
		return nil, err
	}
	if t.CancelRequested {
		// The stopped attempt was the last one: an operator cancelled the task.
		t.State, t.LastError, t.FinishedAt, t.UpdatedAt = cancelled, cancelError(t, c.Reason), now, now
		s.putTask(t)
		return t, nil
	}
	t.State, t.WorkerId, t.Fence = pending, "", 0
	// The ended attempt may have left data on its servers: the next
	// attempt's spec names them so that its executor sweeps or recognises it.
	if version >= HistoryVersion {
		t.EarlierServers, t.AttemptServers = sortedUnion(t.EarlierServers, t.AttemptServers), nil
		t.EarlierMoves, t.AttemptMove = appendMoves(t.EarlierMoves, t.AttemptMove), nil
	}
	t.Attempt++
	if c.CountAsRetry {
		t.RetryCount++
	}
	t.LastError, t.NotBefore, t.UpdatedAt = c.Reason, c.NotBefore, now
	t.Progress, t.Step = 0, ""
	s.putTask(t)
	return t, nil
}

func (s *State) cancelTask(version uint32, now int64, c *fsmpb.CancelTask) (*fsmpb.Task, *Error) {
	if err := s.notOwner(version, c.TaskId, c.Fence, c.Fence != 0, c.WorkerId); err != nil {
		return nil, err
	}
	if cur, ok := s.tasks[c.TaskId]; ok && c.PendingAttempt != 0 && (cur.State != pending || cur.Attempt != c.PendingAttempt) {
		// RequiredVersion makes pending_attempt a version-6 command: every
		// member refuses it alike.
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d is %s in attempt %d, no longer pending in attempt %d: it is not cancelled", c.TaskId, StateName(cur.State), cur.Attempt, c.PendingAttempt)
	}
	t, err := s.mutable(c.TaskId, cancelled, c.Fence, c.Fence != 0)
	if err != nil {
		return nil, err
	}
	if t.State == cancelled {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d is already cancelled", c.TaskId)
	}
	reason := c.Reason
	if t.CancelRequested {
		// An operator's cancel: c.Reason, if any, says how the attempt ended.
		reason = cancelError(t, c.Reason)
	}
	t.State, t.LastError, t.FinishedAt, t.UpdatedAt = cancelled, reason, now, now
	s.putTask(t)
	return t, nil
}

// requestCancel is an operator's cancel: a pending task holds no worker and
// is cancelled at once; an assigned or running one is only marked, so its
// volume stays reserved until the leader has stopped the attempt.
func (s *State) requestCancel(now int64, c *fsmpb.RequestCancel) (*fsmpb.Task, *Error) {
	cur, ok := s.tasks[c.TaskId]
	if !ok {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND, "task %d not found", c.TaskId)
	}
	if Terminal(cur.State) {
		return nil, errorf(fsmpb.ErrorCode_ERROR_CODE_ILLEGAL_TRANSITION, "task %d is already %s, so there is nothing to cancel", c.TaskId, StateName(cur.State))
	}
	if cur.CancelRequested {
		return cur, nil
	}
	t, err := s.mutable(c.TaskId, cancelled, 0, false)
	if err != nil {
		return nil, err
	}
	reason := c.Reason
	if reason == "" {
		reason = "cancelled by operator"
	}
	t.CancelRequested, t.CancelReason, t.UpdatedAt = true, reason, now
	if t.State == pending {
		t.State, t.LastError, t.FinishedAt = cancelled, reason, now
	}
	s.putTask(t)
	return t, nil
}

// cancelError is the error a task cancelled on request ends with.
func cancelError(t *fsmpb.Task, detail string) string {
	if detail == "" {
		return t.CancelReason
	}
	return t.CancelReason + " (attempt stopped: " + detail + ")"
}

// MaxPrune bounds the task ids of one PruneTasks command.
const MaxPrune = 10000

func (s *State) pruneTasks(c *fsmpb.PruneTasks) *Error {
	if len(c.TaskIds) == 0 || len(c.TaskIds) > MaxPrune {
		return errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "a prune must name between 1 and %d tasks, not %d", MaxPrune, len(c.TaskIds))
	}
	for _, id := range c.TaskIds {
		if s.Prunable(id) {
			s.removeTask(id)
		}
	}
	return nil
}

// RetiredKeep is how long, in nanoseconds of the retiring commands' own
// timestamps, a retired change is remembered: 5 minutes, far longer than
// one poll of the master.
const RetiredKeep int64 = 5 * 60 * 1e9

func (s *State) retireCapacityChanges(now int64, c *fsmpb.RetireCapacityChanges) {
	for id, ch := range s.retired {
		if ch.RetiredAt < now-RetiredKeep {
			s.forget(id)
		}
	}
	for _, id := range c.TaskIds {
		ch, ok := s.changes[id]
		if !ok {
			continue
		}
		delete(s.changes, id)
		if s.changesByVolume[ch.VolumeId]--; s.changesByVolume[ch.VolumeId] <= 0 {
			delete(s.changesByVolume, ch.VolumeId)
		}
		// A new slice, not an edit in place: nothing shares the old one.
		var rest []*fsmpb.CapacityChange
		for _, c := range s.volumeChanges[ch.VolumeId] {
			if c.TaskId != id {
				rest = append(rest, c)
			}
		}
		if len(rest) == 0 {
			delete(s.volumeChanges, ch.VolumeId)
		} else {
			s.volumeChanges[ch.VolumeId] = rest
		}
		r := proto.Clone(ch).(*fsmpb.CapacityChange)
		r.RetiredAt = now
		s.remember(r)
	}
}

func (s *State) registerWorker(now int64, c *fsmpb.RegisterWorker) *Error {
	w := c.Worker
	if w == nil || w.Id == "" {
		return errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "worker registration has no id")
	}
	for _, capability := range w.Capabilities {
		if !ValidType(capability) {
			return errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "worker %s: unknown capability %d", w.Id, int32(capability))
		}
	}
	w = proto.Clone(w).(*fsmpb.Worker)
	sort.Slice(w.Capabilities, func(i, j int) bool { return w.Capabilities[i] < w.Capabilities[j] })
	w.RegisteredAt = now
	s.workers[w.Id] = w
	return nil
}

func (s *State) deregisterWorker(c *fsmpb.DeregisterWorker) *Error {
	if _, ok := s.workers[c.WorkerId]; !ok {
		return errorf(fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND, "worker %s is not registered", c.WorkerId)
	}
	delete(s.workers, c.WorkerId)
	return nil
}

func (s *State) setAdminAddr(c *fsmpb.SetAdminAddr) *Error {
	if c.Id == "" || c.GrpcAddr == "" {
		return errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "admin address needs an id and a gRPC address")
	}
	s.admins[c.Id] = c.GrpcAddr
	// 0, from builds before versions were advertised, means the base
	// version: the same value a snapshot of such a build restores to.
	s.versions[c.Id] = max(c.MaxCommandVersion, CommandVersion)
	return nil
}

// forgetAdmin drops an admin's address and advertised version; an admin
// that published nothing is already forgotten.
func (s *State) forgetAdmin(c *fsmpb.ForgetAdmin) *Error {
	if c.Id == "" {
		return errorf(fsmpb.ErrorCode_ERROR_CODE_INVALID, "forget admin needs an id")
	}
	delete(s.admins, c.Id)
	delete(s.versions, c.Id)
	return nil
}
