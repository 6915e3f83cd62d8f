// Package errtext bounds the error text a worker reports for an attempt:
// an outcome must never be refused for its length (the worker would
// re-send it on every reconnect), so both the worker and the leader cut
// it to MaxLen bytes instead.
package errtext

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds, in bytes, the error text of a reported outcome.
const MaxLen = 4096

// Truncate gives s as valid UTF-8 of at most limit bytes: unchanged if it
// fits, otherwise cut at a rune boundary and ended with a marker saying
// how many bytes were cut.
func Truncate(s string, limit int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	// The marker's length depends on the count it holds, which is at most
	// len(s): size it for that and keep what is left.
	m := len(marker(len(s)))
	if m > limit {
		m = 0 // no room for a marker: only cut
	}
	keep := limit - m
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	if m == 0 {
		return s[:keep]
	}
	return s[:keep] + marker(len(s)-keep)
}

func marker(cut int) string { return fmt.Sprintf("… (%d bytes cut)", cut) }
