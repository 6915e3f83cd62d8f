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
// until a sample finds it whole.
func (r *faultRun) sampleDurability() {
	vs := r.sim.Durability()
	l := r.losses()
	l.settle(vs)
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
