package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestFenceIsAssignIndex: the fence of an attempt is the raft index of the
// AssignTask command, whatever else was applied before it.
func TestFenceIsAssignIndex(t *testing.T) {
	h := newHarness(t)
	a := h.ok(submitCmd(vacuum, 1))
	b := h.ok(submitCmd(vacuum, 2))
	h.ok(adminCmd("a1", "x:1"))
	fa := h.ok(assignCmd(a.Id, "w1")).Fence
	if fa != 4 {
		t.Fatalf("fence %d, want index 4", fa)
	}
	h.refuse(codeNotFnd, assignCmd(99, "w1"))
	fb := h.ok(assignCmd(b.Id, "w1")).Fence
	if fb != 6 {
		t.Fatalf("fence %d, want index 6", fb)
	}
	// Indexes need not be contiguous (configuration entries take some).
	h.idx += 10
	h.ok(requeueCmd(a.Id, fa, "", false))
	if f := h.ok(assignCmd(a.Id, "w2")).Fence; f != h.idx || f != 18 {
		t.Fatalf("fence %d, want index %d", f, h.idx)
	}
}

// staleSetup gives a task whose first attempt (fence old) was requeued and
// reassigned (fence cur), and optionally started by the new worker.
func staleSetup(t *testing.T, started bool) (h *harness, id, old, cur uint64) {
	h = newHarness(t)
	tk := h.taskIn(running, 1)
	old = tk.Fence
	h.ok(progressCmd(tk.Id, old, 30, "copy"))
	h.ok(requeueCmd(tk.Id, 0, "lease expired", false))
	cur = h.ok(assignCmd(tk.Id, "w2")).Fence
	if started {
		h.ok(startCmd(tk.Id, cur))
	}
	return h, tk.Id, old, cur
}

// TestStaleFence: a presumed-dead worker's reports carry the old fence and are
// refused with STALE_FENCE without touching its replacement's attempt.
func TestStaleFence(t *testing.T) {
	reports := []struct {
		name string
		cmd  func(id, fence uint64) *fsmpb.Command
	}{
		{"start", func(id, f uint64) *fsmpb.Command { return startCmd(id, f) }},
		{"progress", func(id, f uint64) *fsmpb.Command { return progressCmd(id, f, 99, "done soon") }},
		{"complete", func(id, f uint64) *fsmpb.Command { return completeCmd(id, f, &fsmpb.CapacityChange{NewSize: 1}) }},
		{"fail", func(id, f uint64) *fsmpb.Command { return failCmd(id, f, "old worker gave up") }},
		{"requeue", func(id, f uint64) *fsmpb.Command { return requeueCmd(id, f, "old", true) }},
	}
	for _, started := range []bool{false, true} {
		for _, r := range reports {
			name := r.name + "/reassigned"
			if started {
				name = r.name + "/restarted"
			}
			t.Run(name, func(t *testing.T) {
				h, id, old, cur := staleSetup(t, started)
				before := h.task(id)
				h.refuse(codeStale, r.cmd(id, old))
				h.refuse(codeStale, r.cmd(id, cur+1000)) // a fence never handed out
				if h.task(id) != before {
					t.Fatalf("task replaced")
				}
				if _, ok := h.s.ActiveTask(1); !ok || len(h.s.CapacityChanges()) != 0 {
					t.Fatalf("stale report had an effect")
				}
			})
		}
	}

	// While the task waits for reassignment (pending, fence 0) the old
	// worker's reports are stale too.
	t.Run("pending after requeue", func(t *testing.T) {
		h := newHarness(t)
		tk := h.taskIn(running, 1)
		h.ok(requeueCmd(tk.Id, tk.Fence, "", false))
		for _, r := range reports {
			want := codeStale
			if r.name == "requeue" {
				want = codeIllegal // a pending task cannot be requeued, whatever the fence
			}
			h.refuse(want, r.cmd(tk.Id, tk.Fence))
		}
	})

	// The current fence still works after all that.
	t.Run("current fence", func(t *testing.T) {
		h, id, old, cur := staleSetup(t, false)
		h.refuse(codeStale, startCmd(id, old))
		h.ok(startCmd(id, cur))
		h.refuse(codeStale, progressCmd(id, old, 50, ""))
		h.ok(progressCmd(id, cur, 50, ""))
		h.refuse(codeStale, completeCmd(id, old, nil))
		if tk := h.ok(completeCmd(id, cur, nil)); tk.State != completed || tk.Attempt != 2 || tk.WorkerId != "w2" {
			t.Fatalf("completed %v", tk)
		}
	})
}

// TestRequeueFenceZero: fence 0 requeues whatever attempt is current (the
// leader's lease expiry), from assigned or running, at any fence.
func TestRequeueFenceZero(t *testing.T) {
	for _, started := range []bool{false, true} {
		h, id, _, _ := staleSetup(t, started)
		tk := h.ok(requeueCmd(id, 0, "lease expired", false))
		if tk.State != pending || tk.Attempt != 3 || tk.Fence != 0 {
			t.Fatalf("requeued %v", tk)
		}
	}
	// Fence 0 on a worker report is not a wildcard.
	h, id, _, _ := staleSetup(t, true)
	h.refuse(codeStale, progressCmd(id, 0, 1, ""))
	h.refuse(codeStale, completeCmd(id, 0, nil))
	h.refuse(codeStale, failCmd(id, 0, ""))
	h.refuse(codeStale, startCmd(id, 0))
}
