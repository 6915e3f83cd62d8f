package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// The fault harness's work mix (issue 16): the destructive steps (deleting
// the originals after an erasure coding, deleting a move's source) must be
// a good share of the work, not a rarity beside vacuums. The generator
// keeps three streams going:
//
//   - erasure coding: a full, quiet volume appears every mixECEvery ticks
//     (while few wait to be encoded);
//   - balance: new volumes land on one "hot" server, which changes every
//     mixHotFor ticks, so slot usage keeps drifting past the admins'
//     imbalance threshold;
//   - vacuum: garbage on a random volume, and a manual vacuum submission;
//   - repair: the volumes are all 001, and servers lost for good
//     (faults_loss_test.go) leave replicas and EC shards to restore.
//
// Over a long run the slots would fill up with EC shards and new volumes,
// so the generator retires old data as an operator would (sim DropVolume):
// the oldest EC volumes beyond mixMaxEC, and the oldest added volumes once
// the regular replicas exceed mixMaxRegular, never one an open task names.
// The volumes rounds added for themselves join these lists once their round
// is over (faults_roundvols_test.go).

const (
	mixTick         = 250 * time.Millisecond
	mixGarbageEvery = 9  // ticks between garbage injections (vacuum)
	mixSubmitEvery  = 24 // ticks between manual vacuum submissions
	mixECEvery      = 4  // ticks between full quiet volumes (erasure coding)
	mixHotEvery     = 5  // ticks between volumes on the hot server (balance)
	mixHotFor       = 40 // ticks before another server is the hot one
	mixRetireEvery  = 4  // ticks between retirement passes
	mixMaxWaitingEC = 4  // full quiet volumes not yet encoded, at most
	mixMaxEC        = 6  // EC volumes kept; older ones are retired
	mixMaxRegular   = 64 // regular replicas kept; older added volumes are retired
	mixHotMaxUsed   = 24 // slots the hot server may fill
	// mixStuckAfter: a full volume still not encoded this long after it
	// appeared (its EC failed for good) is retired.
	mixStuckAfter = 90 * time.Second

	mixFullSize = 98 << 20 // of the 100 MB volume size limit: EC material
	mixFillSize = 40 << 20
)

// workMix is the generator's memory of what it added.
type workMix struct {
	r       *faultRun
	rng     *rand.Rand
	hot     int
	ecVols  []uint32 // full quiet volumes added, oldest first
	fills   []uint32 // volumes added on hot servers, oldest first
	addedAt map[uint32]time.Time
}

// retiredLog records the generator's retirements, for the results.
type retiredLog struct {
	mu    sync.Mutex
	drops []retirement
}

type retirement struct {
	vid uint32
	at  time.Time
}

func (l *retiredLog) add(vid uint32, at time.Time) {
	l.mu.Lock()
	l.drops = append(l.drops, retirement{vid, at})
	l.mu.Unlock()
}

// summary counts the retirements, and those that raced a task: a task of
// the volume that was active (created, not yet finished) at that moment.
// The generator checks the open tasks just before, so only a task created
// in between can race it; the task then fails on the missing volume.
func (l *retiredLog) summary(tasks []*fsmpb.Task) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	byVol := map[uint32][]*fsmpb.Task{}
	for _, tk := range tasks {
		byVol[tk.VolumeId] = append(byVol[tk.VolumeId], tk)
	}
	var raced []string
	for _, d := range l.drops {
		at := d.at.UnixNano()
		for _, tk := range byVol[d.vid] {
			if tk.CreatedAt <= at && (tk.FinishedAt == 0 || tk.FinishedAt >= at) {
				raced = append(raced, fmt.Sprintf("task %d (%s of volume %d, %s)", tk.Id, typeNames[tk.Type], d.vid, tk.State))
			}
		}
	}
	s := fmt.Sprintf("volumes retired by the work generator: %d; of them with a task active at that moment: %d", len(l.drops), len(raced))
	if len(raced) > 0 {
		s += " (" + strings.Join(raced, ", ") + ")"
	}
	return s
}

