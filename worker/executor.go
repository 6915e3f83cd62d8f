package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// Reporter receives an executor's progress: the step it is in, percent done
// (0-100), and whether this is a step boundary worth committing.
type Reporter func(step string, progress float64, checkpoint bool)

// Executor performs one task type against SeaweedFS. Every step is a real
// volume-server RPC; a step that cannot be done returns an error.
type Executor interface {
	// Execute runs one attempt. On failure it rolls back what it changed
	// before returning a *Failure. When ctx is cancelled it stops, rolls back
	// and returns a *Failure wrapping ctx.Err().
	Execute(ctx context.Context, spec *pb.TaskSpec, report Reporter) (*fsmpb.CapacityChange, error)
	// Rollback undoes what an interrupted attempt may have left behind (after
	// a worker restart found it in the journal). It must be safe to call for
	// an attempt that changed nothing, or that already completed its
	// irreversible step, in which case it changes nothing.
	Rollback(ctx context.Context, spec *pb.TaskSpec) error
}

// Failure says which step of an attempt failed, whether another attempt
// could succeed, and whether the rollback left SeaweedFS as it was.
type Failure struct {
	Step       string
	Err        error
	Retryable  bool
	RolledBack bool
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("%s: %v", f.Step, f.Err)
	if !f.RolledBack {
		s += " (rollback incomplete)"
	}
	return s
}

func (f *Failure) Unwrap() error { return f.Err }

// ErrVolumeNotFound means the volume is not where the spec says; retrying
// the same spec cannot help.
var ErrVolumeNotFound = errors.New("volume not found")
