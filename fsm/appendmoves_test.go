package fsm

import (
	"fmt"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
)

// TestAppendMovesDedupes: a move repeated by many attempts is kept once,
// at its newest place, so it cannot push older distinct moves out of the
// MaxEarlierMoves window.
func TestAppendMovesDedupes(t *testing.T) {
	var l []*fsmpb.Move
	l = appendMoves(l, &fsmpb.Move{Source: "old:1.2", Target: "t0:1.2"})
	for i := 0; i < MaxEarlierMoves+5; i++ {
		l = appendMoves(l, &fsmpb.Move{Source: "s:1.2", Target: "t:1.2"})
	}
	l = appendMoves(l, &fsmpb.Move{Source: "old:1.2", Target: "t0:1.2"}, &fsmpb.Move{}, &fsmpb.Move{Source: "s:1.2", Target: "t:1.2"})
	got := fmt.Sprint(l)
	want := fmt.Sprint([]*fsmpb.Move{{Source: "old:1.2", Target: "t0:1.2"}, {Source: "s:1.2", Target: "t:1.2"}})
	if got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
}
