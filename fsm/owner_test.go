package fsm

import (
	"errors"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// ownerReports are the commands a worker's report leads to, each naming the
// reporting worker, built for attempt fence of task id.
var ownerReports = []struct {
	name string
	// from: the state the attempt must be in for the report to apply.
	from fsmpb.TaskState
	cmd  func(id, fence uint64, worker string) *fsmpb.Command
}{
	{"start", assigned, func(id, f uint64, w string) *fsmpb.Command { return StartCmd(id, f, w) }},
	{"progress", running, func(id, f uint64, w string) *fsmpb.Command { return ProgressCmd(id, f, w, 50, "copy") }},
	{"complete", running, func(id, f uint64, w string) *fsmpb.Command {
		return CompleteCmd(id, f, w, &fsmpb.CapacityChange{OldSize: 100, NewSize: 1})
	}},
	{"fail", running, func(id, f uint64, w string) *fsmpb.Command { return FailCmd(id, f, w, "gave up") }},
	{"requeue", running, func(id, f uint64, w string) *fsmpb.Command { return RequeueCmd(id, f, w, "released", 0, true) }},
	{"requeue current", running, func(id, _ uint64, w string) *fsmpb.Command { return RequeueCmd(id, 0, w, "released", 0, false) }},
	{"cancel", running, func(id, f uint64, w string) *fsmpb.Command { return CancelCmd(id, f, w, "stopped") }},
}

// TestReportFromAnotherWorkerIsRefused: a report whose worker is not the one
// its attempt is assigned to (w1) is refused with NOT_OWNER, the fence
// being right, and changes nothing (no capacity change recorded); the same
// report from w1, or from nobody (the leader's own decision), applies.
func TestReportFromAnotherWorkerIsRefused(t *testing.T) {
	for _, r := range ownerReports {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t)
			tk := h.taskIn(r.from, 1)
			if tk.WorkerId != "w1" {
				t.Fatalf("set-up: task assigned to %q", tk.WorkerId)
			}
			res := h.refuse(codeOwner, r.cmd(tk.Id, tk.Fence, "intruder"))
			if err := ResultError(res); !errors.Is(err, ErrNotOwner) {
				t.Errorf("refusal %v is not ErrNotOwner", err)
			}
			if len(h.s.CapacityChanges()) != 0 {
				t.Errorf("a refused report recorded a capacity change")
			}
			for _, w := range []string{"w1", ""} {
				h2 := newHarness(t)
				tk2 := h2.taskIn(r.from, 1)
				h2.ok(r.cmd(tk2.Id, tk2.Fence, w))
			}
		})
	}
}

// TestStaleReportFromAnotherWorkerSaysStale: a report with another fence is
// stale whoever sends it (the fence check comes first, so a presumed-dead
// worker still hears STALE_FENCE and stops).
func TestStaleReportFromAnotherWorkerSaysStale(t *testing.T) {
	h, id, old, _ := staleSetup(t, true)
	for _, r := range ownerReports {
		if r.name == "requeue current" {
			continue
		}
		h.refuse(codeStale, r.cmd(id, old, "w1"))
		h.refuse(codeStale, r.cmd(id, old, "intruder"))
	}
}

// TestOwnerCheckNeedsVersion3: below OwnerVersion the worker field is
// neither written (EncodeAgreed clears it, the command keeps its lower
// version) nor checked (a hand-made lower-version command carrying it
// applies, as on a build that predates the field); from OwnerVersion the
// leader writes it and the command is stamped version 3.
func TestOwnerCheckNeedsVersion3(t *testing.T) {
	for _, agreed := range []uint32{CommandVersion, HistoryVersion, OwnerVersion, TestCommandVersion} {
		for _, r := range ownerReports {
			b, err := EncodeAgreed(5, agreed, r.cmd(1, 2, "w1"))
			if err != nil {
				t.Fatal(err)
			}
			dec, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			w := *ownerField(dec)
			if agreed < OwnerVersion {
				if w != "" || dec.Version >= OwnerVersion {
					t.Errorf("agreed %d, %s: written as version %d with worker %q", agreed, r.name, dec.Version, w)
				}
				continue
			}
			if w != "w1" || dec.Version != OwnerVersion {
				t.Errorf("agreed %d, %s: written as version %d with worker %q; want version %d with w1", agreed, r.name, dec.Version, w, OwnerVersion)
			}
		}
		// Without a worker, nothing needs version 3.
		b, _ := EncodeAgreed(5, agreed, StartCmd(1, 2, ""))
		if dec, _ := Decode(b); dec.Version != CommandVersion {
			t.Errorf("agreed %d: a start without a worker written as version %d", agreed, dec.Version)
		}
	}

	for _, version := range []uint32{CommandVersion, HistoryVersion} {
		for _, r := range ownerReports {
			h := newHarness(t)
			tk := h.taskIn(r.from, 1)
			h.idx++
			cmd := r.cmd(tk.Id, tk.Fence, "intruder")
			cmd.Version, cmd.Now = version, h.now
			if res := h.s.Apply(h.idx, cmd); res.ErrorCode != codeNone {
				t.Errorf("version %d %s from another worker: %v %s; want it applied unchecked, as an older build does", version, r.name, res.ErrorCode, res.Error)
			}
		}
	}
}
