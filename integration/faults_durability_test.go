package integration

import (
	"fmt"
	"sync"
)

// The simulator's durability check in the fault harness (redundancy is
// never made worse, docs/architecture.md §9.6): after every round, while
// work is still running, no volume may have lost data
// (sim.Cluster.Durability); once the work has drained, every volume must be
// held exactly as promised (sim.Cluster.DurabilityAtRest). A violation
// prints the volume's history from the op log.

func init() {
	registerRoundHook((*faultRun).sampleDurability)
	registerFinalCheck("durability violations (at rest, after the drain)", (*faultRun).checkDurabilityAtRest)
	registerFinalCheck("durability violations (sampled after each round)", (*faultRun).checkDurabilitySampled)
}

// durabilitySamples are the violations found after rounds, by run.
var durabilitySamples = struct {
	mu      sync.Mutex
	checked map[*faultRun]int
	found   map[*faultRun][]string
}{checked: map[*faultRun]int{}, found: map[*faultRun][]string{}}

// A volume a permanent loss left at reduced redundancy
// (faults_loss_test.go) is tolerated while nothing worse is wrong with it,
// until a sample finds it whole with no task open on it: a repair whose
// copy was complete may still be rolled back (its attempt interrupted),
// and the volume is then at reduced redundancy again, legitimately. The
// open tasks are listed before the sample, so a task that ends between the
// two is still counted open.
func (r *faultRun) sampleDurability() {
	l := r.losses()
	open, known := r.openTaskVolumes()
	vs := r.sim.Durability()
	if known {
		l.settle(vs, open)
	}
	durabilitySamples.mu.Lock()
	defer durabilitySamples.mu.Unlock()
	durabilitySamples.checked[r]++
	for _, v := range vs {
		if l.tolerated(v) {
			continue
		}
		r.note("durability violation: volume %d: %v", v.VolumeID, v.Problems)
		durabilitySamples.found[r] = append(durabilitySamples.found[r], fmt.Sprintf("after round %d: %s", r.round, v))
	}
}

// openTaskVolumes lists the volumes of the tasks that are not terminal
// (false if no admin answered).
func (r *faultRun) openTaskVolumes() (map[uint32]bool, bool) {
	tasks, err := r.listTasks()
	if err != nil {
		return nil, false
	}
	open := map[uint32]bool{}
	for _, tk := range tasks {
		if !terminalStates[tk.State] {
			open[tk.VolumeId] = true
		}
	}
	return open, true
}

func (r *faultRun) checkDurabilitySampled() (int, []string) {
	durabilitySamples.mu.Lock()
	defer durabilitySamples.mu.Unlock()
	return durabilitySamples.checked[r], durabilitySamples.found[r]
}

func (r *faultRun) checkDurabilityAtRest() (int, []string) {
	var out []string
	for _, v := range r.sim.DurabilityAtRest() {
		out = append(out, v.String())
	}
	return r.sim.KnownVolumes(), out
}
