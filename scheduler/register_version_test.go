package scheduler

import (
	"context"
	"slices"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestWorkerRegistersRepairsOnlyOnceAgreed: while some admin applies only
// command version 3, a worker that can repair is registered (and can take
// routine work) without its repair capabilities, which that admin would
// refuse; its next hello after every admin applies version 4 registers
// them.
func TestWorkerRegistersRepairsOnlyOnceAgreed(t *testing.T) {
	s, a := schedulerAtNow()
	a.agreed = fsm.OwnerVersion
	s.running, s.started = true, now
	vacuum, replicate := fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_REPLICATE
	hello := &pb.Hello{WorkerId: "w1", MaxConcurrent: 2, Capabilities: []fsmpb.TaskType{vacuum, replicate}}
	registered := func() []fsmpb.TaskType {
		var caps []fsmpb.TaskType
		s.state.Read(func(st *fsm.State) {
			for _, w := range st.Workers() {
				if w.Id == "w1" {
					caps = w.Capabilities
				}
			}
		})
		return caps
	}
	if _, _, err := s.Attach(context.Background(), hello); err != nil {
		t.Fatalf("hello before version 4 is agreed: %v", err)
	}
	if got := registered(); !slices.Equal(got, []fsmpb.TaskType{vacuum}) {
		t.Fatalf("registered capabilities %v before version 4 is agreed; want only vacuum", got)
	}
	a.agreed = fsm.RepairVersion
	if _, _, err := s.Attach(context.Background(), hello); err != nil {
		t.Fatalf("hello after version 4 is agreed: %v", err)
	}
	if got := registered(); !slices.Equal(got, []fsmpb.TaskType{vacuum, replicate}) {
		t.Fatalf("registered capabilities %v after version 4 is agreed; want vacuum and replicate", got)
	}
}
