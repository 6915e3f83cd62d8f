package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Fault "EC abandoned mid-spread, retried onto other servers": an erasure
// coding attempt is stopped in the middle of spreading its shards (its
// worker is killed -9 from a simulator hook on the attempt's second shard
// copy, so some shards already sit mounted on a target), and the servers
// holding them lose their free slots, so that the retry is planned onto
// other servers. The killed worker stays down until the task has ended (its
// journal's rollback would otherwise clean up for the retry). Every EC
// volume must end with 14 distinct shards, each listed once.

const fkEcMidSpread faultKind = "ec-abandoned-mid-spread"

func init() {
	registerFault(fkEcMidSpread, 8, (*faultRun).ecAbandonedMidSpread)
	registerFinalCheck("EC volumes not 14 distinct shards each listed once", (*faultRun).checkEcShardsOnce)
}

// waitGone waits for a node's process to exit (no testing.T: it runs on a
// simulator goroutine).
func waitGone(n *node, timeout time.Duration) bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (r *faultRun) ecAbandonedMidSpread() {
	kind := fkEcMidSpread
	rng := rand.New(rand.NewPCG(r.seed, uint64(r.round)))
	home := rng.IntN(len(r.sim.Servers()))
	vid, err := r.addRoundVolume(sim.VolumeSpec{Size: 98 << 20, FileCount: 900, ModifiedAt: time.Now().Add(-24 * time.Hour).Unix(), Servers: []int{home}}, true)
	if err != nil {
		r.note("%s: no volume to encode: %v", kind, err)
		return
	}
	type fired struct {
		task   uint64
		worker *faultWorker
		filled []*sim.VolumeServer
		err    string
	}
	firedCh := make(chan fired, 1)
	hook := func() {
		var f fired
		defer func() { firedCh <- f }()
		tasks, err := r.listTasks()
		if err != nil {
			f.err = err.Error()
			return
		}
		for _, tk := range tasks {
			if tk.VolumeId == vid && tk.Type == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING && !terminalStates[tk.State] {
				f.task = tk.Id
				for _, w := range r.workers {
					if w.ID == tk.WorkerId {
						f.worker = w
					}
				}
			}
		}
		if f.worker == nil || !f.worker.running() {
			f.err = fmt.Sprintf("no running worker holds the EC task of volume %d", vid)
			return
		}
		if err := f.worker.signal(syscall.SIGKILL); err != nil || !waitGone(f.worker.node, 10*time.Second) {
			f.err = fmt.Sprintf("kill -9 %s: %v", f.worker.ID, err)
			return
		}
		// The targets the attempt already moved shards to lose their free
		// slots: the retry is planned onto other servers.
		for _, s := range r.sim.Servers() {
			if _, holds := s.Volume(vid); holds {
				continue
			}
			if st, ok := s.EcShards(vid); ok && len(st.Mounted) > 0 {
				s.SetMaxVolumes(int64(len(s.Volumes())))
				f.filled = append(f.filled, s)
			}
		}
	}
	rule := r.sim.InjectFault(sim.Fault{Method: "VolumeEcShardsCopy", VolumeID: vid, Skip: 1, FailNext: 1, OnFire: hook})
	defer rule.Remove()

	var f fired
	select {
	case f = <-firedCh:
	case <-time.After(45 * time.Second):
		r.note("%s: volume %d was not encoded within 45s; no attempt to abandon", kind, vid)
		return
	}
	var filled []string
	for _, s := range f.filled {
		filled = append(filled, s.ID())
	}
	if f.worker != nil {
		r.note("%s: task %d (volume %d) abandoned mid-spread by kill -9 %s; filled %v", kind, f.task, vid, f.worker.ID, filled)
	}
	defer func() {
		for _, s := range f.filled {
			s.SetMaxVolumes(r.sim.Config().MaxVolumesPerServer)
		}
		if f.worker != nil && !f.worker.running() {
			f.worker.startArgs(r.t, f.worker.argv...)
		}
	}()
	if f.err != "" {
		r.note("%s: hook: %s", kind, f.err)
		return
	}
	// Keep the worker down until the task has ended (retried elsewhere).
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		tasks, err := r.listTasks()
		if err == nil {
			i := slices.IndexFunc(tasks, func(tk *fsmpb.Task) bool { return tk.Id == f.task })
			if i >= 0 && terminalStates[tasks[i].State] {
				tk := tasks[i]
				r.note("%s: task %d ended %s after %d attempts: %s", kind, tk.Id, tk.State, tk.Attempt, tk.LastError)
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	r.note("%s: task %d not ended within 90s; restarting the worker", kind, f.task)
}

// checkEcShardsOnce: every EC volume the master lists has the 14 shards,
// each on exactly one server.
func (r *faultRun) checkEcShardsOnce() (checked int, problems []string) {
	m, err := seaweed.DialMaster(r.masterList())
	if err != nil {
		return 0, []string{err.Error()}
	}
	defer m.Close()
	var topo *seaweed.Topology
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		topo, err = m.Topology(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		return 0, []string{err.Error()}
	}
	for _, vid := range slices.Sorted(func(yield func(uint32) bool) {
		for id := range topo.EcVolumes {
			if !yield(id) {
				return
			}
		}
	}) {
		e := topo.EcVolumes[vid]
		checked++
		bad := e.ShardCount() != seaweed.EcTotalShards
		for _, holders := range e.Shards {
			if len(holders) != 1 {
				bad = true
			}
		}
		if _, alsoRegular := topo.Volumes[vid]; alsoRegular {
			bad = true
		}
		if bad {
			problems = append(problems, fmt.Sprintf("EC volume %d: %d distinct shards, holders %v (also a regular volume: %v)", vid, e.ShardCount(), e.Shards, topo.Volumes[vid] != nil))
		}
	}
	return checked, problems
}
