package testutil

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// LogEnv names the environment variable that turns test logs on: unset,
// Logger discards everything; set to a level (debug, info, ...), it writes
// that level and above to stderr. Stderr rather than t.Log: raft and
// server goroutines may still log a moment after their test has ended,
// which t.Log turns into a panic.
const LogEnv = "GK_TEST_LOG"

// Logger is a logger named name for a node under test, silent unless
// GK_TEST_LOG names a level.
func Logger(name string) hclog.Logger {
	lvl := os.Getenv(LogEnv)
	if lvl == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(lvl), Output: os.Stderr, TimeFormat: "15:04:05.000"})
}
