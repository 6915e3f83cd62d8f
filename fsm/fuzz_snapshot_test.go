package fsm

import (
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeSnapshot decodes arbitrary bytes as a persisted snapshot and
// checks them as a restore does (DecodeSnapshot, then CheckCounters). It
// must never panic; a snapshot both accept must be a state that keeps every invariant, survives
// its own snapshot round trip with the same hash, and goes on applying
// commands: a submission either gets a fresh task id or is refused, never
// a reused or zero id. Run with: go test -fuzz=FuzzDecodeSnapshot ./fsm/
func FuzzDecodeSnapshot(f *testing.F) {
	s, _ := fuzzState(f)
	good, err := MarshalSnapshot(s.Snapshot())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	for _, next := range []uint64{1, 2, MaxCounter, math.MaxUint64 - 1, math.MaxUint64} {
		snap := s.Snapshot()
		snap.NextTaskId = next
		snap.Tasks, snap.CapacityChanges, snap.RetiredChanges = nil, nil, nil
		b, err := MarshalSnapshot(snap)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		st, snap, err := DecodeSnapshot(b)
		if err != nil || CheckCounters(snap, snap.AppliedIndex) != nil {
			return
		}
		checkInvariants(t, st)
		again, err := FromSnapshot(st.Snapshot())
		if err != nil {
			t.Fatalf("the snapshot of an accepted state is refused: %v", err)
		}
		if again.Hash() != st.Hash() {
			t.Fatalf("snapshot round trip changed the state's hash")
		}
		before := st.Hash()
		submit := submitCmd(balance, 1_000_001)
		submit.Version, submit.Now = CommandVersion, 3_000_000
		res := st.Apply(snap.AppliedIndex+1, submit)
		if res.ErrorCode != codeNone {
			if st.Hash() != before {
				t.Fatalf("a refused submission changed the state: %v", res)
			}
			return
		}
		id := res.GetTask().GetId()
		if id == 0 || id < snap.NextTaskId {
			t.Fatalf("submission got task id %d from a state whose next id was %d", id, snap.NextTaskId)
		}
		if _, err := FromSnapshot(st.Snapshot()); err != nil {
			t.Fatalf("the state after a submission no longer snapshots: %v", err)
		}
		_ = proto.Size(res)
		checkInvariants(t, st)
	})
}