// generateWork keeps maintenance work coming in the mix above until ctx ends.
func (r *faultRun) generateWork(ctx context.Context) {
	m := &workMix{r: r, rng: rand.New(rand.NewPCG(r.seed+1, r.seed+2)), addedAt: map[uint32]time.Time{}}
	m.hot = m.rng.IntN(len(r.sim.Servers()))
	tick := time.NewTicker(mixTick)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n%mixGarbageEvery == 0 {
			m.garbage()
		}
		if n%mixSubmitEvery == mixSubmitEvery/2 {
			m.submitVacuum(ctx)
		}
		if n%mixECEvery == 1 {
			m.addFull()
		}
		if n%mixHotFor == 0 && n > 0 {
			m.hot = (m.hot + 1 + m.rng.IntN(len(r.sim.Servers())-1)) % len(r.sim.Servers())
		}
		if n%mixHotEvery == 2 {
			m.addFill()
		}
		if n%mixRetireEvery == 3 {
			m.retire(ctx)
		}
	}
}

// smallWritable lists the writable replicas under 60 MB (vacuum material).
func (m *workMix) smallWritable() []sim.VolumeState {
	var vols []sim.VolumeState
	for _, s := range m.r.sim.Servers() {
		for _, v := range s.Volumes() {
			if !v.ReadOnly && !v.Unloaded && v.Size < 60<<20 {
				vols = append(vols, v)
			}
		}
	}
	return vols
}

// garbage deletes half a random volume's live data (vacuum work) and
// writes some back, so volumes do not shrink to nothing over many vacuums.
func (m *workMix) garbage() {
	vols := m.smallWritable()
	if len(vols) == 0 {
		return
	}
	v := vols[m.rng.IntN(len(vols))]
	live := v.Size - v.DeletedBytes
	_ = m.r.sim.DeleteData(v.ID, live/2, max(v.FileCount/4, 1))
	_ = m.r.sim.Write(v.ID, 8<<20, 80)
}

// submitVacuum asks a random admin to vacuum a random volume.
func (m *workMix) submitVacuum(ctx context.Context) {
	vols := m.smallWritable()
	if len(vols) == 0 {
		return
	}
	a := m.r.admins[m.rng.IntN(len(m.r.admins))]
	v := vols[m.rng.IntN(len(vols))]
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, _ = pb.NewAdminClient(a.conn).SubmitTask(cctx, &pb.SubmitTaskRequest{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: v.ID})
	cancel()
}

// addFull adds a full volume unmodified for a day, two replicas (001) on
// random servers with room, unless enough already wait to be encoded.
func (m *workMix) addFull() {
	waiting := 0
	for _, vid := range m.ecVols {
		if len(m.regularHolders(vid)) > 0 {
			waiting++
		}
	}
	if waiting >= mixMaxWaitingEC {
		return
	}
	servers := m.r.sim.Servers()
	var roomy []int
	for i, s := range servers {
		if s.Up() && s.FreeSlots() >= 2 {
			roomy = append(roomy, i)
		}
	}
	if len(roomy) < 2 {
		return
	}
	dayAgo := time.Now().Add(-24 * time.Hour).Unix()
	pick := m.rng.Perm(len(roomy))
	spec := sim.VolumeSpec{Size: mixFullSize, FileCount: 900, ModifiedAt: dayAgo, ReplicaPlacement: 1,
		Servers: []int{roomy[pick[0]], roomy[pick[1]]}}
	if !faultLosses {
		spec.ReplicaPlacement, spec.Servers = 0, spec.Servers[:1]
	}
	vid, err := m.r.sim.AddVolume(spec)
	if err == nil {
		m.ecVols = append(m.ecVols, vid)
		m.addedAt[vid] = time.Now()
	}
}

