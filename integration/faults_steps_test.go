package integration

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// The fault harness's account of its work (issue 16): the tasks by type
// with their shares, and, per fault kind, how many rounds had a destructive
// step of a task running inside the fault's window. A step is classified
// from the simulator's op log, its task's type taken from the final task
// list.

// mixMinShare is the share of the tasks erasure coding, balance and repair
// (replicate and ec_rebuild together) must each reach; mixMinRounds the run length from which falling short is
// worth a warning.
const (
	mixMinShare  = 0.20
	mixMinRounds = 100
)

// destructiveStep is a step that destroys data if it comes too early.
type destructiveStep struct {
	name  string
	match func(o sim.Op, typ fsmpb.TaskType) bool
}

var destructiveSteps = []destructiveStep{
	{"ec delete originals", func(o sim.Op, typ fsmpb.TaskType) bool {
		return o.Method == "VolumeDelete" && typ == fsmpb.TaskType_TASK_TYPE_ERASURE_CODING
	}},
	{"move delete source", func(o sim.Op, typ fsmpb.TaskType) bool {
		return o.Method == "VolumeDelete" && typ == fsmpb.TaskType_TASK_TYPE_BALANCE
	}},
	{"vacuum commit", func(o sim.Op, _ fsmpb.TaskType) bool { return o.Method == "VacuumVolumeCommit" }},
	// The repairs (faults_loss_test.go): the copy that restores a replica
	// (its rollback deletes it), the shards gathered onto the rebuilder
	// (the simulator's op log does not record the regeneration itself),
	// and the gathered copies removed once all 14 are verified.
	{"replicate copy", func(o sim.Op, typ fsmpb.TaskType) bool {
		return o.Method == "VolumeCopy" && typ == fsmpb.TaskType_TASK_TYPE_REPLICATE
	}},
	{"rebuild gather", func(o sim.Op, typ fsmpb.TaskType) bool {
		return o.Method == "VolumeEcShardsCopy" && typ == fsmpb.TaskType_TASK_TYPE_EC_REBUILD
	}},
	{"rebuild drop gathered", func(o sim.Op, typ fsmpb.TaskType) bool {
		return o.Method == "VolumeEcShardsDelete" && typ == fsmpb.TaskType_TASK_TYPE_EC_REBUILD
	}},
}

// stepHits counts, by fault kind and step, the rounds whose fault window
// overlaps an operation of that step; a round counts once per step.
func stepHits(windows []faultWindow, ops []sim.Op, tasks []*fsmpb.Task) map[faultKind][]int {
	typeOf := map[string]fsmpb.TaskType{}
	for _, tk := range tasks {
		typeOf[strconv.FormatUint(tk.Id, 10)] = tk.Type
	}
	byStep := make([][]sim.Op, len(destructiveSteps))
	for _, o := range ops {
		for i, st := range destructiveSteps {
			if st.match(o, typeOf[o.TaskID]) {
				byStep[i] = append(byStep[i], o)
			}
		}
	}
	out := map[faultKind][]int{}
	for _, w := range windows {
		row := out[w.kind]
		if row == nil {
			row = make([]int, len(destructiveSteps))
			out[w.kind] = row
		}
		for i, list := range byStep {
			for _, o := range list {
				if !o.Start.After(w.to) && !o.End.Before(w.from) {
					row[i]++
					break
				}
			}
		}
	}
	return out
}

// taskMix is the tasks-by-type line, with shares, and a warning when a run
// of at least mixMinRounds rounds fell short of the mix issue 16 asks.
func taskMix(tasks []*fsmpb.Task, rounds int) (line, warning string) {
	n := map[fsmpb.TaskType]int{}
	for _, tk := range tasks {
		n[tk.Type]++
	}
	share := func(t fsmpb.TaskType) float64 {
		if len(tasks) == 0 {
			return 0
		}
		return float64(n[t]) / float64(len(tasks))
	}
	var parts []string
	for _, t := range []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE, fsmpb.TaskType_TASK_TYPE_VACUUM,
		fsmpb.TaskType_TASK_TYPE_REPLICATE, fsmpb.TaskType_TASK_TYPE_EC_REBUILD} {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", typeNames[t], n[t], 100*share(t)))
	}
	repair := share(fsmpb.TaskType_TASK_TYPE_REPLICATE) + share(fsmpb.TaskType_TASK_TYPE_EC_REBUILD)
	line = fmt.Sprintf("tasks by type: %s of %d; repair (replicate + ec_rebuild) %.1f%%", strings.Join(parts, ", "), len(tasks), 100*repair)
	var short []string
	for _, t := range []fsmpb.TaskType{fsmpb.TaskType_TASK_TYPE_ERASURE_CODING, fsmpb.TaskType_TASK_TYPE_BALANCE} {
		if share(t) < mixMinShare {
			short = append(short, fmt.Sprintf("%s %.1f%%", typeNames[t], 100*share(t)))
		}
	}
	if repair < mixMinShare {
		short = append(short, fmt.Sprintf("repair %.1f%%", 100*repair))
	}
	if rounds >= mixMinRounds && len(short) > 0 {
		warning = fmt.Sprintf("WARNING: work mix below the %.0f%% each issue 16 asks: %s", 100*mixMinShare, strings.Join(short, ", "))
	}
	return line, warning
}

