package scheduler

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/placement"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

var (
	vacuumT  = fsmpb.TaskType_TASK_TYPE_VACUUM
	ecT      = fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	balanceT = fsmpb.TaskType_TASK_TYPE_BALANCE
)

func TestPlanSpecVacuum(t *testing.T) {
	topo := build(100,
		srv(sid(1), 10, v(7, 5000).Garbage(2000), v(8, 10)),
		srv(sid(2), 10, v(7, 5000).Garbage(1500)).At(sid(2), 19999), // non-default gRPC port
		srv("vs3", 10, v(7, 4000)).At("10.0.0.3:8080", 18080),       // id is not the address
		srv("10.0.0.4:8080.28080", 10, v(7, 5000)),                  // id carries the gRPC port
		srv(sid(5), 10, v(9, 10)),
	)
	task := &fsmpb.Task{Id: 42, Type: vacuumT, VolumeId: 7, Fence: 99, Attempt: 2}
	th := DefaultThresholds()
	th.VacuumGarbage = 0.4
	spec, err := PlanSpec(task, topo, th)
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	// Every replica, in server-id order, in SeaweedFS's host:port.grpcPort form.
	want := []string{"10.0.0.1:8080.18080", "10.0.0.2:8080.19999", "10.0.0.4:8080.28080", "10.0.0.3:8080.18080"}
	if !reflect.DeepEqual(spec.Replicas, want) {
		t.Errorf("Replicas = %q, want %q", spec.Replicas, want)
	}
	for _, r := range spec.Replicas {
		if _, err := seaweed.ParseAddress(r); err != nil {
			t.Errorf("replica %q does not parse as a SeaweedFS address: %v", r, err)
		}
	}
	if spec.Task != task {
		t.Errorf("spec.Task = %v, want the task as given (with its fence)", spec.Task)
	}
	if spec.Size != 5000 || spec.DeletedBytes != 2000 || spec.GarbageThreshold != 0.4 {
		t.Errorf("spec size/deleted/threshold = %d/%d/%v, want 5000/2000/0.4", spec.Size, spec.DeletedBytes, spec.GarbageThreshold)
	}
	if spec.Source != "" || spec.Target != "" || len(spec.ShardTargets) != 0 {
		t.Errorf("vacuum spec has move/EC fields: %+v", spec)
	}
}

func TestPlanSpecUnplannable(t *testing.T) {
	topo := build(100,
		srv(sid(1), 10, v(1, 100)).Shards(50, allShards()...),
		srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10))
	for _, tc := range []struct {
		name string
		task *fsmpb.Task
		want string
	}{
		{name: "vacuum of unknown volume", task: &fsmpb.Task{Type: vacuumT, VolumeId: 77}, want: "not found"},
		{name: "EC of unknown volume", task: &fsmpb.Task{Type: ecT, VolumeId: 77}, want: "not found"},
		{name: "balance of unknown volume", task: &fsmpb.Task{Type: balanceT, VolumeId: 77}, want: "not found"},
		{name: "EC of an already erasure-coded volume", task: &fsmpb.Task{Type: ecT, VolumeId: 50}, want: "already erasure coded"},
		{name: "vacuum of an erasure-coded volume", task: &fsmpb.Task{Type: vacuumT, VolumeId: 50}, want: "not found"},
		{name: "unknown task type", task: &fsmpb.Task{Type: fsmpb.TaskType_TASK_TYPE_UNSPECIFIED, VolumeId: 1}, want: "unknown task type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := PlanSpec(tc.task, topo, DefaultThresholds())
			if !errors.Is(err, placement.ErrPlan) {
				t.Fatalf("PlanSpec = %v, %v; want an ErrPlan", spec, err)
			}
			if !contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if spec != nil {
				t.Errorf("spec = %v alongside an error", spec)
			}
		})
	}
}

// addrOf is the SeaweedFS address form of server n with the default gRPC port.
func addrOf(ns ...int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = swa(n)
	}
	return out
}

