package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type snapshotJSON struct {
	File          string `json:"file"`
	Index         uint64 `json:"snapshot_index"`
	Size          int64  `json:"size"`
	Sha256        string `json:"sha256"`
	RestoredIndex uint64 `json:"restored_index"`
	StateHash     string `json:"state_hash"`
}

// TestOperatorCommands runs the real binary: cancel and retry of pending
// tasks and their one-sentence refusals, then a snapshot saved through one
// node and restored through another, which every node then serves; damaged
// snapshot files are refused in one sentence and change nothing.
func TestOperatorCommands(t *testing.T) {
	c := startCluster(t, 3)
	a1, a2, a3 := c.nodes[0].GRPCAddr, c.nodes[1].GRPCAddr, c.nodes[2].GRPCAddr
	// No master, no workers: tasks stay pending.
	for _, vol := range []string{"7", "8"} {
		ctlJSON[submitJSON](t, "submit", a1, "task", "submit", "--type", "vacuum", "--volume", vol)
	}

	cancelled := ctlJSON[taskJSON](t, "", a2, "task", "cancel", "2", "--reason", "not this one")
	if cancelled.ID != 2 || cancelled.State != "cancelled" || cancelled.Error != "not this one" {
		t.Fatalf("cancel of pending task 2 printed %+v", cancelled)
	}
	res := ctl(t, a3, "task", "cancel", "2")
	requireOneSentenceError(t, "cancel of a cancelled task", res)
	if res.Code != 1 || !strings.Contains(res.Stderr, "task 2 is already cancelled") {
		t.Errorf("cancel of a cancelled task: want exit 1 saying it is already cancelled\n%s", res)
	}
	res = ctl(t, a3, "task", "retry", "1")
	requireOneSentenceError(t, "retry of a pending task", res)
	if !strings.Contains(res.Stderr, "task 1 is still pending") {
		t.Errorf("retry of a pending task: want it to say the task is still pending\n%s", res)
	}
	res = ctl(t, a1, "task", "retry", "99")
	requireOneSentenceError(t, "retry of an unknown task", res)
	res = ctl(t, a1, "task", "cancel", "one")
	requireOneSentenceError(t, "cancel with a bad id", res)
	if res.Code != 2 {
		t.Errorf("cancel with a bad id: exit %d, want 2 (usage)", res.Code)
	}
	retried := ctlJSON[submitJSON](t, "submit", a3, "task", "retry", "2")
	if retried.ID != 3 || retried.VolumeID != 8 || retried.State != "pending" || *retried.Existing {
		t.Fatalf("retry of task 2 printed %+v", retried)
	}

	// Save through a follower or the leader alike.
	dir := t.TempDir()
	file := filepath.Join(dir, "state.snap")
	saved := ctlJSON[snapshotJSON](t, "", a2, "snapshot", "save", file)
	if saved.Index == 0 || saved.Size == 0 || len(saved.Sha256) != 64 {
		t.Fatalf("snapshot save printed %+v", saved)
	}
	// tasksAt is addr's own view with --stale, the leader's otherwise.
	tasksAt := func(addr string, stale ...string) string {
		tasks := ctlJSON[[]taskJSON](t, "tasks", addr, append([]string{"tasks"}, stale...)...)
		var b strings.Builder
		for _, tk := range tasks {
			b.WriteString(strconv.FormatUint(tk.ID, 10) + ":" + tk.State + " ")
		}
		return b.String()
	}
	want := tasksAt(a1)

	// Change the state, then restore through another node.
	ctlJSON[submitJSON](t, "submit", a1, "task", "submit", "--type", "vacuum", "--volume", "9")
	ctlJSON[taskJSON](t, "", a1, "task", "cancel", "1")

	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), raw...)
	corrupt[len(corrupt)-4] ^= 0x10
	for name, b := range map[string][]byte{"corrupt": corrupt, "truncated": raw[:len(raw)/2], "foreign": []byte("#!/bin/sh\necho hello\n")} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		res := ctl(t, a3, "snapshot", "restore", f)
		requireOneSentenceError(t, "restore of a "+name+" file", res)
		if !strings.Contains(res.Stderr, f) {
			t.Errorf("restore of a %s file: the error does not name the file\n%s", name, res)
		}
	}
	changed := tasksAt(a1)
	if !strings.Contains(want, "3:pending") {
		t.Fatalf("the saved state lacks the retried task 3: %s", want)
	}
	if changed == want {
		t.Fatalf("the state did not change after the save")
	}

	restored := ctlJSON[snapshotJSON](t, "", a3, "snapshot", "restore", file)
	if restored.RestoredIndex <= saved.Index || restored.StateHash == "" {
		t.Fatalf("snapshot restore printed %+v (saved at index %d)", restored, saved.Index)
	}
	for _, addr := range []string{a1, a2, a3} {
		eventually(t, "node "+addr+" to serve the restored tasks", func() (bool, string) {
			got := tasksAt(addr, "--stale")
			return got == want, "tasks " + got + ", want " + want
		})
	}
	c.waitStable(t, c.nodes...)
}
