package integration

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// Permanent volume-server losses in the fault harness (issues 13 and 16):
//
//   - server-lost: a volume server dies and its data is gone
//     (sim VolumeServer.Lose); after a while a replacement machine comes
//     back empty at its address. The admins run with --repair-after
//     faultRepairAfter, so replicate and ec_rebuild tasks restore what it
//     held while later rounds' faults land on them.
//   - master-restart-server-lost: a server is lost, then the SeaweedFS
//     master restarts and refills its topology while the server is still
//     gone. No replicate or ec_rebuild may be submitted, from then on, for
//     a volume that is not at reduced redundancy (a storm from the
//     refilling topology); the real losses are still repaired.
//
// A victim is only lost if every volume it holds stays repairable without
// it (sim Cluster.DurabilityWithout): another regular copy holding every
// write, or at least 10 shards of a consistent EC generation elsewhere.
// Its volumes are at reduced redundancy until repaired: the per-round
// durability sample tolerates that for them (and nothing worse), and the
// check at rest, after the drain, wants every one back as promised.

const (
	fkServerLost        faultKind = "server-lost"
	fkMasterRestartLost faultKind = "master-restart-server-lost"
	// faultRepairAfter is the admins' --repair-after: longer than a
	// crash-mid-copy round keeps its server down, so only real losses
	// are repaired.
	faultRepairAfter = 3 * time.Second
	// lossRefillWait bounds the wait for the master to drop the lost
	// server, or to refill after its restart.
	lossRefillWait = 30 * time.Second
)

// faultLosses (GK_FAULT_LOSSES=1) turns the server losses on, with the
// shape they need: every volume 001, the admins with --repair-after
// faultRepairAfter. Off by default, so CI's run keeps the earlier shape,
// until the product gaps the loss runs found are fixed (architecture
// §12.2: a pending erasure coding of a lost server's volume requeues for
// ever and holds off its replicate; EC volumes left short of 14 shards
// at the end of a 100-round run, not diagnosed yet).
var faultLosses = os.Getenv("GK_FAULT_LOSSES") == "1"

// lossWeight is w with the server losses on, else 0.
func lossWeight(w int) int {
	if faultLosses {
		return w
	}
	return 0
}

func init() {
	registerFault(fkServerLost, lossWeight(40), func(r *faultRun) { r.loseServerRound(false) })
	registerFault(fkMasterRestartLost, lossWeight(20), func(r *faultRun) { r.loseServerRound(true) })
	registerRunReset(func() {
		lossState.mu.Lock()
		lossState.byRun = map[*faultRun]*losses{}
		lossState.mu.Unlock()
	})
	registerFinalCheck("repair tasks for volumes not at reduced redundancy (master restart with a server lost)", func(r *faultRun) (int, []string) {
		l := r.losses()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.stormChecked, l.storm
	})
}

// losses is one run's record of its permanent losses.
type losses struct {
	mu sync.Mutex
	// pending are the volumes a loss left at reduced redundancy, until a
	// durability sample finds them whole again.
	pending map[uint32]bool
	// everLost are the volumes any loss touched.
	everLost map[uint32]bool
	// lost and skipped count the loss rounds that lost a server and those
	// that found no server whose loss would leave everything repairable.
	lost, skipped int
	// stormChecked counts the repair tasks the master-restart rounds
	// checked; storm the ones for volumes not at reduced redundancy.
	stormChecked int
	storm        []string
}

var lossState = struct {
	mu    sync.Mutex
	byRun map[*faultRun]*losses
}{byRun: map[*faultRun]*losses{}}

func (r *faultRun) losses() *losses {
	lossState.mu.Lock()
	defer lossState.mu.Unlock()
	l := lossState.byRun[r]
	if l == nil {
		l = &losses{pending: map[uint32]bool{}, everLost: map[uint32]bool{}}
		lossState.byRun[r] = l
	}
	return l
}

// tolerated reports whether a durability violation found after a round is
// the reduced redundancy a loss left, not yet repaired.
func (l *losses) tolerated(v sim.Violation) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return v.Repairable && l.pending[v.VolumeID]
}

