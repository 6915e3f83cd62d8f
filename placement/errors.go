package placement

import (
	"errors"
	"fmt"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// ErrPlan marks a task that cannot be planned against the topology; another
// attempt on the same topology would fail the same way. A plan's
// *PlanError matches it (errors.Is) unless it is a wait.
var ErrPlan = errors.New("cannot plan task")

// ErrPlanWait marks a task that must not be planned against this topology
// but may be against a later one (a server an earlier attempt acted on is
// missing from it): the attempt is retried with backoff, touching nothing.
// A plan's *PlanError matches it (errors.Is) when it is a wait.
var ErrPlanWait = errors.New("cannot plan task yet")

// PlanError is why a task cannot be planned (PlaceShards, PlanMove, the
// scheduler's PlanSpec). Its message is the marker (ErrPlan's or
// ErrPlanWait's) followed by Reason; the task's recorded error is Reason
// alone.
type PlanError struct {
	// Reason says why, for operators (e.g. "volume 7 not found in the
	// master's topology").
	Reason string
	// Wait: the task may be planned against a later topology (ErrPlanWait);
	// otherwise it cannot be (ErrPlan).
	Wait bool
}

func (e *PlanError) Error() string { return e.marker().Error() + ": " + e.Reason }

// Is matches ErrPlan or ErrPlanWait, whichever e is.
func (e *PlanError) Is(target error) bool { return target == e.marker() }

func (e *PlanError) marker() error {
	if e.Wait {
		return ErrPlanWait
	}
	return ErrPlan
}

// Errorf is a plan error that another attempt on the same topology would
// repeat (ErrPlan), with the formatted reason.
func Errorf(format string, args ...any) error {
	return &PlanError{Reason: fmt.Sprintf(format, args...)}
}

// Waitf is a plan error that a later topology may lift (ErrPlanWait), with
// the formatted reason.
func Waitf(format string, args ...any) error {
	return &PlanError{Reason: fmt.Sprintf(format, args...), Wait: true}
}

// CloudTiered is the plan error for a task on a volume whose data lives in
// remote storage (seaweed.Volume.CloudTiered), nil for any other volume:
// such a volume is never vacuumed, erasure coded or moved, whoever asks.
func CloudTiered(v *seaweed.Volume) error {
	if !v.CloudTiered() {
		return nil
	}
	return Errorf("volume %d is cloud-tiered (its data is in remote storage %s), so it is never vacuumed, erasure coded or moved; bring it back first with weed shell volume.tier.download if it needs maintenance", v.ID, v.RemoteStorage)
}
