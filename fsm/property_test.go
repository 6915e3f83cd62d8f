package fsm

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

const (
	propSeeds = 200
	propSteps = 300
)

// TestPropertyRandomLogs replays random command sequences (valid, invalid,
// stale, unknown) and checks, after every command, checkInvariants plus the
// per-command checks of checker.step: refusals change nothing, only Legal
// moves happen, terminal tasks stay frozen, stale fences are never accepted,
// reports naming another worker than their attempt's are refused (from
// command version 3).
func TestPropertyRandomLogs(t *testing.T) {
	seeds := propSeeds
	if testing.Short() {
		seeds = 30
	}
	transitions := map[[2]fsmpb.TaskState]int{}
	codes := map[fsmpb.ErrorCode]int{}
	maxTasks, pruned := 0, 0
	for seed := range seeds {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			g, s := newGen(uint64(seed)), NewState()
			c := newChecker(t, s, 20)
			for i := range propSteps {
				cmd := g.next(s)
				// Through the wire format, as from the raft log.
				dec, err := Decode(rawBytes(t, cmd))
				if err != nil {
					t.Fatal(err)
				}
				g.learn(c.step(s, uint64(i+1), dec))
			}
			for k, n := range c.transitions {
				transitions[k] += n
			}
			for k, n := range c.codes {
				codes[k] += n
			}
			maxTasks = max(maxTasks, len(s.tasks))
			pruned += c.pruned
		})
		if !ok {
			t.Fatalf("seed %d failed; rerun with -run 'TestPropertyRandomLogs/seed=%d$'", seed, seed)
		}
	}
	// The generator must actually exercise the machine: every legal move and
	// every error code, many times.
	for from, tos := range map[fsmpb.TaskState][]fsmpb.TaskState{
		pending: {assigned, cancelled}, assigned: {running, failed, pending, cancelled}, running: {completed, failed, pending, cancelled},
	} {
		for _, to := range tos {
			if n := transitions[[2]fsmpb.TaskState{from, to}]; n < 10 {
				t.Errorf("transition %s -> %s seen only %d times", StateName(from), StateName(to), n)
			}
		}
	}
	for _, code := range []fsmpb.ErrorCode{codeNone, codeInvalid, codeNotFnd, codeIllegal, codeStale, codeOwner, codeBusy, codeVersion} {
		if codes[code] < 10 {
			t.Errorf("result code %v seen only %d times", code, codes[code])
		}
	}
	if pruned < 10 {
		t.Errorf("only %d tasks were pruned", pruned)
	}
	t.Logf("transitions %v; %d tasks pruned", transitions, pruned)
	t.Logf("codes %v; largest state %d tasks", codes, maxTasks)
}

// TestDeterminismSameLog: two fresh states fed the same log give the same
// results and the same Hash after every entry.
func TestDeterminismSameLog(t *testing.T) {
	for seed := uint64(1000); seed < 1020; seed++ {
		log := randomLog(t, seed, propSteps)
		a, b := NewState(), NewState()
		for i, e := range log {
			ca, _ := Decode(e)
			cb, _ := Decode(e)
			ra, rb := a.Apply(uint64(i+1), ca), b.Apply(uint64(i+1), cb)
			if !proto.Equal(ra, rb) {
				t.Fatalf("seed %d entry %d: results differ: %v vs %v", seed, i+1, ra, rb)
			}
		}
		if a.Hash() != b.Hash() {
			t.Fatalf("seed %d: hashes differ", seed)
		}
		if len(a.tasks) == 0 {
			t.Fatalf("seed %d: empty state", seed)
		}
	}
	// And the hash actually depends on the content.
	a, b := NewState(), NewState()
	if a.Hash() != b.Hash() {
		t.Fatalf("empty states differ")
	}
	c := submitCmd(vacuum, 1)
	c.Version = CommandVersion
	a.Apply(1, c)
	if a.Hash() == b.Hash() {
		t.Fatalf("hash ignores a task")
	}
}

// TestSnapshotRoundTrip: at every 60th entry of a random log, snapshot →
// MarshalSnapshot → unmarshal → FromSnapshot gives an identical Hash, and
// applying the rest of the log to both the original and the restored state
// gives identical results, with equal hashes every 10 entries and at the end.
func TestSnapshotRoundTrip(t *testing.T) {
	for seed := uint64(2000); seed < 2008; seed++ {
		log := decodeAll(t, randomLog(t, seed, propSteps))
		for cut := 0; cut <= len(log); cut += 60 {
			orig := NewState()
			for i, c := range log[:cut] {
				orig.Apply(uint64(i+1), c)
			}
			b, err := MarshalSnapshot(orig.Snapshot())
			if err != nil {
				t.Fatal(err)
			}
			var snap fsmpb.StateSnapshot
			if err := proto.Unmarshal(b, &snap); err != nil {
				t.Fatal(err)
			}
			restored, err := FromSnapshot(&snap)
			if err != nil {
				t.Fatalf("seed %d cut %d: %v", seed, cut, err)
			}
			checkInvariants(t, restored)
			if restored.Hash() != orig.Hash() || restored.AppliedIndex() != orig.AppliedIndex() {
				t.Fatalf("seed %d cut %d: restored hash differs", seed, cut)
			}
			if b2, _ := MarshalSnapshot(restored.Snapshot()); string(b2) != string(b) {
				t.Fatalf("seed %d cut %d: snapshot encoding not canonical", seed, cut)
			}
			for i := cut; i < len(log); i++ {
				ra := orig.Apply(uint64(i+1), log[i])
				rb := restored.Apply(uint64(i+1), log[i])
				if !proto.Equal(ra, rb) {
					t.Fatalf("seed %d cut %d entry %d: results differ: %v vs %v", seed, cut, i+1, ra, rb)
				}
				if (i+1)%10 == 0 || i == len(log)-1 {
					if orig.Hash() != restored.Hash() {
						t.Fatalf("seed %d cut %d entry %d: hashes diverged", seed, cut, i+1)
					}
				}
			}
			checkInvariants(t, restored)
		}
	}
}

// TestSnapshotIsPointInTime: a snapshot taken from a state is unaffected by
// commands applied to the state afterwards (stored values are immutable).
func TestSnapshotIsPointInTime(t *testing.T) {
	log := decodeAll(t, randomLog(t, 7, propSteps))
	s := NewState()
	for i, c := range log[:150] {
		s.Apply(uint64(i+1), c)
	}
	snap := s.Snapshot()
	want := s.Hash()
	for i, c := range log[150:] {
		s.Apply(uint64(151+i), c)
	}
	if s.Hash() == want {
		t.Fatalf("log did not change the state")
	}
	st, err := FromSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hash() != want {
		t.Fatalf("snapshot changed after it was taken")
	}
}
