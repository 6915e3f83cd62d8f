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

// TestWorkerRegistersNewTypesOnlyOnceAgreed: a worker that can balance EC
// shards, remove extra copies and repair registers, while every admin applies only version 4,
// with its repairs but without ec_balance and remove_extra (version 5), while they apply
// only version 3 with neither, and with all of them once version 5 is
// agreed.
func TestWorkerRegistersNewTypesOnlyOnceAgreed(t *testing.T) {
	s, a := schedulerAtNow()
	s.running, s.started = true, now
	vacuum, replicate, ecBalance, removeExtra, deleteEmpty := fsmpb.TaskType_TASK_TYPE_VACUUM, fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_EC_BALANCE, fsmpb.TaskType_TASK_TYPE_REMOVE_EXTRA, fsmpb.TaskType_TASK_TYPE_DELETE_EMPTY
	hello := &pb.Hello{WorkerId: "w1", MaxConcurrent: 2, Capabilities: []fsmpb.TaskType{vacuum, replicate, ecBalance, removeExtra, deleteEmpty}}
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
	for _, tc := range []struct {
		agreed uint32
		want   []fsmpb.TaskType
	}{
		{fsm.OwnerVersion, []fsmpb.TaskType{vacuum}},
		{fsm.RepairVersion, []fsmpb.TaskType{vacuum, replicate}},
		{fsm.ControlVersion, []fsmpb.TaskType{vacuum, replicate, ecBalance, removeExtra, deleteEmpty}},
	} {
		a.agreed = tc.agreed
		if _, _, err := s.Attach(context.Background(), hello); err != nil {
			t.Fatalf("hello with version %d agreed: %v", tc.agreed, err)
		}
		if got := registered(); !slices.Equal(got, tc.want) {
			t.Fatalf("registered capabilities %v with version %d agreed; want %v", got, tc.agreed, tc.want)
		}
	}
}
