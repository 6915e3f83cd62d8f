package capacity

import (
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// Query is what to project and against which topology.
type Query struct {
	Topology *seaweed.Topology
	// Index is Topology's server index (IndexServers); nil builds one for
	// this projection, a scan of every volume.
	Index *ServerIndex
	// Volumes (each from FindVolume) and Servers (each from FindServer)
	// to project, in the order to answer them.
	Volumes []*seaweed.Volume
	Servers []*seaweed.Server
	// Now is the caller's clock, dating the retired changes (those older
	// than fsm.RetiredKeep no longer count). It is read only when a
	// retired change is to be dated: most lookups have none, and a clock
	// read costs more than the rest of a one-volume lookup.
	Now func() time.Time
}

// Projection is the answer to a Query.
type Projection struct {
	// AppliedIndex is the state's applied index the projection read.
	AppliedIndex uint64
	Volumes      []*pb.VolumeCapacity // as Query.Volumes
	Servers      []*pb.ServerCapacity // as Query.Servers, without duplicates
}

// Project is the capacity oracle's projection, the one both its unary calls
// and its watch stream answer with. In one read of the state it takes each
// volume's active task and unreported changes and, when servers are asked
// for, every active task and unreported change; then, outside the state's
// lock, it projects each volume (projectVolume) and the servers
// (projectServers).
//
// Changes retired within fsm.RetiredKeep count too: the leader retired them
// on its own poll of the master, and this node's topology may not show them
// yet (both projections leave out what the topology reflects).
//
// f is taken as the concrete *fsm.FSM, not an interface: a read through an
// interface moves the closure and everything it captures to the heap, which
// doubles the cost of a one-volume lookup.
func Project(f *fsm.FSM, q Query) Projection {
	var out Projection
	active := make([]*fsmpb.Task, len(q.Volumes))
	var changes [][]*fsmpb.CapacityChange // by volume, nil when none has any
	var allActive []*fsmpb.Task
	var allChanges []*fsmpb.CapacityChange
	f.Read(func(st *fsm.State) {
		for i, v := range q.Volumes {
			active[i], _ = st.ActiveTask(v.ID)
			// From the state's per-volume index: no copy and sort of every
			// change when one volume has some.
			if st.HasUnreportedChange(v.ID) || st.HasRetiredChange(v.ID) {
				if changes == nil {
					changes = make([][]*fsmpb.CapacityChange, len(q.Volumes))
				}
				changes[i] = append(st.VolumeChanges(v.ID), fresh(st.RecentlyRetired(v.ID), q.Now)...)
			}
		}
		if len(q.Servers) > 0 {
			allActive = st.Tasks(fsm.TaskFilter{States: []fsmpb.TaskState{fsmpb.TaskState_TASK_STATE_PENDING, fsmpb.TaskState_TASK_STATE_ASSIGNED, fsmpb.TaskState_TASK_STATE_RUNNING}})
			allChanges = append(st.CapacityChanges(), fresh(st.RetiredChanges(), q.Now)...)
		}
		out.AppliedIndex = st.AppliedIndex()
	})
	out.Volumes = make([]*pb.VolumeCapacity, len(q.Volumes))
	for i, v := range q.Volumes {
		var cs []*fsmpb.CapacityChange
		if changes != nil {
			cs = changes[i]
		}
		out.Volumes[i] = projectVolume(q.Topology, v, active[i], cs)
	}
	if len(q.Servers) > 0 {
		idx := q.Index
		if idx == nil {
			idx = IndexServers(q.Topology)
		}
		out.Servers = projectServers(q.Topology, idx, q.Servers, allActive, allChanges)
	}
	return out
}

// fresh is freshRetired at now's time, read only if there are any.
func fresh(cs []*fsmpb.CapacityChange, now func() time.Time) []*fsmpb.CapacityChange {
	if len(cs) == 0 {
		return nil
	}
	return freshRetired(cs, now())
}

// freshRetired keeps the retired changes younger than fsm.RetiredKeep. The
// state forgets older ones only when the next retirement is applied, so on
// a quiet cluster they would otherwise linger (and a move later undone
// would be projected again).
func freshRetired(cs []*fsmpb.CapacityChange, now time.Time) []*fsmpb.CapacityChange {
	cut := now.UnixNano() - fsm.RetiredKeep
	out := cs[:0:0]
	for _, c := range cs {
		if c.RetiredAt >= cut {
			out = append(out, c)
		}
	}
	return out
}
