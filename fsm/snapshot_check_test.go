package fsm

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestCheckCountersRefusesImpossibleRecords: a snapshot that decodes
// cleanly but holds records no command makes is refused where a restore
// enters, in a sentence naming the record; the untouched one passes.
func TestCheckCountersRefusesImpossibleRecords(t *testing.T) {
	s, _ := fuzzState(t)
	if err := CheckCounters(s.Snapshot(), s.appliedIndex); err != nil {
		t.Fatalf("a state made by commands is refused: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*fsmpb.StateSnapshot)
	}{
		{"running without a fence", "task 3", func(sn *fsmpb.StateSnapshot) { sn.Tasks[2].Fence = 0 }},
		{"pending with a worker", "task 1", func(sn *fsmpb.StateSnapshot) { sn.Tasks[0].WorkerId = "w9" }},
		{"attempt 0", "attempt 0", func(sn *fsmpb.StateSnapshot) { sn.Tasks[0].Attempt = 0 }},
		{"volume 0", "volume 0", func(sn *fsmpb.StateSnapshot) { sn.Tasks[0].VolumeId = 0 }},
		{"progress 300", "progress", func(sn *fsmpb.StateSnapshot) { sn.Tasks[2].Progress = 300 }},
		{"a change of no task", "no such task", func(sn *fsmpb.StateSnapshot) { sn.Tasks = sn.Tasks[:3] }},
		{"an unknown capability", "capabilities", func(sn *fsmpb.StateSnapshot) { sn.Workers[0].Capabilities = []fsmpb.TaskType{99} }},
		{"an admin without address", "admin", func(sn *fsmpb.StateSnapshot) { sn.Admins[0].GrpcAddr = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A deep copy: the snapshot shares the state's (immutable) records.
			sn := proto.Clone(s.Snapshot()).(*fsmpb.StateSnapshot)
			tc.edit(sn)
			err := CheckCounters(sn, s.appliedIndex)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want one naming %q", err, tc.want)
			}
		})
	}
}
