package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestCtlOperatorUsage: mistakes in the new commands are usage errors (exit
// 2) in one sentence, found before any admin is contacted.
func TestCtlOperatorUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"task", "cancel"}, "exactly one task id"},
		{[]string{"task", "cancel", "abc"}, `task id "abc" is not a positive number`},
		{[]string{"task", "cancel", "0"}, `task id "0"`},
		{[]string{"task", "cancel", "1", "2"}, "exactly one task id"},
		{[]string{"task", "cancel", "1", "--bogus"}, "bogus"},
		{[]string{"task", "retry"}, "exactly one task id"},
		{[]string{"task", "retry", "-3"}, "-3"},
		{[]string{"task", "frobnicate"}, "cancel or retry"},
		{[]string{"snapshot"}, "save FILE or restore FILE"},
		{[]string{"snapshot", "take", "x"}, "want save or restore"},
		{[]string{"snapshot", "save"}, "exactly one file name"},
		{[]string{"snapshot", "save", filepath.Join(dir, "no", "such", "dir", "x.snap")}, "does not exist"},
		{[]string{"snapshot", "save", dir}, "is a directory"},
		{[]string{"snapshot", "restore"}, "exactly one file name"},
		{[]string{"peers", "list", "extra"}, "unexpected argument"},
	} {
		var out bytes.Buffer
		err := runCtlIO(append([]string{"--admin", "127.0.0.1:1", "--timeout", time.Second.String()}, tc.args...), &out, &bytes.Buffer{})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", tc.args, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q, want one line mentioning %q", tc.args, msg, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: printed %q on stdout", tc.args, out.String())
		}
	}
}