func TestPlanSpecErasureCoding(t *testing.T) {
	sixteen := []*node{srv(sid(1), 10, v(1, 100))}
	for k := 2; k <= 16; k++ {
		sixteen = append(sixteen, srv(sid(k), int64(k)))
	}
	for _, tc := range []struct {
		name  string
		nodes []*node
		// order is the servers shards go to, round-robin: shard i on order[i%len(order)].
		order   []string
		wantErr string
	}{
		{name: "four servers: source first, then most free, then id", nodes: []*node{
			srv(sid(1), 10, v(1, 100)), srv(sid(2), 5), srv(sid(3), 20), srv(sid(4), 5)},
			order: addrOf(1, 3, 2, 4)},
		{name: "source without a free slot still generates", nodes: []*node{
			srv(sid(1), 1, v(1, 100)), srv(sid(2), 5), srv(sid(3), 5), srv(sid(4), 5)},
			order: addrOf(1, 2, 3, 4)},
		{name: "servers without a free slot are skipped", nodes: []*node{
			srv(sid(1), 10, v(1, 100)), srv(sid(2), 1, v(10, 1)), srv(sid(3), 6), srv(sid(4), 7),
			srv(sid(5), 8).WithFree(0).Shards(60, allShards()...), srv(sid(6), 9)},
			order: addrOf(1, 6, 4, 3)},
		{name: "sixteen servers: exactly 14 used", nodes: sixteen,
			order: addrOf(1, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4)},
		{name: "replicated volume: the lowest-id replica generates", nodes: []*node{
			srv(sid(1), 10), srv(sid(2), 10, v(1, 100)), srv(sid(3), 10, v(1, 100)), srv(sid(4), 10)},
			order: addrOf(2, 1, 4, 3)},
		{name: "gRPC ports as the master reports them", nodes: []*node{
			srv(sid(1), 10, v(1, 100)).At(sid(1), 17001), srv(sid(2), 9).At(sid(2), 17002),
			srv(sid(3), 8).At(sid(3), 17003), srv(sid(4), 7).At(sid(4), 17004)},
			order: []string{"10.0.0.1:8080.17001", "10.0.0.2:8080.17002", "10.0.0.3:8080.17003", "10.0.0.4:8080.17004"}},
		{name: "three usable servers of four", nodes: []*node{
			srv(sid(1), 10, v(1, 100)), srv(sid(2), 5), srv(sid(3), 5), srv(sid(4), 1, v(10, 1))},
			wantErr: "at least 4"},
		{name: "three servers", nodes: []*node{
			srv(sid(1), 10, v(1, 100)), srv(sid(2), 5), srv(sid(3), 5)},
			wantErr: "at least 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := build(100, tc.nodes...)
			task := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7}
			spec, err := PlanSpec(task, topo, DefaultThresholds())
			if tc.wantErr != "" {
				if !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), tc.wantErr) {
					t.Fatalf("PlanSpec = %v, want an ErrPlan saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanSpec: %v", err)
			}
			if len(spec.ShardTargets) != placement.TotalShards {
				t.Fatalf("%d shard targets, want %d", len(spec.ShardTargets), placement.TotalShards)
			}
			var got []string
			distinct := map[string]bool{}
			for i, st := range spec.ShardTargets {
				if st.ShardId != uint32(i) {
					t.Errorf("shard target %d has shard id %d", i, st.ShardId)
				}
				want := tc.order[i%len(tc.order)]
				if st.Server != want {
					t.Errorf("shard %d on %s, want %s", i, st.Server, want)
				}
				got = append(got, st.Server)
				distinct[st.Server] = true
			}
			// Properties, independent of the expected order.
			usable := 0
			source := topo.Volumes[1].Replicas[0].Server
			for _, s := range topo.Servers {
				free := int64(0)
				for _, d := range s.Disks {
					free += d.FreeSlots
				}
				if free > 0 || s.ID == source.ID {
					usable++
				} else if distinct[s.Addr.String()] {
					t.Errorf("shards placed on %s, which has no free slot", s.ID)
				}
			}
			if want := min(usable, placement.TotalShards); len(distinct) != want {
				t.Errorf("shards on %d distinct servers, want min(%d usable, 14) = %d: %v", len(distinct), usable, want, got)
			}
			if len(distinct) < placement.MinECServers {
				t.Errorf("shards on %d servers, want >= %d", len(distinct), placement.MinECServers)
			}
			if got[0] != source.Addr.String() {
				t.Errorf("shard 0 on %s, want the generating replica %s", got[0], source.Addr.String())
			}
			if len(spec.Replicas) != len(topo.Volumes[1].Replicas) {
				t.Errorf("Replicas = %v, want all %d replicas", spec.Replicas, len(topo.Volumes[1].Replicas))
			}
		})
	}
}

