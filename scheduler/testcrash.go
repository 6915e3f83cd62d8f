package scheduler

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A TEST-ONLY failpoint that kills the leader with SIGKILL around the
// commit of a worker's completion report, so that the fault harness can
// show that a completion survives a leader dying just before it commits or
// just after (before the worker has its answer). It is on only in an admin
// (Config.TestCrashDir set) started with GROUNDSKEEPER_TEST_CRASH=completion,
// and fires only while the arm file <data dir>/test-crash-armed exists and
// names the point and the task ("complete-before-commit 42"); the file is
// removed as it fires, so one arming kills the leader once. Never set it
// anywhere but in a test. Deliberately undocumented for operators.
const (
	testCrashEnv  = "GROUNDSKEEPER_TEST_CRASH"
	testCrashFile = "test-crash-armed"
	// crashBeforeCommit: a completion report arrived and is not committed
	// yet (the attempt's start may already be: startIfAssigned commits a
	// missing one first).
	crashBeforeCommit = "complete-before-commit"
	// crashAfterCommit: the completion is committed; no ack sent yet.
	crashAfterCommit = "complete-after-commit"
)

var testCrashOn = readTestCrash(os.Getenv(testCrashEnv))

func readTestCrash(v string) bool { return v == "completion" }

// announceTestCrash tells, loudly, an admin started with the failpoint's
// variable what it does (or that its value is unknown). Only New calls it,
// for an admin: other subcommands link this package without running it.
func announceTestCrash() {
	switch v := os.Getenv(testCrashEnv); {
	case v == "":
	case readTestCrash(v):
		fmt.Fprintf(os.Stderr, "!!! %s=%s: this admin KILLS ITSELF when a test arms %s in its data directory !!!\n", testCrashEnv, v, testCrashFile)
	default:
		fmt.Fprintf(os.Stderr, "!!! %s=%q is not a known failpoint; nothing is armed !!!\n", testCrashEnv, v)
	}
}

// testCrash kills this process with SIGKILL if the failpoint is on and
// armed for point and task.
func (s *Scheduler) testCrash(point string, task uint64) {
	// TestCrashDir first: it is set only in an admin, and a test that flips
	// testCrashOn must not race the schedulers of other tests.
	if s.cfg.TestCrashDir == "" || !testCrashOn {
		return
	}
	path := filepath.Join(s.cfg.TestCrashDir, testCrashFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if strings.TrimSpace(string(b)) != point+" "+strconv.FormatUint(task, 10) {
		return
	}
	if err := os.Remove(path); err != nil {
		fmt.Fprintf(os.Stderr, "!!! %s: cannot disarm %s, not crashing: %v !!!\n", testCrashEnv, path, err)
		return
	}
	fmt.Fprintf(os.Stderr, "!!! %s: SIGKILL at %s of task %d !!!\n", testCrashEnv, point, task)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
