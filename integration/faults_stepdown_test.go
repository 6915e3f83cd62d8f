package integration

import (
	"bufio"
	"os"
	"strings"
	"time"
)

// leftLeaderAt reads an admin's log for the first time after since that
// raft left the leader state ("entering follower state" or "entering
// candidate state", stamped by the admin itself).
func leftLeaderAt(logPath string, since time.Time) (time.Time, bool) {
	f, err := os.Open(logPath)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "raft: entering follower state") && !strings.Contains(line, "raft: entering candidate state") {
			continue
		}
		stamp, _, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", stamp)
		if err != nil || at.Before(since) {
			continue
		}
		return at, true
	}
	return time.Time{}, false
}