func TestPlanSpecBalance(t *testing.T) {
	// Ids differ from addresses so that each way of naming a server is tested.
	nodes := func() []*node {
		return []*node{
			srv("vs1", 10, v(5, 100), v(6, 10), v(7, 10)).At("10.0.0.1:8080", 18080),        // 3/10, holds 5
			srv("vs2", 10, v(5, 100)).At("10.0.0.2:8080", 18080),                            // 1/10, holds 5
			srv("vs3", 10, v(8, 10)).At("10.0.0.3:8080", 19999),                             // 1/10
			srv("vs4", 4, v(9, 1), v(10, 1), v(11, 1), v(12, 1)).At("10.0.0.4:8080", 18080), // full
			srv("vs5", 10).At("10.0.0.5:8080", 18080),                                       // empty
		}
	}
	const (
		a1 = "10.0.0.1:8080.18080"
		a2 = "10.0.0.2:8080.18080"
		a3 = "10.0.0.3:8080.19999"
		a5 = "10.0.0.5:8080.18080"
	)
	for _, tc := range []struct {
		name           string
		nodes          []*node // nil: nodes()
		volume         uint32  // 0: 5
		source, target string
		moves          []*fsmpb.Move // earlier attempts' moves, oldest first (a retry)
		wantSrc        string
		wantDst        string
		wantErr        string
	}{
		{name: "by server id", source: "vs1", target: "vs3", wantSrc: a1, wantDst: a3},
		{name: "by HTTP address", source: "10.0.0.1:8080", target: "10.0.0.3:8080", wantSrc: a1, wantDst: a3},
		{name: "by SeaweedFS address", source: a1, target: a3, wantSrc: a1, wantDst: a3},
		{name: "by gRPC address", source: "10.0.0.1:18080", target: "10.0.0.3:19999", wantSrc: a1, wantDst: a3},
		{name: "mixed forms", source: "vs2", target: a5, wantSrc: a2, wantDst: a5},
		{name: "neither: fullest holder to emptiest non-holder", wantSrc: a1, wantDst: a5},
		{name: "source only", source: "vs2", wantSrc: a2, wantDst: a5},
		{name: "target only", target: "vs3", wantSrc: a1, wantDst: a3},
		{name: "ties: lowest ids", volume: 1, nodes: []*node{
			srv(sid(1), 8, v(1, 10)), srv(sid(2), 8, v(1, 10)), srv(sid(3), 8), srv(sid(4), 8)},
			wantSrc: swa(1), wantDst: swa(3)},
		{name: "source lacks the volume", source: "vs3", target: "vs5", wantErr: "not found on source"},
		{name: "unknown source", source: "10.9.9.9:8080", target: "vs5", wantErr: "not in the topology"},
		{name: "unknown target", source: "vs1", target: "10.9.9.9:8080", wantErr: "not in the topology"},
		{name: "target already holds it", source: "vs1", target: "vs2", wantErr: "already holds"},
		{name: "target is the source", source: "vs1", target: a1, wantErr: "already holds"},
		{name: "target has no free slot", source: "vs1", target: "vs4", wantErr: "no free volume slot"},
		{name: "target with free slots used by EC shards", volume: 1, nodes: []*node{
			srv(sid(1), 8, v(1, 10)), srv(sid(2), 8).WithFree(0).Shards(60, allShards()...)},
			target: sid(2), wantErr: "no free volume slot"},
		{name: "every server holds it", volume: 1, nodes: []*node{
			srv(sid(1), 8, v(1, 10)), srv(sid(2), 8, v(1, 10))}, wantErr: "no server without a replica"},
		// A retry whose abandoned attempt's copy on its target is listed
		// while that attempt's source still holds the volume.
		{name: "retry: target holds the earlier attempt's copy", source: "vs1", target: "vs2", moves: []*fsmpb.Move{{Source: a1, Target: a2}}, wantSrc: a1, wantDst: a2},
		{name: "retry: neither named, back to the earlier move", moves: []*fsmpb.Move{{Source: a1, Target: a2}}, wantSrc: a1, wantDst: a2},
		{name: "retry: the earlier copy is never the source", moves: []*fsmpb.Move{{Source: a2, Target: a1}}, wantSrc: a2, wantDst: a1},
		{name: "retry: an earlier target without the volume changes nothing", source: "vs1", target: "vs3", moves: []*fsmpb.Move{{Source: a1, Target: a5}}, wantSrc: a1, wantDst: a3},
		{name: "retry: another holder is not the earlier target", source: "vs1", target: "vs2", moves: []*fsmpb.Move{{Source: a1, Target: a3}}, wantErr: "already holds"},
		{name: "retry: the newest landed move decides", moves: []*fsmpb.Move{{Source: a1, Target: a5}, {Source: a2, Target: a1}}, wantSrc: a2, wantDst: a1},
		{name: "retry: the earlier copy from another source than named", source: "vs2", target: "vs1", moves: []*fsmpb.Move{{Source: a1, Target: a2}}, wantErr: "not the move asked for"},
		// rp 001 on vs1, vs2 plus the earlier copy on vs3 from vs1: deleting
		// vs1 leaves two; with only vs1 and the copy (one replica lost
		// meanwhile), deleting vs1 would leave one of two.
		{name: "retry: adopt keeps the placement's copies", volume: 1, nodes: []*node{
			srv(sid(1), 8, vrp(1, 10, 1)), srv(sid(2), 8, vrp(1, 10, 1)), srv(sid(3), 8, vrp(1, 10, 1)), srv(sid(4), 8)},
			moves: []*fsmpb.Move{{Source: swa(1), Target: swa(3)}}, wantSrc: swa(1), wantDst: swa(3)},
		{name: "retry: adopt never below the placement", volume: 1, nodes: []*node{
			srv(sid(1), 8, vrp(1, 10, 1)), srv(sid(3), 8, vrp(1, 10, 1)), srv(sid(4), 8)},
			moves: []*fsmpb.Move{{Source: swa(1), Target: swa(3)}}, wantErr: "fewer than the 2 copies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.nodes
			if ns == nil {
				ns = nodes()
			}
			id := tc.volume
			if id == 0 {
				id = 5
			}
			topo := build(100, ns...)
			task := &fsmpb.Task{Id: 9, Type: balanceT, VolumeId: id, Source: tc.source, Target: tc.target, Fence: 4, EarlierMoves: tc.moves}
			if tc.moves != nil {
				task.Attempt = 2
			}
			spec, err := PlanSpec(task, topo, DefaultThresholds())
			if tc.wantErr != "" {
				if !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), tc.wantErr) {
					t.Fatalf("PlanSpec = %v, %v; want an ErrPlan saying %q", spec, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanSpec: %v", err)
			}
			if spec.Source != tc.wantSrc || spec.Target != tc.wantDst {
				t.Fatalf("move %s -> %s, want %s -> %s", spec.Source, spec.Target, tc.wantSrc, tc.wantDst)
			}
			if spec.Task != task || task.Source != tc.source || task.Target != tc.target {
				t.Errorf("PlanSpec changed or replaced the task: %v", spec.Task)
			}
			var replicas []string
			for _, r := range topo.Volumes[id].Replicas {
				replicas = append(replicas, r.Server.Addr.String())
			}
			if !reflect.DeepEqual(spec.Replicas, replicas) {
				t.Errorf("Replicas = %v, want %v", spec.Replicas, replicas)
			}
		})
	}
}

