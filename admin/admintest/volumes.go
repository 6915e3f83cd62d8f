package admintest

// The volumes the system tests seed the simulator with.

import (
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
	"github.com/groundskeeper-dev/groundskeeper/worker"
)

// MB is a megabyte, the unit of the simulated volumes.
const MB = 1 << 20

// GarbageSpec is a 4 MB volume, half of it deleted: vacuum work that
// compacts it to 2 MB.
var GarbageSpec = sim.VolumeSpec{Size: 4 * MB, FileCount: 400, DeletedBytes: 2 * MB, DeleteCount: 200}

// FullQuietSpec is a volume at 99% of the 10 MB limit, untouched for a day:
// erasure-coding work.
func FullQuietSpec() sim.VolumeSpec {
	return sim.VolumeSpec{Size: 10*MB - 100<<10, FileCount: 900, ModifiedAt: time.Now().Add(-24 * time.Hour).Unix()}
}

// FillerSpec is a small live volume nobody needs to touch.
var FillerSpec = sim.VolumeSpec{Size: MB, FileCount: 100}

// AddOn creates a volume on the given servers.
func (s *System) AddOn(spec sim.VolumeSpec, servers ...int) uint32 {
	s.T.Helper()
	spec.Servers = servers
	if len(servers) > 1 {
		spec.ReplicaPlacement = uint32(len(servers) - 1) // "00N": N more copies in the rack
	}
	id, err := s.Sim.AddVolume(spec)
	if err != nil {
		s.T.Fatalf("add volume: %v", err)
	}
	return id
}

// InCompaction: a vacuum attempt is in its compaction step.
func InCompaction(t *fsmpb.Task) bool {
	return t.State == fsmpb.TaskState_TASK_STATE_RUNNING && t.Step == worker.StepVacuumCompact
}

// WantContains fails the test unless got mentions every want.
func WantContains(t testing.TB, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s = %q, want it to mention %q", what, got, w)
		}
	}
}
