package integration

import (
	"fmt"
	"strings"
	"sync"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Volumes a round adds for itself (the targeted faults, the EC abandoned
// mid-spread) would stay for the rest of the run: over a few hundred
// rounds their EC shards and replicas filled every slot, and the later
// rounds' work failed for want of room ("erasure coding needs at least 4
// volume servers with free slots", "hook did not fire"). Once its round is
// over such a volume is handed to the work generator, which retires it as
// it retires its own (faults_workmix_test.go): never while a task names it.

// roundVolumes holds the volumes added by the current round and those whose
// round has ended, waiting for the generator to take them.
type roundVolumes struct {
	mu       sync.Mutex
	current  []roundVolume
	released []roundVolume
}

type roundVolume struct {
	vid uint32
	// ec: added full and quiet, for erasure coding; else a regular volume.
	ec bool
}

// addRoundVolume adds a volume for the current round's own use.
func (r *faultRun) addRoundVolume(spec sim.VolumeSpec, ec bool) (uint32, error) {
	vid, err := r.sim.AddVolume(spec)
	if err != nil {
		return 0, err
	}
	r.roundVols.mu.Lock()
	r.roundVols.current = append(r.roundVols.current, roundVolume{vid, ec})
	r.roundVols.mu.Unlock()
	return vid, nil
}

// endRoundVolumes hands the ended round's volumes over to the generator.
func (r *faultRun) endRoundVolumes() {
	r.roundVols.mu.Lock()
	r.roundVols.released = append(r.roundVols.released, r.roundVols.current...)
	r.roundVols.current = nil
	r.roundVols.mu.Unlock()
}

// takeRoundVolumes returns the volumes of ended rounds, once each.
func (r *faultRun) takeRoundVolumes() []roundVolume {
	r.roundVols.mu.Lock()
	defer r.roundVols.mu.Unlock()
	out := r.roundVols.released
	r.roundVols.released = nil
	return out
}

// freeSlotsLine shows each server's free volume slots at the end, and how
// many tasks failed for want of a free slot: the sign of a run whose data
// outgrew the cluster and whose later rounds lacked room for their work.
func freeSlotsLine(servers []*sim.VolumeServer, tasks []*fsmpb.Task) string {
	var free []string
	for _, s := range servers {
		free = append(free, fmt.Sprintf("%s=%d", s.ID(), s.FreeSlots()))
	}
	short := 0
	for _, tk := range tasks {
		if tk.State == fsmpb.TaskState_TASK_STATE_FAILED && (strings.Contains(tk.LastError, "free volume slot") || strings.Contains(tk.LastError, "free slots")) {
			short++
		}
	}
	return fmt.Sprintf("free volume slots at the end: %s; tasks failed for want of a free slot: %d", strings.Join(free, " "), short)
}