// TestDetectThenPlan runs every balance proposal Detect makes on a range of
// two- to five-server layouts through PlanSpec: detection and planning must
// agree on what is movable, or a refused task is created on every poll.
func TestDetectThenPlan(t *testing.T) {
	layouts := 0
	for servers := 2; servers <= 5; servers++ {
		for seed := 0; seed < 40; seed++ {
			var ns []*node
			next := uint32(1)
			for i := 1; i <= servers; i++ {
				slots := int64(4 + (seed*7+i*3)%9)
				count := (seed*5 + i*11) % int(slots+1)
				vols := fillers(next, count)
				next += uint32(count)
				n := srv(sid(i), slots, vols...)
				if (seed+i)%4 == 0 {
					// Some slots taken by EC shards: fewer free slots than max-count.
					n.WithFree(max(0, slots-int64(count)-int64((seed+i)%3)))
				}
				ns = append(ns, n)
			}
			topo := build(100, ns...)
			props := Detect(topo, idle, nil, DefaultThresholds(), now)
			assertPlannable(t, topo, props)
			layouts++
		}
	}
	if testing.Verbose() {
		t.Logf("%d layouts", layouts)
	}
}

// TestPlanSpecErasureCodingLeftovers: a retry's spec names, besides its own
// plan, the servers of earlier attempts and every server the master lists
// with shards of the volume (leftovers of an abandoned attempt, which the
// executor sweeps), and the assignment records the servers the spec may
// create data on. Shards on a server no earlier attempt used are not the
// task's: it is refused, never swept, first attempt or retry.
func TestPlanSpecErasureCodingLeftovers(t *testing.T) {
	topo := build(100,
		srv(sid(1), 10, v(1, 100)), srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10),
		srv(sid(5), 0).WithFree(0).Shards(1, 3, 4), srv(sid(6), 0).WithFree(0).Shards(1, 7))
	for _, earlier := range [][]string{nil, {swa(5), swa(4)}} {
		task := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 2, EarlierServers: earlier}
		_, err := PlanSpec(task, topo, DefaultThresholds())
		if !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), "already has EC shards on") || !contains(err.Error(), swa(6)) || (earlier != nil) == contains(err.Error(), swa(5)) {
			t.Errorf("earlier %v: PlanSpec = %v; want a refusal naming %s (and %s unless an earlier attempt used it)", earlier, err, swa(6), swa(5))
		}
	}
	// An earlier server missing from the topology may hold an original
	// the topology does not show while it lists fewer replicas than the
	// placement asks for: the retry waits for it.
	away := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 2, EarlierServers: []string{swa(5), sid(6), swa(9)}}
	short := build(100,
		srv(sid(1), 10, vrp(1, 100, 1)), srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10),
		srv(sid(5), 0).WithFree(0).Shards(1, 3, 4), srv(sid(6), 0).WithFree(0).Shards(1, 7))
	if spec, err := PlanSpec(away, short, DefaultThresholds()); !errors.Is(err, placement.ErrPlanWait) ||
		!contains(err.Error(), "earlier server "+swa(9)+" is missing", "if "+swa(9)+" is gone for good, cancel this task and submit a new one") {
		t.Fatalf("earlier server %s away, 1 of 2 replicas listed: PlanSpec = %v, %v; want an ErrPlanWait", swa(9), spec, err)
	}
	// With every copy the placement asks for listed, the absent server
	// (a dead shard target, the usual reason an attempt fails) holds no
	// original the encode needs: the retry is planned, naming it for the
	// worker to ask, instead of waiting for a server that may never return.
	if spec, err := PlanSpec(away, topo, DefaultThresholds()); err != nil || !slices.Contains(spec.EarlierServers, swa(9)) || len(spec.ShardTargets) != placement.TotalShards {
		t.Fatalf("earlier server %s away, every replica listed: PlanSpec = %v, %v; want a plan naming it among the earlier servers", swa(9), spec, err)
	}
	task := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 2, EarlierServers: []string{swa(5), sid(6), swa(4)}}
	spec, err := PlanSpec(task, topo, DefaultThresholds())
	if err != nil {
		t.Fatalf("PlanSpec: %v", err)
	}
	if want := []string{swa(5), swa(6)}; !reflect.DeepEqual(spec.EcShardHolders, want) {
		t.Errorf("EcShardHolders = %v, want %v", spec.EcShardHolders, want)
	}
	if !reflect.DeepEqual(spec.EarlierServers, task.EarlierServers) {
		t.Errorf("EarlierServers = %v, want %v", spec.EarlierServers, task.EarlierServers)
	}
	if want := addrOf(1, 2, 3, 4); !reflect.DeepEqual(SpecServers(spec), want) {
		t.Errorf("SpecServers = %v, want %v", SpecServers(spec), want)
	}
	move := &pb.TaskSpec{Task: &fsmpb.Task{Type: balanceT}, Replicas: []string{swa(1)}, Source: swa(1), Target: swa(2)}
	if want := []string{swa(1), swa(2)}; !reflect.DeepEqual(SpecServers(move), want) {
		t.Errorf("SpecServers(move) = %v, want %v", SpecServers(move), want)
	}
	if m := SpecMove(move); m.GetSource() != swa(1) || m.GetTarget() != swa(2) {
		t.Errorf("SpecMove(move) = %v", m)
	}
	if got := SpecServers(&pb.TaskSpec{Task: &fsmpb.Task{Type: vacuumT}, Replicas: []string{swa(1)}}); len(got) != 0 {
		t.Errorf("SpecServers(vacuum) = %v, want none", got)
	}
}

