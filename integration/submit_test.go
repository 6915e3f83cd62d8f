package integration

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestSubmitRoundRobinAndDuplicates: submissions through any node (each ctl
// call given a single address, so followers must forward) each create one
// task; every node lists them all exactly once, linearizably and from its own
// state; resubmitting returns the existing task, and a conflicting type on a
// busy volume is refused with one sentence.
func TestSubmitRoundRobinAndDuplicates(t *testing.T) {
	c := startCluster(t, 3)
	types := []string{"vacuum", "erasure_coding", "balance"}
	const n = 60
	type want struct {
		typ string
		vol uint32
	}
	wants := make([]want, n)
	for i := range wants {
		wants[i] = want{typ: types[(i/3)%3], vol: uint32(100 + i)}
	}

	// Submission i goes through node i%3; one goroutine per node.
	got := make([]submitJSON, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range c.nodes {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < n; i += len(c.nodes) {
				sub, _, err := ctlJSONErr[submitJSON](t, "submit", c.nodes[k].GRPCAddr,
					"task", "submit", "--type", wants[i].typ, "--volume", strconv.Itoa(int(wants[i].vol)))
				got[i], errs[i] = sub, err
			}
		}(k)
	}
	wg.Wait()
	ids := map[uint64]int{}
	for i, sub := range got {
		if errs[i] != nil {
			t.Fatalf("submission %d through %s: %v", i, c.nodes[i%3].ID, errs[i])
		}
		if sub.ID == 0 || sub.Type != wants[i].typ || sub.VolumeID != wants[i].vol || sub.State != "pending" {
			t.Fatalf("submission %d (%s of volume %d) returned %+v", i, wants[i].typ, wants[i].vol, sub.taskJSON)
		}
		if sub.Existing == nil || *sub.Existing {
			t.Fatalf("first submission %d returned existing=%v, want false", i, sub.Existing)
		}
		if j, dup := ids[sub.ID]; dup {
			t.Fatalf("submissions %d and %d both got task id %d", j, i, sub.ID)
		}
		ids[sub.ID] = i
	}

	checkList := func(what string, tasks []taskJSON) string {
		if len(tasks) != n {
			return fmt.Sprintf("%s lists %d tasks, want %d", what, len(tasks), n)
		}
		seen := map[uint64]bool{}
		for _, tk := range tasks {
			if seen[tk.ID] {
				return fmt.Sprintf("%s lists task %d twice", what, tk.ID)
			}
			seen[tk.ID] = true
			i, ok := ids[tk.ID]
			if !ok {
				return fmt.Sprintf("%s lists unknown task %+v", what, tk)
			}
			if tk.Type != wants[i].typ || tk.VolumeID != wants[i].vol || tk.State != "pending" || tk.Attempt != 1 || tk.WorkerID != "" || tk.Error != "" {
				return fmt.Sprintf("%s lists task %d as %+v, want a pending %s of volume %d", what, tk.ID, tk, wants[i].typ, wants[i].vol)
			}
		}
		return ""
	}
	// Linearizable reads through every node (followers forward to the leader).
	for _, nd := range c.nodes {
		tasks := ctlJSON[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks")
		if msg := checkList("linearizable list via "+nd.ID, tasks); msg != "" {
			t.Fatal(msg)
		}
	}
	// Stale reads: each node's own state catches up.
	for _, nd := range c.nodes {
		eventually(t, nd.ID+"'s local state to hold every task", func() (bool, string) {
			tasks, _, err := ctlJSONErr[[]taskJSON](t, "tasks", nd.GRPCAddr, "tasks", "--stale")
			if err != nil {
				return false, err.Error()
			}
			msg := checkList("stale list via "+nd.ID, tasks)
			return msg == "", msg
		})
	}

	// Resubmissions through a different node return the first task.
	for _, i := range []int{0, 7, 23, 41, 59} {
		via := c.nodes[(i+1)%3]
		vol := strconv.Itoa(int(wants[i].vol))
		sub := ctlJSON[submitJSON](t, "submit", via.GRPCAddr, "task", "submit", "--type", wants[i].typ, "--volume", vol)
		if sub.ID != got[i].ID || sub.Existing == nil || !*sub.Existing || sub.Type != wants[i].typ || sub.VolumeID != wants[i].vol {
			t.Fatalf("resubmitting %s of volume %s via %s returned id %d existing %v, want id %d existing true", wants[i].typ, vol, via.ID, sub.ID, sub.Existing, got[i].ID)
		}
		// Human output: exit 0 and says it already existed, naming the task.
		res := ctl(t, c.nodes[(i+2)%3].GRPCAddr, "task", "submit", "--type", wants[i].typ, "--volume", vol)
		if res.Code != 0 || !strings.Contains(res.Stdout, "already") || !strings.Contains(res.Stdout, "task "+strconv.FormatUint(got[i].ID, 10)) {
			t.Fatalf("human resubmission of %s of volume %s: want exit 0 and a message that task %d already exists\n%s", wants[i].typ, vol, got[i].ID, res)
		}
		// A different type on the same busy volume is refused.
		other := types[(indexOf(types, wants[i].typ)+1)%3]
		res = ctl(t, via.GRPCAddr, "task", "submit", "--type", other, "--volume", vol)
		requireOneSentenceError(t, fmt.Sprintf("submitting %s for volume %s that has an active %s", other, vol, wants[i].typ), res)
		if !strings.Contains(res.Stderr, vol) {
			t.Errorf("refusal does not name volume %s: %q", vol, res.Stderr)
		}
	}

	// Nothing was created by the resubmissions or the refusals.
	tasks := ctlJSON[[]taskJSON](t, "tasks", c.nodes[2].GRPCAddr, "tasks")
	if msg := checkList("final list", tasks); msg != "" {
		t.Fatal(msg)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
