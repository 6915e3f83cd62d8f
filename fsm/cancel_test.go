package fsm

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestRequestCancelPendingIsImmediate: a pending task holds no worker, so an
// operator's cancel ends it at once and frees its volume.
func TestRequestCancelPendingIsImmediate(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(pending, 1)
	got := h.ok(requestCancelCmd(tk.Id, ""))
	if got.State != cancelled || !got.CancelRequested || got.LastError != "cancelled by operator" || got.FinishedAt == 0 {
		t.Fatalf("cancel of a pending task gave %v", got)
	}
	if _, busy := h.s.ActiveTask(1); busy {
		t.Fatalf("volume 1 still reserved after its pending task was cancelled")
	}
}

// TestRequestCancelActiveKeepsReservation: an assigned or running task is
// only marked; its volume stays reserved until the stopped attempt is
// committed, which then ends it cancelled, whichever way it stopped.
func TestRequestCancelActiveKeepsReservation(t *testing.T) {
	for _, st := range []fsmpb.TaskState{assigned, running} {
		for _, end := range []string{"released", "requeued by lease expiry", "stale cancel"} {
			h := newHarness(t)
			tk := h.taskIn(st, 1)
			got := h.ok(requestCancelCmd(tk.Id, "not tonight"))
			if got.State != st || !got.CancelRequested || got.CancelReason != "not tonight" || got.Fence != tk.Fence {
				t.Fatalf("%s: cancel request gave %v", StateName(st), got)
			}
			if a, busy := h.s.ActiveTask(1); !busy || a.Id != tk.Id {
				t.Fatalf("%s: volume 1 released while the attempt may still run", StateName(st))
			}
			// Asking again changes nothing and is not an error.
			if again := h.ok(requestCancelCmd(tk.Id, "other")); again.CancelReason != "not tonight" {
				t.Fatalf("second request replaced the reason: %v", again)
			}
			// A detector cannot submit on the volume meanwhile.
			if res := h.apply(submitCmd(ecType, 1)); res.ErrorCode != codeBusy {
				t.Fatalf("submit on a volume being cancelled: %v", res)
			}
			var final *fsmpb.Task
			switch end {
			case "released":
				final = h.ok(&fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: tk.Id, Fence: tk.Fence}}})
			case "requeued by lease expiry":
				final = h.ok(requeueCmd(tk.Id, 0, "worker w1 stopped responding", false))
			case "stale cancel":
				h.refuse(codeStale, &fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: tk.Id, Fence: tk.Fence + 99}}})
				final = h.ok(&fsmpb.Command{Body: &fsmpb.Command_CancelTask{CancelTask: &fsmpb.CancelTask{TaskId: tk.Id, Fence: tk.Fence}}})
			}
			if final.State != cancelled || final.Attempt != tk.Attempt {
				t.Fatalf("%s/%s: ended %v, want cancelled in the same attempt", StateName(st), end, final)
			}
			if final.LastError == "" || final.LastError[:11] != "not tonight" {
				t.Fatalf("%s/%s: error %q does not carry the operator's reason", StateName(st), end, final.LastError)
			}
			if _, busy := h.s.ActiveTask(1); busy {
				t.Fatalf("%s/%s: volume still reserved after the cancel", StateName(st), end)
			}
		}
	}
}

// TestRequestCancelTerminalRefused: nothing to cancel in an ended task.
func TestRequestCancelTerminalRefused(t *testing.T) {
	for _, st := range []fsmpb.TaskState{completed, failed, cancelled} {
		h := newHarness(t)
		tk := h.taskIn(st, 1)
		h.refuse(codeIllegal, requestCancelCmd(tk.Id, ""))
	}
	h := newHarness(t)
	h.refuse(codeNotFnd, requestCancelCmd(42, ""))
}

// TestRetryOriginIsOperator: a retry is an operator's submission, so a
// volume's unreported completed work does not hold it back.
func TestRetryOriginIsOperator(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(running, 1)
	h.ok(completeCmd(tk.Id, tk.Fence, &fsmpb.CapacityChange{OldSize: 10, NewSize: 5}))
	h.refuse(codeBusy, submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Origin: "detector"}))
	got := h.ok(submitWith(&fsmpb.SubmitTask{Type: vacuum, VolumeId: 1, Origin: RetryOrigin(7)}))
	if got.Origin != "retry of task 7" {
		t.Fatalf("origin %q", got.Origin)
	}
}