// TestPlanSpecBalanceEarlierServersAbsent: a retried move is not judged
// while a server of an earlier attempt is missing from the topology. An
// earlier target that is away may hold a copy that comes back stale after a
// move elsewhere deleted the source; an earlier source that is away (a
// restart) has not deleted its replica. Either way the plan waits
// (ErrPlanWait, retryable) instead of moving or reporting done. A finished
// move whose volume is read-only (its copy left frozen) is sent again, for
// its executor to unfreeze the copy.
func TestPlanSpecBalanceEarlierServersAbsent(t *testing.T) {
	const gone = "10.0.0.9:8080.18080" // in no topology
	for _, tc := range []struct {
		name             string
		nodes            []*node
		source, target   string
		moves            []*fsmpb.Move
		wantWait         string // an placement.ErrPlanWait saying this
		wantDone         bool   // an *AlreadyDone
		wantSrc, wantDst string
	}{
		{name: "earlier target away, neither named", moves: []*fsmpb.Move{{Source: swa(1), Target: gone}},
			nodes:    []*node{srv(sid(1), 8, v(1, 10)), srv(sid(2), 8), srv(sid(3), 8)},
			wantWait: "waiting for earlier move target " + gone},
		{name: "earlier target away, both named", source: sid(1), target: sid(2), moves: []*fsmpb.Move{{Source: swa(1), Target: gone}},
			nodes:    []*node{srv(sid(1), 8, v(1, 10)), srv(sid(2), 8), srv(sid(3), 8)},
			wantWait: "waiting for earlier move target " + gone},
		{name: "an older target away behind a landed move", moves: []*fsmpb.Move{{Source: swa(1), Target: gone}, {Source: swa(1), Target: swa(2)}},
			nodes:    []*node{srv(sid(2), 8, v(1, 10)), srv(sid(1), 8), srv(sid(3), 8)},
			wantWait: "waiting for earlier move target " + gone},
		{name: "landed move, source away (restarting), not done", moves: []*fsmpb.Move{{Source: gone, Target: swa(2)}},
			nodes:    []*node{srv(sid(2), 8, v(1, 10)), srv(sid(3), 8)},
			wantWait: "waiting for earlier move source " + gone},
		{name: "landed move, source present without it: done", moves: []*fsmpb.Move{{Source: swa(1), Target: swa(2)}},
			nodes:    []*node{srv(sid(1), 8), srv(sid(2), 8, v(1, 10)), srv(sid(3), 8)},
			wantDone: true},
		{name: "landed move, copy read-only: sent again to finish", moves: []*fsmpb.Move{{Source: swa(1), Target: swa(2)}},
			nodes:   []*node{srv(sid(1), 8), srv(sid(2), 8, v(1, 10).ReadOnly()), srv(sid(3), 8)},
			wantSrc: swa(1), wantDst: swa(2)},
		{name: "every earlier server present: planned as before", moves: []*fsmpb.Move{{Source: swa(1), Target: swa(3)}},
			nodes:   []*node{srv(sid(1), 8, v(1, 10)), srv(sid(2), 8, v(2, 10)), srv(sid(3), 8)},
			wantSrc: swa(1), wantDst: swa(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &fsmpb.Task{Id: 9, Type: balanceT, VolumeId: 1, Source: tc.source, Target: tc.target, Fence: 4, Attempt: 2, EarlierMoves: tc.moves}
			spec, err := PlanSpec(task, build(100, tc.nodes...), DefaultThresholds())
			var done *AlreadyDone
			switch {
			case tc.wantWait != "":
				if !errors.Is(err, placement.ErrPlanWait) || errors.Is(err, placement.ErrPlan) || !contains(err.Error(), tc.wantWait, "or cancel the task") {
					t.Fatalf("PlanSpec = %v, %v; want an ErrPlanWait saying %q", spec, err, tc.wantWait)
				}
			case tc.wantDone:
				if !errors.As(err, &done) {
					t.Fatalf("PlanSpec = %v, %v; want AlreadyDone", spec, err)
				}
			default:
				if err != nil {
					t.Fatalf("PlanSpec: %v", err)
				}
				if spec.Source != tc.wantSrc || spec.Target != tc.wantDst {
					t.Fatalf("move %s -> %s, want %s -> %s", spec.Source, spec.Target, tc.wantSrc, tc.wantDst)
				}
			}
		})
	}
}

