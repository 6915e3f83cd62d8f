package seaweed_test

import (
	"context"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/internal/simtest"
	"github.com/groundskeeper-dev/groundskeeper/seaweed/sim"
)

// TestIndexBeyond: a copy's index is a prefix of its source's until the
// copy takes a change of its own; a delete and a same-size overwrite count
// although the live needle set cannot show them. (The simulator lists an
// .idx's puts before its tombstones, so the volume starts without deletes
// for the source's later write to append in order.)
func TestIndexBeyond(t *testing.T) {
	t.Parallel()
	c := simtest.Start(t, sim.Config{Servers: 2})
	vid := simtest.Volume(t, c, sim.VolumeSpec{Size: 1 << 20, FileCount: 10, Servers: []int{0}})
	src, dst := c.Server(0).Address().String(), c.Server(1).Address().String()
	vc := simtest.VolumeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := vc.VolumeCopy(ctx, dst, vid, "", src, "", nil); err != nil {
		t.Fatal(err)
	}
	beyond := func(a, b string) int {
		t.Helper()
		n, err := vc.IndexBeyond(ctx, a, b, vid, "")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := beyond(dst, src); n != 0 {
		t.Fatalf("a fresh copy: %d entries beyond the source", n)
	}
	// The source takes a write: the copy is behind, still a prefix.
	if err := c.WriteTo(vid, src, 1<<10, 1); err != nil {
		t.Fatal(err)
	}
	if a, b := beyond(dst, src), beyond(src, dst); a != 0 || b != 1 {
		t.Fatalf("copy behind by one: copy beyond %d (want 0), source beyond %d (want 1)", a, b)
	}
	if err := vc.VolumeMarkReadonly(ctx, src, vid, false); err != nil {
		t.Fatal(err)
	}
	if err := c.OverwriteOn(vid, dst, 1); err != nil {
		t.Fatal(err)
	}
	if n := beyond(dst, src); n != 1 {
		t.Fatalf("copy after a same-size overwrite: %d entries beyond, want 1", n)
	}
	before, _ := vc.LiveNeedles(ctx, dst, vid, "")
	if err := c.DeleteDataOn(vid, dst, 1<<10, 1); err != nil {
		t.Fatal(err)
	}
	after, _ := vc.LiveNeedles(ctx, dst, vid, "")
	if n := beyond(dst, src); n != 2 {
		t.Fatalf("copy after an overwrite and a delete: %d entries beyond, want 2", n)
	}
	if gone, added := before.Diff(after); gone != 1 || added != 0 {
		t.Fatalf("the delete removed %d and added %d live needles", gone, added)
	}
}