// settle drops from pending the volumes a sample found whole and no open
// task names.
func (l *losses) settle(viols []sim.Violation, open map[uint32]bool) {
	bad := map[uint32]bool{}
	for _, v := range viols {
		bad[v.VolumeID] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for vid := range l.pending {
		if !bad[vid] && !open[vid] {
			delete(l.pending, vid)
		}
	}
}

// pickVictim returns a running server whose loss leaves every volume
// repairable, and the volumes it would leave at reduced redundancy; nil if
// none qualifies.
func (r *faultRun) pickVictim() (*sim.VolumeServer, []uint32) {
	servers := r.sim.Servers()
	order := r.rng.Perm(len(servers))
	for _, i := range order {
		s := servers[i]
		if !s.Up() {
			continue
		}
		if vids, ok := repairableWithout(r.sim.DurabilityWithout(i)); ok && r.midEncode(s) == 0 {
			return s, vids
		}
	}
	return nil, nil
}

// midEncode returns a volume s holds that is both regular and EC in the
// cluster (an erasure coding in flight, or its leftovers), 0 if none. Such
// a server is not lost: an encode that loses its encoder leaves a volume
// with one replica and a partial generation, which the EC executor will
// not touch ("changing nothing") and the replica repair skips (a volume
// with EC shards is the operator's to resolve), so nothing would restore
// it. That is a gap of the product (see the harness notes in
// docs/architecture.md §12.2), not something the harness can repair.
func (r *faultRun) midEncode(s *sim.VolumeServer) uint32 {
	regular, ec := map[uint32]bool{}, map[uint32]bool{}
	for _, o := range r.sim.Servers() {
		for _, v := range o.Volumes() {
			regular[v.ID] = true
		}
		for _, e := range o.EcVolumes() {
			ec[e.ID] = true
		}
	}
	for _, v := range s.Volumes() {
		if ec[v.ID] {
			return v.ID
		}
	}
	for _, e := range s.EcVolumes() {
		if regular[e.ID] {
			return e.ID
		}
	}
	return 0
}

// repairableWithout: the volumes of viols, and whether every one is
// repairable.
func repairableWithout(viols []sim.Violation) ([]uint32, bool) {
	var vids []uint32
	for _, v := range viols {
		if !v.Repairable {
			return nil, false
		}
		vids = append(vids, v.VolumeID)
	}
	return vids, true
}

// loseServerRound loses a server for good, with a master restart while it
// is gone if restart, then brings an empty replacement back.
func (r *faultRun) loseServerRound(restart bool) {
	kind := fkServerLost
	if restart {
		kind = fkMasterRestartLost
	}
	l := r.losses()
	victim, vids := r.pickVictim()
	if victim != nil {
		// Checked again once it is down: a task may have moved a copy
		// since (the victim's own disk no longer changes).
		victim.Stop()
		var ok bool
		vids, ok = repairableWithout(r.sim.DurabilityWithout(victim.Index()))
		if !ok || r.midEncode(victim) != 0 {
			if err := victim.Start(); err != nil {
				r.fail("restart volume server %s: %v", victim.ID(), err)
			}
			victim = nil
		}
	}
	if victim == nil {
		l.mu.Lock()
		l.skipped++
		l.mu.Unlock()
		r.note("%s: no server whose loss leaves every volume repairable; skipped", kind)
		time.Sleep(r.hold(300*time.Millisecond, 1000*time.Millisecond))
		return
	}
	// Every volume the victim holds a copy or shard of, not only those
	// the check above found short: a copy it holds beside a move's new one
	// is a third, until the move deletes its source.
	for _, v := range victim.Volumes() {
		vids = append(vids, v.ID)
	}
	for _, e := range victim.EcVolumes() {
		vids = append(vids, e.ID)
	}
	slices.Sort(vids)
	vids = slices.Compact(vids)
	l.mu.Lock()
	l.lost++
	for _, vid := range vids {
		l.pending[vid], l.everLost[vid] = true, true
	}
	l.mu.Unlock()
	victim.Lose()
	r.note("%s: %s lost for good; %d volumes at reduced redundancy or with a copy or shard there: %v", kind, victim.ID(), len(vids), vids)
	if restart {
		r.restartMasterWhileLost(kind, len(r.sim.Servers())-1)
	} else {
		time.Sleep(r.hold(faultRepairAfter/2, 2*faultRepairAfter))
	}
	if err := victim.Start(); err != nil {
		r.fail("start the replacement of volume server %s: %v", victim.ID(), err)
	}
	r.note("%s: an empty replacement of %s is up", kind, victim.ID())
}

// restartMasterWhileLost waits for the master to drop the lost server,
// restarts it, waits for the refill, watches the admins through
// --repair-after and three detection rounds, and checks every repair task
// submitted since the restart against the volumes really at reduced
// redundancy.
func (r *faultRun) restartMasterWhileLost(kind faultKind, want int) {
	r.waitRegistered(want)
	time.Sleep(r.hold(0, 2*time.Second))
	restartAt := time.Now()
	r.note("%s: restart the SeaweedFS master while a server is lost", kind)
	if err := r.sim.RestartMaster(); err != nil {
		r.fail("restart the simulated master: %v", err)
	}
	r.waitRegistered(want)
	// An observation window, not a wait for something: a storm from the
	// refilling topology would show within it.
	time.Sleep(faultRepairAfter + 3*time.Second)
	tasks, err := r.listTasks()
	if err != nil {
		r.note("%s: list tasks: %v (not checked)", kind, err)
		return
	}
	r.checkRepairStorm(tasks, restartAt)
}

// checkRepairStorm records the repair tasks created since from whose
// volume no loss left at reduced redundancy.
func (r *faultRun) checkRepairStorm(tasks []*fsmpb.Task, from time.Time) {
	l := r.losses()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tk := range tasks {
		if !isRepair(tk.Type) || tk.CreatedAt < from.UnixNano() {
			continue
		}
		l.stormChecked++
		if !l.everLost[tk.VolumeId] {
			l.storm = append(l.storm, fmt.Sprintf("round %d: task %d (%s of volume %d) submitted %s after the master restart; no loss touched the volume",
				r.round, tk.Id, typeNames[tk.Type], tk.VolumeId, time.Duration(tk.CreatedAt-from.UnixNano()).Round(time.Millisecond)))
		}
	}
}

// waitLossesRepaired polls, before the drain, until no volume a loss left
// at reduced redundancy is still short or has a task open: the drain alone
// could end within --repair-after of a last-round loss, before its repairs
// were even submitted. A timeout is left to the check at rest to report.
func (r *faultRun) waitLossesRepaired() {
	l := r.losses()
	deadline := time.Now().Add(faultDrainTimeout)
	for {
		if open, ok := r.openTaskVolumes(); ok {
			l.settle(r.sim.Durability(), open)
		}
		l.mu.Lock()
		left := len(l.pending)
		l.mu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.note("%d lost volumes still not repaired after %s", left, faultDrainTimeout)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitRegistered polls until the master has exactly n servers registered.
func (r *faultRun) waitRegistered(n int) {
	deadline := time.Now().Add(lossRefillWait)
	for r.sim.RegisteredServers() != n {
		if time.Now().After(deadline) {
			r.fail("the master has %d volume servers registered %s on, want %d", r.sim.RegisteredServers(), lossRefillWait, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isRepair(t fsmpb.TaskType) bool {
	return t == fsmpb.TaskType_TASK_TYPE_REPLICATE || t == fsmpb.TaskType_TASK_TYPE_EC_REBUILD
}

// lossSummary is the results line of the losses.
func (r *faultRun) lossSummary(tasks []*fsmpb.Task) string {
	l := r.losses()
	l.mu.Lock()
	defer l.mu.Unlock()
	var stray []string
	for _, tk := range tasks {
		if isRepair(tk.Type) && !l.everLost[tk.VolumeId] {
			stray = append(stray, fmt.Sprintf("%d", tk.VolumeId))
		}
	}
	sort.Strings(stray)
	s := fmt.Sprintf("servers lost for good: %d (rounds that found no safe victim: %d), volumes they left at reduced redundancy: %d; repair tasks of volumes no loss touched (informational): %d",
		l.lost, l.skipped, len(l.everLost), len(stray))
	if len(stray) > 0 {
		s += " (volumes " + strings.Join(stray, ", ") + ")"
	}
	return s
}

// The loss bookkeeping: only a pending volume's repairable violation is
// tolerated, a whole sample settles it, and a repair submitted after a
// master restart counts as a storm unless a loss touched its volume.
func TestLossBookkeeping(t *testing.T) {
	r := &faultRun{}
	l := r.losses()
	l.pending[5], l.everLost[5], l.everLost[3] = true, true, true
	for _, c := range []struct {
		v    sim.Violation
		want bool
	}{
		{sim.Violation{VolumeID: 5, Repairable: true}, true},
		{sim.Violation{VolumeID: 5}, false},
		{sim.Violation{VolumeID: 6, Repairable: true}, false},
	} {
		if got := l.tolerated(c.v); got != c.want {
			t.Errorf("tolerated(%+v) = %v, want %v", c.v, got, c.want)
		}
	}
	l.settle([]sim.Violation{{VolumeID: 5}}, nil)
	if !l.pending[5] {
		t.Fatal("a volume still violating left pending")
	}
	l.settle(nil, map[uint32]bool{5: true})
	if !l.pending[5] {
		t.Fatal("a volume whole while a task is open on it (its copy may be rolled back) left pending")
	}
	l.settle(nil, nil)
	if l.pending[5] || l.tolerated(sim.Violation{VolumeID: 5, Repairable: true}) {
		t.Fatal("a volume found whole is still tolerated")
	}
	from := time.Unix(100, 0)
	at := func(s int64) int64 { return from.UnixNano() + s*int64(time.Second) }
	r.checkRepairStorm([]*fsmpb.Task{
		{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 3, CreatedAt: at(1)},
		{Id: 2, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD, VolumeId: 4, CreatedAt: at(2)},
		{Id: 3, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE, VolumeId: 9, CreatedAt: at(-1)},
		{Id: 4, Type: fsmpb.TaskType_TASK_TYPE_BALANCE, VolumeId: 4, CreatedAt: at(3)},
	}, from)
	if l.stormChecked != 2 || len(l.storm) != 1 || !strings.Contains(l.storm[0], "task 2 (ec_rebuild of volume 4)") {
		t.Fatalf("storm check: %d checked, %q", l.stormChecked, l.storm)
	}
}