// A retried erasure coding whose volume the master lists as EC-only, with
// every holder an earlier server, gets a finish spec (whether the master
// lists all 14 shards or fewer): no replica, no target, the holders and
// the earlier servers, for the worker to finish an earlier attempt that
// deleted the originals. Not a first attempt, nor shards where no earlier
// attempt of the task was.
func TestPlanSpecErasureCodingFinish(t *testing.T) {
	first13 := allShards()[:13]
	for _, tc := range []struct {
		name        string
		nodes       []*node
		attempt     uint32
		earlier     []string
		wantHolders []string // a finish spec with these holders
		want        string   // else an ErrPlan saying this
		wantWait    string   // or an ErrPlanWait saying this
	}{
		{name: "retry, holders are earlier servers: finish",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13[:5]...), srv(sid(2), 8).Shards(5, first13[5:9]...), srv(sid(3), 8).Shards(5, first13[9:]...), srv(sid(4), 8)},
			attempt: 2, earlier: addrOf(1, 2, 3, 4), wantHolders: addrOf(1, 2, 3)},
		{name: "retry, an earlier server missing from the topology: wait (it may hold an original)",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13[:5]...), srv(sid(2), 8).Shards(5, first13[5:9]...), srv(sid(3), 8).Shards(5, first13[9:]...)},
			attempt: 2, earlier: addrOf(1, 2, 3, 4), wantWait: "earlier server " + addrOf(4)[0] + " is missing"},
		{name: "requeued after a plan wait, never ran (no history): already erasure coded",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13[:7]...), srv(sid(2), 8).Shards(5, first13[7:]...)},
			attempt: 3, want: "already erasure coded"},
		{name: "ctl task retry (attempt 1, history): finish",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13[:7]...), srv(sid(2), 8).Shards(5, first13[7:]...)},
			attempt: 1, earlier: addrOf(1, 2), wantHolders: addrOf(1, 2)},
		{name: "first attempt: already erasure coded",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13...), srv(sid(2), 8)},
			attempt: 1, want: "already erasure coded"},
		{name: "a holder no earlier attempt used: already erasure coded",
			nodes:   []*node{srv(sid(1), 8).Shards(5, first13[:7]...), srv(sid(2), 8).Shards(5, first13[7:]...)},
			attempt: 3, earlier: addrOf(1), want: "already erasure coded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &fsmpb.Task{Id: 9, Type: ecT, VolumeId: 5, Attempt: tc.attempt, Fence: 4, EarlierServers: tc.earlier}
			spec, err := PlanSpec(task, build(100, tc.nodes...), DefaultThresholds())
			if tc.wantWait != "" {
				if !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), tc.wantWait) {
					t.Fatalf("PlanSpec = %v, %v; want an ErrPlanWait saying %q", spec, err, tc.wantWait)
				}
				return
			}
			if tc.want != "" {
				if !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), tc.want) {
					t.Fatalf("PlanSpec = %v, %v; want an ErrPlan saying %q", spec, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanSpec: %v", err)
			}
			if len(spec.Replicas) != 0 || len(spec.ShardTargets) != 0 || !reflect.DeepEqual(spec.EcShardHolders, tc.wantHolders) || !reflect.DeepEqual(spec.EarlierServers, tc.earlier) || spec.Task != task {
				t.Fatalf("finish spec: replicas %v, targets %v, holders %v, earlier %v; want none, none, %v, %v", spec.Replicas, spec.ShardTargets, spec.EcShardHolders, spec.EarlierServers, tc.wantHolders, tc.earlier)
			}
			if s := SpecServers(spec); len(s) != 0 {
				t.Errorf("a finish spec records servers %v for its attempt, want none", s)
			}
		})
	}
}

