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
			b, err := EncodeAgreed(1, CurrentVersion, tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Version != RepairVersion {
				t.Fatalf("written as version %d; want %d", dec.Version, RepairVersion)
			}
			// This build applies it at version 4.
			if res := NewState().Apply(1, dec); res.ErrorCode != codeNone {
				t.Fatalf("version-4 %s refused: %s", tc.name, res.Error)
			}
			// Stamped version 3, it is refused and changes nothing.
			old := NewState()
			dec.Version = OwnerVersion
			before := contentKey(t, old)
			res := old.Apply(1, dec)
			if res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_INVALID {
				t.Fatalf("version-3 %s gave %v %q; want INVALID", tc.name, res.ErrorCode, res.Error)
			}
			if contentKey(t, old) != before {
				t.Fatalf("refused version-3 %s changed the state", tc.name)
			}
			// A build that applies up to version 3 halts before it.
			f := NewWithVersion(OwnerVersion)
			halted := false
			f.OnHalt(func(error) { halted = true })
			f.ApplyBatch([]Entry{{Index: 1, Command: true, Data: b}})
			if !halted {
				t.Fatalf("a version-3 build applied a version-4 %s", tc.name)
			}
		})
	}
}
