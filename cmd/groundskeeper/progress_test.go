package main

import (
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestProgressTextSaysWhyPending: a pending task's progress line carries
// its last error, so a task whose plan waits says what for.
func TestProgressTextSaysWhyPending(t *testing.T) {
	task := &fsmpb.Task{Id: 4, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, VolumeId: 7, State: fsmpb.TaskState_TASK_STATE_PENDING, Attempt: 3,
		LastError: "volume 7: earlier server 10.0.0.9:8080 is missing from the master's topology"}
	if got := progressText(task); !strings.Contains(got, "pending") || !strings.Contains(got, task.LastError) {
		t.Errorf("progressText = %q; want the state and the last error", got)
	}
	task.State = fsmpb.TaskState_TASK_STATE_COMPLETED
	if got := progressText(task); strings.Contains(got, task.LastError) {
		t.Errorf("progressText of a completed task = %q; want no stale error", got)
	}
}