// A task whose volume the topology does not list waits while the topology
// was asked for before the task's submission (the submitter saw a newer
// one), and fails as unknown only on a topology asked for after it, or of
// unknown age.
func TestPlanSpecWaitsForTopologyNewerThanTheTask(t *testing.T) {
	topo := build(100, srv(sid(1), 10, v(1, 100)), srv(sid(2), 10))
	created := now.UnixNano()
	for _, tc := range []struct {
		name  string
		typ   fsmpb.TaskType
		vid   uint32
		asked time.Time
		wait  bool
	}{
		{"vacuum, topology older than the task", vacuumT, 7, now.Add(-time.Second), true},
		{"EC, topology older than the task", ecT, 7, now.Add(-time.Second), true},
		{"balance, topology older than the task", balanceT, 7, now.Add(-time.Second), true},
		{"topology asked for just after the task, within the clock skew margin", vacuumT, 7, now.Add(ClockSkewMargin - time.Millisecond), true},
		{"topology asked for after the task and the margin", vacuumT, 7, now.Add(ClockSkewMargin + time.Millisecond), false},
		{"topology of unknown age", vacuumT, 7, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &fsmpb.Task{Id: 3, Type: tc.typ, VolumeId: tc.vid, Attempt: 1, CreatedAt: created}
			spec, err := PlanSpecAsOf(task, topo, tc.asked, DefaultThresholds())
			if tc.wait {
				if !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), "not in the master's topology yet") {
					t.Fatalf("PlanSpecAsOf = %v, %v; want an ErrPlanWait", spec, err)
				}
				return
			}
			if !errors.Is(err, placement.ErrPlan) || !contains(err.Error(), "volume 7 not found") {
				t.Fatalf("PlanSpecAsOf = %v, %v; want ErrPlan: not found", spec, err)
			}
		})
	}
	// A listed volume plans the same whatever the topology's age.
	task := &fsmpb.Task{Id: 4, Type: vacuumT, VolumeId: 1, Attempt: 1, CreatedAt: created}
	if _, err := PlanSpecAsOf(task, topo, now.Add(-time.Second), DefaultThresholds()); err != nil {
		t.Fatalf("listed volume, old topology: %v", err)
	}
}

