package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestRepairTypesNeedRepairVersion: a repair task (replicate, ec_rebuild)
// and a worker naming a repair capability are written as version 4; the
// same body stamped with an older version is refused by this build as an
// older build refuses it (an unknown type), so states never differ in a
// mixed cluster; a build that stops at version 3 halts on them instead of
// applying them.
func TestRepairTypesNeedRepairVersion(t *testing.T) {
	replicate := fsmpb.TaskType_TASK_TYPE_REPLICATE
	rebuild := fsmpb.TaskType_TASK_TYPE_EC_REBUILD
	repairWorker := &fsmpb.Worker{Id: "w1", MaxConcurrent: 1, Capabilities: []fsmpb.TaskType{vacuum, replicate}}
	plainWorker := &fsmpb.Worker{Id: "w2", MaxConcurrent: 1, Capabilities: []fsmpb.TaskType{vacuum}}
	for _, tc := range []struct {
		name string
		cmd  *fsmpb.Command
		want uint32
	}{
		{"replicate", submitCmd(replicate, 1), RepairVersion},
		{"ec_rebuild", submitCmd(rebuild, 2), RepairVersion},
		{"vacuum", submitCmd(vacuum, 3), CommandVersion},
		{"repair worker", registerCmd(repairWorker), RepairVersion},
		{"plain worker", registerCmd(plainWorker), CommandVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RequiredVersion(tc.cmd); got != tc.want {
				t.Fatalf("RequiredVersion = %d; want %d", got, tc.want)
			}
			if tc.want == CommandVersion {
				return
			}
			checkGated(t, tc.name, tc.cmd, RepairVersion)
		})
	}
}
