package scheduler

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTestCrashArming: the completion failpoint is on only for the one
// value, and an arm file naming another point or task neither fires nor is
// consumed (the firing itself, a SIGKILL, is exercised by the fault
// harness's kill9-leader-at-completion rounds).
func TestTestCrashArming(t *testing.T) {
	if readTestCrash("") || readTestCrash("complete-before-commit") || !readTestCrash("completion") {
		t.Fatal("only GROUNDSKEEPER_TEST_CRASH=completion turns the failpoint on")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, testCrashFile)
	if err := os.WriteFile(path, []byte(crashAfterCommit+" 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	was := testCrashOn
	testCrashOn = true
	defer func() { testCrashOn = was }()
	s := &Scheduler{cfg: Config{TestCrashDir: dir}}
	s.testCrash(crashBeforeCommit, 7) // another point
	s.testCrash(crashAfterCommit, 8)  // another task
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("an arm file for another point or task was consumed: %v", err)
	}
}

// TestTestCrashNeedsDir: a scheduler without TestCrashDir (every one but an
// admin's) never reads the failpoint's switch, so a test flipping it does
// not race them (run with -race).
func TestTestCrashNeedsDir(t *testing.T) {
	s := &Scheduler{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			s.testCrash(crashBeforeCommit, 1)
		}
	}()
	was := testCrashOn
	testCrashOn = !was
	testCrashOn = was
	<-done
}
