package fsm

import "testing"

// TestStamp: a command at or past the floor comes back as it is, with the
// stamp its bytes carry (read without decoding, negative and zero stamps
// included); one below is re-encoded at the floor and nothing else in it
// changes; bytes that are not a command are an error.
func TestStamp(t *testing.T) {
	f := New()
	for _, now := range []int64{-5, 0, 1, 1_700_000_000_000_000_000} {
		b, err := Encode(now, submitCmd(vacuum, 7))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := peekNow(b); !ok || got != now {
			t.Fatalf("peekNow = %d, %v; want %d", got, ok, now)
		}
		out, stamp, err := f.Stamp(b, now)
		if err != nil || stamp != now || string(out) != string(b) {
			t.Fatalf("Stamp at its own time: %d, %v, changed %v", stamp, err, string(out) != string(b))
		}
		out, stamp, err = f.Stamp(b, now+10)
		if err != nil || stamp != now+10 {
			t.Fatalf("Stamp raised: %d, %v; want %d", stamp, err, now+10)
		}
		cmd, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Decode(b)
		want.Now = now + 10
		if cmd.String() != want.String() {
			t.Fatalf("raised command %v; want %v", cmd, want)
		}
	}
	for _, junk := range [][]byte{{0xff, 0xff}, {0x10}} {
		if _, _, err := f.Stamp(junk, 5); err == nil {
			t.Errorf("Stamp(%x) took bytes that are not a command", junk)
		}
	}
}
