package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestNewTypesNeedControlVersion: an ec_balance, remove_extra or
// delete_empty task, a worker naming one among its capabilities (even beside a repair
// capability) and a policy with an entry for either are written as version
// 5 (ControlVersion); stamped version 4 they are refused as a version-4
// build refuses an unknown type (the state unchanged), and a build that
// stops at version 4 halts on them instead of applying them. Repairs and a
// policy of older types keep their versions.
func TestNewTypesNeedControlVersion(t *testing.T) {
	ecBalance, removeExtra := fsmpb.TaskType_TASK_TYPE_EC_BALANCE, fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA
	worker := func(id string, caps ...fsmpb.TaskType) *fsmpb.Command {
		return registerCmd(&fsmpb.Worker{Id: id, MaxConcurrent: 1, Capabilities: append([]fsmpb.TaskType{vacuum}, caps...)})
	}
	disabling := func(tp fsmpb.TaskType) *fsmpb.Command {
		return &fsmpb.Command{Body: &fsmpb.Command_SetPolicy{SetPolicy: &fsmpb.SetPolicy{
			Policy: &fsmpb.Policy{Types: []*fsmpb.TaskTypePolicy{{Type: tp, Disabled: true}}}}}}
	}
	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want uint32
	}{
		{"ec_balance", submitCmd(ecBalance, 1), ControlVersion},
		{"remove_extra", submitCmd(removeExtra, 1), ControlVersion},
		{"ec_balance worker", worker("w1", fsmpb.TaskType_TASK_TYPE_REPLICATE, ecBalance), ControlVersion},
		{"remove_extra worker", worker("w1", fsmpb.TaskType_TASK_TYPE_REPLICATE, removeExtra), ControlVersion},
		{"repair worker", worker("w2", fsmpb.TaskType_TASK_TYPE_EC_REBUILD), RepairVersion},
		{"ec_rebuild", submitCmd(fsmpb.TaskType_TASK_TYPE_EC_REBUILD, 2), RepairVersion},
		{"policy disabling ec_balance", disabling(ecBalance), ControlVersion},
		{"policy disabling remove_extra", disabling(removeExtra), ControlVersion},
		{"delete_empty", submitCmd(fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY, 3), ControlVersion},
		{"delete_empty worker", worker("w3", fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY), ControlVersion},
		{"policy disabling vacuum", disabling(vacuum), PolicyVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RequiredVersion(tc.cmd); got != tc.want {
				t.Fatalf("RequiredVersion = %d; want %d", got, tc.want)
			}
			if tc.want != ControlVersion {
				return
			}
			checkGated(t, tc.name, tc.cmd, ControlVersion)
		})
	}
	for name, want := range map[string]fsmpb.TaskType{"ec-balance": ecBalance, "ec_balance": ecBalance, "remove-extra": removeExtra, "remove_extra": removeExtra, "delete_empty": fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY} {
		if got, err := ParseTaskType(name); err != nil || got != want {
			t.Errorf("ParseTaskType(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
}
