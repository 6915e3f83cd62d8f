package sim

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Op is one mutating volume-server RPC as the server saw it.
type Op struct {
	VolumeID uint32
	Server   string // the volume server's id ("host:httpPort")
	Method   string // short method name, e.g. "VacuumVolumeCompact"
	// TaskID and Fence come from the "gk-task" metadata ("<taskID>/<fence>");
	// both are empty when the caller sent none.
	TaskID string
	Fence  string
	Start  time.Time // the handler started (after injected "before" latency)
	End    time.Time // the handler returned
	Err    string    // the handler's error, if any
}

func (o Op) String() string {
	task := "untagged"
	if o.TaskID != "" {
		task = o.TaskID + "/" + o.Fence
	}
	return fmt.Sprintf("%s(vol %d) on %s by %s [%s +%s]", o.Method, o.VolumeID, o.Server, task,
		o.Start.Format("15:04:05.000000"), o.End.Sub(o.Start))
}

// sameTask reports whether two operations belong to one task attempt.
func (o Op) sameTask(p Op) bool {
	return o.TaskID != "" && o.TaskID == p.TaskID && o.Fence == p.Fence
}

// Overlap is two operations on one volume, from different tasks (or
// untagged), whose time intervals overlap.
type Overlap struct {
	A, B Op
}

func (o Overlap) String() string { return o.A.String() + " overlaps " + o.B.String() }

type opLog struct {
	mu  sync.Mutex
	ops []Op
}

func (l *opLog) add(op Op) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
}

// OpLog returns every recorded operation in completion order.
func (c *Cluster) OpLog() []Op {
	c.ops.mu.Lock()
	defer c.ops.mu.Unlock()
	return append([]Op(nil), c.ops.ops...)
}

// ResetOpLog forgets the recorded operations.
func (c *Cluster) ResetOpLog() {
	c.ops.mu.Lock()
	c.ops.ops = nil
	c.ops.mu.Unlock()
}

// Overlaps checks the operation log: see FindOverlaps.
func (c *Cluster) Overlaps() []Overlap { return FindOverlaps(c.OpLog()) }

// FindOverlaps reports every pair of operations on the same volume whose
// intervals overlap (a.Start < b.End and b.Start < a.End) and that do not
// belong to the same task id and fence. An operation without task metadata
// belongs to no task, so it conflicts with any operation it overlaps.
func FindOverlaps(ops []Op) []Overlap {
	byVol := map[uint32][]Op{}
	for _, o := range ops {
		byVol[o.VolumeID] = append(byVol[o.VolumeID], o)
	}
	vids := make([]uint32, 0, len(byVol))
	for vid := range byVol {
		vids = append(vids, vid)
	}
	sort.Slice(vids, func(i, j int) bool { return vids[i] < vids[j] })
	var out []Overlap
	for _, vid := range vids {
		list := byVol[vid]
		sort.SliceStable(list, func(i, j int) bool { return list[i].Start.Before(list[j].Start) })
		for i := range list {
			for j := i + 1; j < len(list) && list[j].Start.Before(list[i].End); j++ {
				if list[i].Start.Before(list[j].End) && !list[i].sameTask(list[j]) {
					out = append(out, Overlap{A: list[i], B: list[j]})
				}
			}
		}
	}
	return out
}
