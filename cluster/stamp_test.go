package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestStampsNeverGoBack: the leader raises a command stamped earlier than
// one it proposed before to that stamp, so the times Apply records follow
// the log: a command stamped, then overtaken by another proposer's later
// one, must not record (say) a task created before the previous task of
// its volume finished. Deterministic first (stamps given out of order, one
// at a time and in a batch), then proposers racing; a command that cannot
// be read is refused, not appended.
func TestStampsNeverGoBack(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[c.waitLeader()].node
	ctx := context.Background()
	t0 := time.Now().UnixNano()
	at := func(vol uint32, now int64) []byte {
		b, err := fsm.Encode(now, submitCmd(vol, fsmpb.TaskType_TASK_TYPE_VACUUM))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	created := func(out any, err error) int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		res := out.(*fsmpb.ApplyResult)
		if e := fsm.ResultError(res); e != nil {
			t.Fatal(e)
		}
		return res.Task.CreatedAt
	}
	if got := created(n.Apply(ctx, at(1, t0+2e8))); got != t0+2e8 {
		t.Fatalf("volume 1 created at %d; want its own stamp %d", got, t0+2e8)
	}
	if got := created(n.Apply(ctx, at(2, t0))); got != t0+2e8 {
		t.Fatalf("volume 2, stamped %d after a command stamped %d, created at %d; want the earlier command's stamp", t0, t0+2e8, got)
	}
	outs, errs := n.ApplyMany(ctx, [][]byte{at(3, t0+3e8), at(4, t0+1e8)})
	if got := created(outs[0], errs[0]); got != t0+3e8 {
		t.Fatalf("volume 3 created at %d; want %d", got, t0+3e8)
	}
	if got := created(outs[1], errs[1]); got != t0+3e8 {
		t.Fatalf("volume 4 created at %d; want %d (raised, in the batch)", got, t0+3e8)
	}
	if _, err := n.Apply(ctx, []byte{0xff, 0xff}); err == nil {
		t.Fatal("an unreadable command was appended")
	}
	// A clock that stepped back (a jump forward corrected) is not pinned
	// at the wrong time: a stamp more than stampRaiseLimit behind is kept,
	// and the ones after it are raised only to it.
	back := t0 + 3e9 - int64(stampRaiseLimit) - 1
	if got := created(n.Apply(ctx, at(5, back))); got != back {
		t.Fatalf("volume 5, stamped %d after %d, created at %d; want its own stamp (the clock stepped back)", back, t0+3e8, got)
	}
	if got := created(n.Apply(ctx, at(6, back-10))); got != back {
		t.Fatalf("volume 6 created at %d; want %d", got, back)
	}

	// Racing proposers, each stamping with its own clock: in log order
	// (task ids) the creation times never go back.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				b, err := fsm.Encode(time.Now().UnixNano(), submitCmd(uint32(100+g*100+i), fsmpb.TaskType_TASK_TYPE_VACUUM))
				if err == nil {
					_, err = n.Apply(ctx, b)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var tasks []*fsmpb.Task
	c.nodes[0].fsm.Read(func(st *fsm.State) { tasks = st.Tasks(fsm.TaskFilter{}) })
	if len(tasks) != 106 {
		t.Fatalf("%d tasks; want 106", len(tasks))
	}
	tasks = tasks[6:] // the racing proposers' (after the steps above)
	for i := 1; i < len(tasks); i++ {
		if tasks[i].Id <= tasks[i-1].Id {
			t.Fatalf("tasks not listed in id order: %d after %d", tasks[i].Id, tasks[i-1].Id)
		}
		if tasks[i].CreatedAt < tasks[i-1].CreatedAt {
			t.Fatalf("task %d created at %d, before task %d before it in the log (%d)", tasks[i].Id, tasks[i].CreatedAt, tasks[i-1].Id, tasks[i-1].CreatedAt)
		}
	}
}