// stepTable renders stepHits as a table, one row per fault kind in
// faultWeights order, with the rounds run and a total row.
func stepTable(windows []faultWindow, ops []sim.Op, tasks []*fsmpb.Task, rounds map[faultKind]int) string {
	hits := stepHits(windows, ops, tasks)
	var b strings.Builder
	fmt.Fprintf(&b, "  destructive steps inside the fault window (rounds hitting each step):\n")
	fmt.Fprintf(&b, "    %-26s %6s", "fault kind", "rounds")
	for _, st := range destructiveSteps {
		fmt.Fprintf(&b, " %20s", st.name)
	}
	b.WriteString("\n")
	total := make([]int, len(destructiveSteps))
	totalRounds := 0
	for _, w := range faultWeights {
		fmt.Fprintf(&b, "    %-26s %6d", w.kind, rounds[w.kind])
		totalRounds += rounds[w.kind]
		for i := range destructiveSteps {
			n := 0
			if row := hits[w.kind]; row != nil {
				n = row[i]
			}
			total[i] += n
			fmt.Fprintf(&b, " %20d", n)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "    %-26s %6d", "all", totalRounds)
	for _, n := range total {
		fmt.Fprintf(&b, " %20d", n)
	}
	b.WriteString("\n")
	return b.String()
}

// A round hits a step when one of the step's operations overlaps its
// window; a VolumeDelete is an EC step or a move step by its task's type.
func TestStepHitsClassifiesByTaskType(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tasks := []*fsmpb.Task{{Id: 1, Type: fsmpb.TaskType_TASK_TYPE_ERASURE_CODING}, {Id: 2, Type: fsmpb.TaskType_TASK_TYPE_BALANCE}, {Id: 3, Type: fsmpb.TaskType_TASK_TYPE_VACUUM},
		{Id: 4, Type: fsmpb.TaskType_TASK_TYPE_REPLICATE}, {Id: 5, Type: fsmpb.TaskType_TASK_TYPE_EC_REBUILD}}
	ops := []sim.Op{
		{Method: "VolumeDelete", TaskID: "1", Start: at(1), End: at(1)},
		{Method: "VolumeDelete", TaskID: "2", Start: at(5), End: at(5.1)},
		{Method: "VacuumVolumeCommit", TaskID: "3", Start: at(2.5), End: at(3.5)},
		{Method: "VolumeCopy", TaskID: "2", Start: at(0), End: at(9)},
		{Method: "VolumeCopy", TaskID: "4", Start: at(7.5), End: at(7.6)},
		{Method: "VolumeEcShardsDelete", TaskID: "5", Start: at(5.5), End: at(5.6)},
	}
	windows := []faultWindow{
		{kind: fkKillWorker, from: at(0.5), to: at(3)},   // EC delete and the commit
		{kind: fkKillWorker, from: at(0.9), to: at(1.1)}, // the EC delete again
		{kind: fkKillLeader, from: at(4), to: at(6)},     // the move's delete
		{kind: fkMasterOutage, from: at(7), to: at(8)},   // a move's copy and a replicate's
	}
	got := stepHits(windows, ops, tasks)
	want := map[faultKind][]int{fkKillWorker: {2, 0, 1, 0, 0, 0}, fkKillLeader: {0, 1, 0, 0, 0, 1}, fkMasterOutage: {0, 0, 0, 1, 0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stepHits = %v, want %v", got, want)
	}
	line, warning := taskMix(tasks, 100)
	if !strings.Contains(line, "erasure_coding 1 (20.0%)") || !strings.Contains(line, "repair (replicate + ec_rebuild) 40.0%") || warning != "" {
		t.Errorf("taskMix of an even mix: %q, warning %q", line, warning)
	}
	if _, warning := taskMix(tasks[1:3], 100); !strings.Contains(warning, "erasure_coding 0.0%") || !strings.Contains(warning, "repair 0.0%") {
		t.Errorf("taskMix without EC over 100 rounds: warning %q", warning)
	}
	if _, warning := taskMix(tasks[1:], 99); warning != "" {
		t.Errorf("taskMix of a short run warns: %q", warning)
	}
}