// goodSnapshotFile writes a valid snapshot file and returns it with its data.
func goodSnapshotFile(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	st := fsm.NewState()
	st.Apply(1, &fsmpb.Command{Version: fsm.CommandVersion, Now: 1, Body: &fsmpb.Command_SubmitTask{SubmitTask: &fsmpb.SubmitTask{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 3}}})
	data, err := fsm.MarshalSnapshot(st.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	hdr := &pb.SnapshotHeader{FormatVersion: 1, Index: 1, Term: 2, Size: int64(len(data)), Sha256: sum256(data)}
	f := filepath.Join(dir, "good.snap")
	if err := os.WriteFile(f, append(formatSnapshotHeader(hdr), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, data
}

// TestSnapshotFile: the file format reads back what was written, and every
// kind of damage is named in one sentence that names the file; restore
// refuses such files before contacting any admin.
func TestSnapshotFile(t *testing.T) {
	dir := t.TempDir()
	good, data := goodSnapshotFile(t, dir)
	snap, err := readSnapshotFile(good)
	if err != nil {
		t.Fatalf("read a good file: %v", err)
	}
	if snap.hdr.Index != 1 || snap.hdr.Term != 2 || !bytes.Equal(snap.data, data) {
		t.Fatalf("read back %v", snap.hdr)
	}
	if len(formatSnapshotHeader(&pb.SnapshotHeader{FormatVersion: 1, Index: 1 << 62, Term: 1 << 40, Size: 1 << 29, Sha256: strings.Repeat("a", 64)})) != snapshotHeaderLen {
		t.Fatalf("the header's length depends on its values")
	}
	raw, _ := os.ReadFile(good)
	hdrLen := snapshotHeaderLen
	flip := func(i int) []byte {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return b
	}
	otherVersion := []byte(strings.Replace(string(raw), "groundskeeper-snapshot v2 ", "groundskeeper-snapshot v7 ", 1))
	// The last digit of the index or the term: covered by the header's check.
	digit := func(field string) int { return strings.Index(string(raw), field+"=") + len(field) + 20 }
	// A state whose next task id is near 2^64, in a well-formed file.
	insane := func() []byte {
		_, snap, err := fsm.DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		snap.NextTaskId = 1<<64 - 2
		b, err := fsm.MarshalSnapshot(snap)
		if err != nil {
			t.Fatal(err)
		}
		return append(formatSnapshotHeader(&pb.SnapshotHeader{Index: 1, Term: 2, Size: int64(len(b)), Sha256: sum256(b)}), b...)
	}()
	// A well-formed file of a state applied beyond the index its header gives.
	ahead := append(formatSnapshotHeader(&pb.SnapshotHeader{Index: 0, Term: 2, Size: int64(len(data)), Sha256: sum256(data)}), data...)
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"empty":         {nil, "not a groundskeeper snapshot"},
		"foreign":       {[]byte("{\"hello\": 1}\n"), "not a groundskeeper snapshot"},
		"header only":   {raw[:hdrLen], "truncated"},
		"truncated":     {raw[:len(raw)-1], "truncated"},
		"cut header":    {raw[:hdrLen/2], "damaged snapshot header"},
		"longer":        {append(append([]byte(nil), raw...), 'x'), "more data"},
		"corrupt data":  {flip(len(raw) - 2), "corrupt"},
		"corrupt sha":   {flip(hdrLen - 3), ""},
		"other version": {otherVersion, "format version 7"},
		"flipped index": {flip(digit("index")), "checksum"},
		"flipped term":  {flip(digit("term")), "checksum"},
		"next id 2^64":  {insane, "next task id"},
		"index ahead":   {ahead, "beyond the snapshot's own index"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(f, tc.b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := readSnapshotFile(f)
		if err == nil {
			t.Errorf("%s: read without error", name)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, f) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q, want one line naming the file and mentioning %q", name, msg, tc.want)
		}
		rerr := runCtlIO([]string{"--admin", "127.0.0.1:1", "--timeout", "1s", "snapshot", "restore", f}, &bytes.Buffer{}, &bytes.Buffer{})
		if rerr == nil || !strings.Contains(rerr.Error(), "nothing restored") || strings.Contains(rerr.Error(), "127.0.0.1:1") {
			t.Errorf("%s: restore gave %v; want the file refused before contacting an admin", name, rerr)
		}
	}
}

// TestSnapshotFileVersion1: files written before the header had a check
// (format version 1) are still read.
func TestSnapshotFileVersion1(t *testing.T) {
	dir := t.TempDir()
	_, data := goodSnapshotFile(t, dir)
	f := filepath.Join(dir, "v1.snap")
	line := fmt.Sprintf("groundskeeper-snapshot v1 index=%020d term=%020d size=%020d sha256=%64s\n", 1, 2, len(data), sum256(data))
	if err := os.WriteFile(f, append([]byte(line), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := readSnapshotFile(f)
	if err != nil {
		t.Fatalf("read a version 1 file: %v", err)
	}
	if snap.hdr.Index != 1 || snap.hdr.Term != 2 || !bytes.Equal(snap.data, data) {
		t.Fatalf("read back %v", snap.hdr)
	}
	raw, _ := os.ReadFile(f)
	raw[len(line)-2] ^= 1 // the sha256 still covers the data
	if err := os.WriteFile(f, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSnapshotFile(f); err == nil {
		t.Fatal("a version 1 file with a damaged sha256 was read")
	}
}

func sum256(b []byte) string {
	return fmt.Sprintf("%x", sha256Sum(b))
}

// TestProgressLine: off a terminal, progress is plain lines, only when it
// changes.
func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := newProgressLine(&b)
	if p.tty {
		t.Fatal("a buffer is not a terminal")
	}
	p.show("task 1: pending")
	p.show("task 1: pending")
	p.show("task 1: running, 10%")
	p.done()
	p = newProgressLine(&b)
	p.throttled("saving 1 KiB", false) // the first line always shows
	p.throttled("saving 2 KiB", false) // within a second of the last line: dropped
	p.throttled("saving 3 KiB", true)  // final: always shown
	p.done()
	want := "task 1: pending\ntask 1: running, 10%\nsaving 1 KiB\nsaving 3 KiB\n"
	if b.String() != want {
		t.Errorf("progress lines %q, want %q", b.String(), want)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
