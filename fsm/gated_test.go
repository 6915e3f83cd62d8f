package fsm

import (
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// checkGated proves cmd is gated at version want: written as want by a
// leader whose cluster agrees on CurrentVersion, applied at want, refused
// (INVALID, the state unchanged) when stamped want-1 as a build that
// predates it refuses it, and a build that stops at want-1 halts on it
// instead of applying it.
func checkGated(t *testing.T, name string, cmd *fsmpb.Command, want uint32) {
	t.Helper()
	b, err := EncodeAgreed(1, CurrentVersion, cmd)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Version != want {
		t.Fatalf("written as version %d; want %d", dec.Version, want)
	}
	if res := NewState().Apply(1, dec); res.ErrorCode != codeNone {
		t.Fatalf("version-%d %s refused: %s", want, name, res.Error)
	}
	old := NewState()
	dec.Version = want - 1
	before := contentKey(t, old)
	if res := old.Apply(1, dec); res.ErrorCode != fsmpb.ErrorCode_ERROR_CODE_INVALID {
		t.Fatalf("version-%d %s gave %v %q; want INVALID", want-1, name, res.ErrorCode, res.Error)
	}
	if contentKey(t, old) != before {
		t.Fatalf("refused version-%d %s changed the state", want-1, name)
	}
	f := NewWithVersion(want - 1)
	halted := false
	f.OnHalt(func(error) { halted = true })
	f.ApplyBatch([]Entry{{Index: 1, Command: true, Data: b}})
	if !halted {
		t.Fatalf("a version-%d build applied a version-%d %s", want-1, want, name)
	}
}
