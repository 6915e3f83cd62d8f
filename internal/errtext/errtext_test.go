package errtext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	if got := Truncate("short", 10); got != "short" {
		t.Fatalf("a text within the limit changed: %q", got)
	}
	long := strings.Repeat("é", 3000) // 6000 bytes, 2-byte runes
	for _, limit := range []int{MaxLen, MaxLen - 1, 100, 5} {
		got := Truncate(long, limit)
		if len(got) > limit || !utf8.ValidString(got) || !strings.HasSuffix(got, "bytes cut)") && limit >= 30 {
			t.Fatalf("limit %d: %d bytes, valid %v, ends %q", limit, len(got), utf8.ValidString(got), got[max(0, len(got)-20):])
		}
	}
	got := Truncate(long, 100)
	kept := got[:strings.Index(got, "…")]
	if got != kept+marker(len(long)-len(kept)) || !strings.HasPrefix(long, kept) {
		t.Fatalf("the marker does not count the bytes cut: %q", got)
	}
	if got := Truncate("a\xffb", 10); !utf8.ValidString(got) {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}
