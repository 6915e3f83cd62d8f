package worker

import (
	"fmt"
	"os"
)

// A test-only switch that deliberately breaks an executor, so that tests
// can show that the simulator's durability check catches a broken executor
// (seaweed/sim durability.go). It is read once, when the process starts, from the
// environment variable GROUNDSKEEPER_TEST_BREAK. Never set it anywhere but
// in a test: a broken executor loses data.
const (
	testBreakEnv = "GROUNDSKEEPER_TEST_BREAK"
	// breakEcDeleteBeforeVerify: erasure coding deletes the original
	// replicas right after generating and mounting the shards on the
	// source, before spreading them and verifying they are mounted.
	breakEcDeleteBeforeVerify = "ec-delete-before-verify"
	// breakEcSkipFreeze: erasure coding encodes the replicas without making
	// them read-only, so writes during the encode are not in the shards.
	breakEcSkipFreeze = "ec-skip-freeze"
)

var testBreak = readTestBreak(os.Getenv(testBreakEnv))

func readTestBreak(v string) string {
	switch v {
	case "":
	case breakEcDeleteBeforeVerify, breakEcSkipFreeze:
		fmt.Fprintf(os.Stderr, "!!! %s=%s: this process's executors are DELIBERATELY BROKEN for a test and WILL LOSE DATA !!!\n", testBreakEnv, v)
	default:
		fmt.Fprintf(os.Stderr, "!!! %s=%q is not a known break; nothing is broken !!!\n", testBreakEnv, v)
		return ""
	}
	return v
}

// broken reports whether the named break is on, loudly.
func broken(name string) bool {
	if testBreak != name {
		return false
	}
	fmt.Fprintf(os.Stderr, "!!! %s=%s: breaking the executor here !!!\n", testBreakEnv, name)
	return true
}
