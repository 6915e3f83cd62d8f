package worker

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
)

// TestEveryTaskTypeHasAnExecutor: a worker can run every task type this
// build knows (the worker command's default capabilities are fsm.TaskTypes),
// and has no executor for a type the state machine would refuse.
func TestEveryTaskTypeHasAnExecutor(t *testing.T) {
	ex := Executors(nil)
	for _, typ := range fsm.TaskTypes {
		if ex[typ] == nil {
			t.Errorf("no executor for %s", fsm.TypeName(typ))
		}
	}
	if len(ex) != len(fsm.TaskTypes) {
		t.Errorf("%d executors for %d task types", len(ex), len(fsm.TaskTypes))
	}
}
