package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestRemoveExtraNeedsControlVersion: a remove_extra (or delete_empty) task and a worker naming
// it among its capabilities are written as version 5 (ControlVersion), even
// beside a repair capability; stamped version 4 they are refused as a
// version-4 build refuses an unknown type (the state unchanged), and a
// build that stops at version 4 halts on them instead of applying them.
func TestRemoveExtraNeedsControlVersion(t *testing.T) {
	removeExtra := fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA
	extraWorker := &fsmpb.Worker{Id: "w1", MaxConcurrent: 1, Capabilities: []fsmpb.TaskType{vacuum, fsmpb.TaskType_TASK_TYPE_REPLICATE, removeExtra}}
	repairWorker := &fsmpb.Worker{Id: "w2", MaxConcurrent: 1, Capabilities: []fsmpb.TaskType{vacuum, fsmpb.TaskType_TASK_TYPE_EC_REBUILD}}
	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want uint32
	}{
		{"remove_extra", submitCmd(removeExtra, 1), ControlVersion},
		{"remove_extra worker", registerCmd(extraWorker), ControlVersion},
		{"repair worker", registerCmd(repairWorker), RepairVersion},
		{"ec_rebuild", submitCmd(fsmpb.TaskType_TASK_TYPE_EC_REBUILD, 2), RepairVersion},
		{"delete_empty", submitCmd(fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, 3), ControlVersion},
		{"delete_empty worker", registerCmd(&fsmpb.Worker{Id: "w3", MaxConcurrent: 1, Capabilities: []fsmpb.TaskType{vacuum, fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY}}), ControlVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RequiredVersion(tc.cmd); got != tc.want {
				t.Fatalf("RequiredVersion = %d; want %d", got, tc.want)
			}
			if tc.want != ControlVersion {
				return
			}
			b, err := EncodeAgreed(1, CurrentVersion, tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Version != ControlVersion {
				t.Fatalf("written as version %d; want %d", dec.Version, ControlVersion)
			}
			if res := NewState().Apply(1, dec); res.ErrorCode != codeNone {
				t.Fatalf("version-5 %s refused: %s", tc.name, res.Error)
			}
			old := NewState()
			dec.Version = RepairVersion
			before := contentKey(t, old)
			res := old.Apply(1, dec)
			if res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_INVALID {
				t.Fatalf("version-4 %s gave %v %q; want INVALID", tc.name, res.ErrorCode, res.Error)
			}
			if contentKey(t, old) != before {
				t.Fatalf("refused version-4 %s changed the state", tc.name)
			}
			f := NewWithVersion(RepairVersion)
			halted := false
			f.OnHalt(func(error) { halted = true })
			f.ApplyBatch([]Entry{{Index: 1, Command: true, Data: b}})
			if !halted {
				t.Fatalf("a version-4 build applied a version-5 %s", tc.name)
			}
		})
	}
	if got, err := ParseTaskType("remove-extra"); err != nil || got != removeExtra {
		t.Fatalf("ParseTaskType(remove-extra) = %v, %v", got, err)
	}
	if got, err := ParseTaskType("delete_empty"); err != nil || got != fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY {
		t.Fatalf("ParseTaskType(delete_empty) = %v, %v", got, err)
	}
}