// addFill adds a half-full volume on the hot server, with its second
// replica (001) on another: every volume the generator adds survives a
// server lost for good (faults_loss_test.go).
func (m *workMix) addFill() {
	s := m.r.sim.Server(m.hot)
	free := s.FreeSlots()
	if m.r.sim.Config().MaxVolumesPerServer-free >= mixHotMaxUsed || free < 2 {
		return
	}
	n := len(m.r.sim.Servers())
	other := (m.hot + 1 + m.rng.IntN(n-1)) % n
	// Never onto a server that is down (lost for good, or crashed): its
	// copy would be invisible, and its repair no loss's.
	if !s.Up() || !m.r.sim.Server(other).Up() || m.r.sim.Server(other).FreeSlots() < 2 {
		return
	}
	spec := sim.VolumeSpec{Size: mixFillSize, FileCount: 400, ReplicaPlacement: 1, Servers: []int{m.hot, other}}
	if !faultLosses {
		spec.ReplicaPlacement, spec.Servers = 0, spec.Servers[:1]
	}
	vid, err := m.r.sim.AddVolume(spec)
	if err == nil {
		m.fills = append(m.fills, vid)
		m.addedAt[vid] = time.Now()
	}
}

// regularHolders are the servers (indexes) with a regular replica of vid.
func (m *workMix) regularHolders(vid uint32) []int {
	var out []int
	for i, s := range m.r.sim.Servers() {
		if _, ok := s.Volume(vid); ok {
			out = append(out, i)
		}
	}
	return out
}

// ecOnly reports whether vid is held as EC shards and no regular replica.
func (m *workMix) ecOnly(vid uint32) bool {
	shards := false
	for _, s := range m.r.sim.Servers() {
		if _, ok := s.Volume(vid); ok {
			return false
		}
		if _, ok := s.EcShards(vid); ok {
			shards = true
		}
	}
	return shards
}

// openTaskVolumes asks the admins, in turn, for the volumes of every task
// that is not terminal (false if none answered).
func (m *workMix) openTaskVolumes(ctx context.Context) (map[uint32]bool, bool) {
	for _, a := range m.r.admins {
		cctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		tasks, _, err := rpc.ListAllTasks(cctx, pb.NewAdminClient(a.conn), &pb.ListTasksRequest{
			Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE,
			PageSize:    rpc.DefaultTaskPageSize,
			States:      []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING},
		})
		cancel()
		if err != nil {
			continue
		}
		out := map[uint32]bool{}
		for _, tk := range tasks {
			if !terminalStates[tk.State] {
				out[tk.VolumeId] = true
			}
		}
		return out, true
	}
	return nil, false
}

// retire drops the oldest EC volumes beyond mixMaxEC, full volumes whose
// encoding never happened, and the oldest added volumes while the regular
// replicas exceed mixMaxRegular; none that an open task names.
func (m *workMix) retire(ctx context.Context) {
	now := time.Now()
	for _, v := range m.r.takeRoundVolumes() {
		m.addedAt[v.vid] = now
		if v.ec {
			m.ecVols = append(m.ecVols, v.vid)
		} else {
			m.fills = append(m.fills, v.vid)
		}
	}
	open, ok := m.openTaskVolumes(ctx)
	if !ok {
		return
	}
	drop := func(vid uint32) bool {
		if open[vid] || m.r.sim.DropVolume(vid) != nil {
			return false
		}
		m.r.retired.add(vid, time.Now())
		delete(m.addedAt, vid)
		return true
	}
	var ecLive, keep []uint32
	for _, vid := range m.ecVols {
		switch {
		case m.ecOnly(vid):
			ecLive = append(ecLive, vid)
		case len(m.regularHolders(vid)) == 0:
			// Gone (retired by hand?): forget it.
		case time.Since(m.addedAt[vid]) > mixStuckAfter && drop(vid):
		default:
			keep = append(keep, vid)
		}
	}
	for len(ecLive) > mixMaxEC {
		if !drop(ecLive[0]) {
			keep = append(keep, ecLive[0])
		}
		ecLive = ecLive[1:]
	}
	m.ecVols = append(keep, ecLive...)

	replicas := 0
	for _, s := range m.r.sim.Servers() {
		replicas += len(s.Volumes())
	}
	var fills []uint32
	for i, vid := range m.fills {
		holders := m.regularHolders(vid)
		if len(holders) == 0 {
			continue
		}
		onHot := false
		for _, h := range holders {
			onHot = onHot || h == m.hot
		}
		if replicas > mixMaxRegular && !onHot && drop(vid) {
			replicas -= len(holders)
			continue
		}
		fills = append(fills, m.fills[i])
	}
	m.fills = fills
}