// TestCancelPendingOnly: the leader's own cancel (CancelPendingCmd) ends a
// task still pending in the attempt the leader read, but one assigned
// since (or running, or ended, or requeued into another attempt) is
// refused and left exactly as it was, its volume still reserved: the race
// of a detection pass with the assignment pass.
// The command is written as version 6; stamped version 5 every member
// refuses it alike, and a build that stops at version 5 halts on it rather
// than cancel the attempt.
func TestCancelPendingOnly(t *testing.T) {
	h := newHarness(t)
	tk := h.taskIn(pending, 1)
	got := h.ok(CancelPendingCmd(tk.Id, tk.Attempt, "no longer needed"))
	if got.State != cancelled || got.LastError != "no longer needed" || got.FinishedAt == 0 {
		t.Fatalf("pending-only cancel of a pending task gave %v", got)
	}
	for _, st := range []fsmpb.TaskState{assigned, running, completed, failed, cancelled} {
		h := newHarness(t)
		tk := h.taskIn(st, 1)
		res := h.refuse(codeIllegal, CancelPendingCmd(tk.Id, tk.Attempt, "no longer needed"))
		if Active(st) && !strings.Contains(res.Error, "no longer pending") {
			t.Errorf("%s: refusal %q does not say the task is no longer pending", StateName(st), res.Error)
		}
		if a, busy := h.s.ActiveTask(1); Active(st) && (!busy || a.Id != tk.Id) {
			t.Fatalf("%s: volume 1 released by a refused pending-only cancel", StateName(st))
		}
	}
	h.refuse(codeNotFnd, CancelPendingCmd(42, 1, ""))
	// Requeued into attempt 2 since the leader read attempt 1.
	rh := newHarness(t)
	rt := rh.taskIn(assigned, 1)
	rh.ok(requeueCmd(rt.Id, 0, "worker stopped responding", false))
	if again := rh.task(rt.Id); again.State != pending || again.Attempt != rt.Attempt+1 {
		t.Fatalf("set-up: requeued task %v", again)
	}
	rh.refuse(codeIllegal, CancelPendingCmd(rt.Id, rt.Attempt, "read before the requeue"))
	rh.ok(CancelPendingCmd(rt.Id, rt.Attempt+1, "read after it"))

	cmd := CancelPendingCmd(1, 1, "no longer needed")
	if v := RequiredVersion(cmd); v != PendingCancelVersion {
		t.Fatalf("RequiredVersion = %d; want %d", v, PendingCancelVersion)
	}
	if v := RequiredVersion(cancelCmd(1, "")); v != CommandVersion {
		t.Fatalf("a plain cancel needs version %d; want %d", v, CommandVersion)
	}
	b, err := EncodeAgreed(1, CurrentVersion, cmd)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Version != PendingCancelVersion || dec.GetCancelTask().GetPendingAttempt() != 1 {
		t.Fatalf("written as version %d, pending_attempt %d", dec.Version, dec.GetCancelTask().GetPendingAttempt())
	}
	// Stamped one version lower: refused as invalid, nothing changed.
	old := newHarness(t)
	atk := old.taskIn(assigned, 1)
	dec = CancelPendingCmd(atk.Id, atk.Attempt, "x")
	dec.Version = PendingCancelVersion - 1
	before := contentKey(t, old.s)
	if res := old.s.Apply(100, dec); res.ErrorCode != codeInvalid {
		t.Fatalf("version-%d pending-only cancel gave %v %q; want INVALID", PendingCancelVersion-1, res.ErrorCode, res.Error)
	}
	if after := contentKey(t, old.s); after != before {
		t.Fatalf("refused version-%d pending-only cancel changed the state", PendingCancelVersion-1)
	}
	f := NewWithVersion(PendingCancelVersion - 1)
	halted := false
	f.OnHalt(func(error) { halted = true })
	f.ApplyBatch([]Entry{{Index: 1, Command: true, Data: b}})
	if !halted {
		t.Fatalf("a version-%d build applied a pending-only cancel", PendingCancelVersion-1)
	}
}
