package seaweed

import (
	"encoding/binary"
	"runtime"
	"testing"
)

// TestIdxEntrySizeOf: the entry size follows SeaweedFS's build (util.Version
// starts with its size limit: 30GB default, 8000GB for 5BytesOffset); any
// other version is refused rather than guessed.
func TestIdxEntrySizeOf(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]int{"30GB 4.53 abc": 16, "8000GB 4.53 ": 17, "30GB": 16, "sim": 0, "": 0, "4.53 30GB": 0} {
		got, err := IdxEntrySizeOf(v)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("IdxEntrySizeOf(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
}

// entry encodes one index entry of the given size: a 5-byte offset is the
// low 4 bytes big-endian, then the high byte (SeaweedFS OffsetToBytes).
func entry(size int, id uint64, offset uint64, nsize int32) []byte {
	e := make([]byte, size)
	binary.BigEndian.PutUint64(e, id)
	binary.BigEndian.PutUint32(e[8:], uint32(offset))
	if size == LargeIdxEntrySize {
		e[12] = byte(offset >> 32)
	}
	binary.BigEndian.PutUint32(e[size-4:], uint32(nsize))
	return e
}

// TestNeedleReplay: the last entry of an id decides; tombstones (negative
// size, zero offset) delete; a 5-byte offset whose low bytes are zero is
// still a put; the sets compare by id and size.
func TestNeedleReplay(t *testing.T) {
	t.Parallel()
	for _, size := range []int{IdxEntrySize, LargeIdxEntrySize} {
		r := &needleReplay{size: size}
		for _, e := range [][]byte{
			entry(size, 5, 1, 100), entry(size, 3, 2, 50), entry(size, 5, 3, 120), // 5 rewritten
			entry(size, 9, 4, 10), entry(size, 9, 0, -1), // 9 deleted
			entry(size, 7, 5, 10), entry(size, 7, 0, 10), // 7: zero offset deletes
		} {
			r.apply(e)
		}
		if size == LargeIdxEntrySize {
			r.apply(entry(size, 11, 1<<32, 30)) // past 32 GB: only the fifth byte is set
		}
		r.del(3) // .ecj
		got := r.set()
		want := NeedleSet{recs: []needleRec{{id: 5, size: 120}}}
		if size == LargeIdxEntrySize {
			want = NeedleSet{recs: []needleRec{{id: 5, size: 120}, {id: 11, size: 30}}}
		}
		if a, b := got.Diff(want); a != 0 || b != 0 || got.Len() != want.Len() {
			t.Errorf("size %d: set %+v, want %+v", size, got, want)
		}
		other := NeedleSet{recs: []needleRec{{id: 1, size: 1}, {id: 5, size: 121}, {id: 11, size: 30}}}
		if a, b := got.Diff(other); size == LargeIdxEntrySize && (a != 1 || b != 2) {
			t.Errorf("Diff = %d, %d; want 1, 2", a, b)
		}
	}
}

// TestNeedleSetMemory: a replica's set costs 16 bytes an index entry,
// built in place: a 30 GB volume of 1 KB needles (30M) takes 480 MB, two
// replicas compared under 1 GB (a map took several times that).
func TestNeedleSetMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 16 MB")
	}
	// A million entries: what is measured is the cost per entry, and a
	// million keeps 1 MB of unrelated allocation below a byte an entry
	// (3 million took 12 s of the quick tier under -race).
	const n = 1_000_000
	var before, during, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := &needleReplay{size: IdxEntrySize, recs: make([]needleRec, 0, n)} // as LiveNeedles sizes it
	e := make([]byte, IdxEntrySize)
	for i := range uint64(n) {
		binary.BigEndian.PutUint64(e, i*7919%n+1)
		binary.BigEndian.PutUint32(e[8:], 1)
		binary.BigEndian.PutUint32(e[12:], 1000)
		r.apply(e)
	}
	runtime.ReadMemStats(&during)
	set := r.set()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(set)
	perEntry := (float64(during.HeapAlloc) - float64(before.HeapAlloc)) / n
	perNeedle := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	t.Logf("%d needles: %.1f bytes an entry replaying, %.1f bytes a needle built", set.Len(), perEntry, perNeedle)
	if set.Len() != n || perNeedle > 17 || perEntry > 17 {
		t.Errorf("%d needles, %.1f bytes a needle built, %.1f an entry replaying", set.Len(), perNeedle, perEntry)
	}
}