// TestPlanSpecErasureCodingReplicaMissing: a first attempt is not planned
// while the master lists fewer replicas than the volume's placement asks
// for: the unlisted copy would be neither encoded nor deleted, and would
// come back writable beside the EC volume. A retry is planned (an earlier
// attempt may have deleted originals; its executor asks every earlier
// server for one).
func TestPlanSpecErasureCodingReplicaMissing(t *testing.T) {
	one := build(100, srv(sid(1), 10, vrp(1, 100, 1)), srv(sid(2), 10), srv(sid(3), 10), srv(sid(4), 10))
	first := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 1}
	if spec, err := PlanSpec(first, one, DefaultThresholds()); !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), "replica missing from the master's topology", "1 of the 2 copies") {
		t.Fatalf("first attempt, 1 of 2 replicas listed: PlanSpec = %v, %v; want an ErrPlanWait", spec, err)
	}
	retry := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 2, EarlierServers: addrOf(1, 2, 3, 4)}
	if _, err := PlanSpec(retry, one, DefaultThresholds()); err != nil {
		t.Fatalf("retry, 1 of 2 replicas listed: %v, want a plan", err)
	}
	// A cluster without history (a rolling upgrade): every requeue counts
	// an attempt, plan waits included, so after one wait the first
	// attempt is attempt 2. It never started: it still waits for the
	// missing replica (it is no retry, and no earlier server is asked).
	waited := &fsmpb.Task{Id: 3, Type: ecT, VolumeId: 1, Fence: 7, Attempt: 2}
	if spec, err := planSpec(waited, one, time.Time{}, DefaultThresholds(), false, false); !errors.Is(err, placement.ErrPlanWait) || !contains(err.Error(), "replica missing from the master's topology") {
		t.Fatalf("no history, attempt 2 after a plan wait, 1 of 2 replicas listed: planSpec = %v, %v; want an ErrPlanWait", spec, err)
	}
	// One whose attempt started is a retry, planned as one.
	waited.StartedAt = now.UnixNano()
	if _, err := planSpec(waited, one, time.Time{}, DefaultThresholds(), false, false); err != nil {
		t.Fatalf("no history, an attempt started, 1 of 2 replicas listed: %v, want a plan", err)
	}
	both := build(100, srv(sid(1), 10, vrp(1, 100, 1)), srv(sid(2), 10, vrp(1, 100, 1)), srv(sid(3), 10), srv(sid(4), 10))
	if spec, err := PlanSpec(first, both, DefaultThresholds()); err != nil || len(spec.Replicas) != 2 {
		t.Fatalf("first attempt, both replicas listed: %v, %v; want a plan naming both", spec, err)
	}
}

// TestPlanSpecCollection: a task that names no collection (a manual
// submit without --collection) is planned with the volume's own, which
// SeaweedFS's EC and copy RPCs need; one that names another collection is
// refused in one sentence; the task in the state is not changed.
func TestPlanSpecCollection(t *testing.T) {
	topo := build(100,
		srv(sid(1), 10, v(7, 5000).In("pics").Garbage(2000)),
		srv(sid(2), 10, v(7, 5000).In("pics").Garbage(2000)),
		srv(sid(3), 10), srv(sid(4), 10), srv(sid(5), 10))
	for _, typ := range []fsmpb.TaskType{vacuumT, ecT, balanceT} {
		task := &fsmpb.Task{Id: 1, Type: typ, VolumeId: 7, Fence: 3}
		spec, err := PlanSpec(task, topo, DefaultThresholds())
		if err != nil {
			t.Fatalf("%s without a collection: %v", typ, err)
		}
		if spec.Task.Collection != "pics" || spec.Task.Fence != 3 || spec.Task.Id != 1 {
			t.Errorf("%s: spec task %v, want the task with collection pics", typ, spec.Task)
		}
		if task.Collection != "" {
			t.Errorf("%s: planning changed the task itself: %v", typ, task)
		}

		same := &fsmpb.Task{Id: 2, Type: typ, VolumeId: 7, Collection: "pics"}
		if spec, err := PlanSpec(same, topo, DefaultThresholds()); err != nil || spec.Task != same {
			t.Errorf("%s with the right collection: %v (spec task %p, want the task as given)", typ, err, spec.GetTask())
		}

		wrong := &fsmpb.Task{Id: 3, Type: typ, VolumeId: 7, Collection: "docs"}
		_, err = PlanSpec(wrong, topo, DefaultThresholds())
		var pe *placement.PlanError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), `is in collection "pics", not "docs"`) {
			t.Errorf("%s with another collection: %v, want a plan error naming both", typ, err)
		}
	}
}
