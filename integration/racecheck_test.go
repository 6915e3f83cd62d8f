package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// raceReportLines bounds the excerpt of a race report quoted in a failure.
const raceReportLines = 60

// raceReportIn returns the first race detector report in a process's
// output, up to raceReportLines lines, and whether there is one.
func raceReportIn(out string) (string, bool) {
	i := strings.Index(out, raceReport)
	if i < 0 {
		return "", false
	}
	lines := strings.SplitN(out[i:], "\n", raceReportLines+1)
	if len(lines) > raceReportLines {
		lines = lines[:raceReportLines]
	}
	return strings.Join(lines, "\n"), true
}

// failOnRace makes t fail when it ends if the node's log (every run of it)
// holds a race detector report. It registers one check per test, however
// often the node is restarted.
func (n *node) failOnRace(t testing.TB) {
	n.mu.Lock()
	if n.raceChecked == nil {
		n.raceChecked = map[testing.TB]bool{}
	}
	seen := n.raceChecked[t]
	n.raceChecked[t] = true
	n.mu.Unlock()
	if seen {
		return
	}
	t.Cleanup(func() {
		if report, ok := raceReportIn(n.log()); ok {
			t.Errorf("%s's log (%s) holds a race detector report (the binary is built with -race):\n%s", n.ID, n.LogPath, report)
		}
	})
}

func TestFailOnRace(t *testing.T) {
	dir := t.TempDir()
	clean := &node{ID: "a1", LogPath: filepath.Join(dir, "a1.log")}
	racy := &node{ID: "w1", LogPath: filepath.Join(dir, "w1.log")}
	if err := os.WriteFile(clean.LogPath, []byte("===== test harness: starting a1\nserving\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := "==================\n" + raceReport + "\nWrite at 0x00c000 by goroutine 7:\n  main.f()\n"
	if err := os.WriteFile(racy.LogPath, []byte("===== test harness: starting w1\n"+report), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recordTB{TB: t}
	clean.failOnRace(rec)
	racy.failOnRace(rec)
	racy.failOnRace(rec) // a restart: still one check
	if len(rec.cleanups) != 2 {
		t.Fatalf("%d checks registered for two nodes, one started twice; want 2", len(rec.cleanups))
	}
	for _, f := range rec.cleanups {
		f()
	}
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "w1's log") || !strings.Contains(rec.errs[0], "Write at 0x00c000 by goroutine 7") {
		t.Errorf("errors %q; want one naming w1's log and quoting the report", rec.errs)
	}
}

func TestRaceReportInQuotesABoundedExcerpt(t *testing.T) {
	if _, ok := raceReportIn("ok\nshutting down\n"); ok {
		t.Error("found a race report in a clean log")
	}
	long := "before\n" + raceReport + strings.Repeat("\nframe", 500)
	got, ok := raceReportIn(long)
	if !ok || !strings.HasPrefix(got, raceReport) || strings.Count(got, "\n")+1 != raceReportLines {
		t.Errorf("excerpt ok=%v, %d lines, starts %q; want %d lines from the report's first line", ok, strings.Count(got, "\n")+1, got[:min(len(got), 30)], raceReportLines)
	}
}
