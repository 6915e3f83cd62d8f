package fsm

import (
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
