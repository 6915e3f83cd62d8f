package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLeftLeaderAt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a3.log")
	log := "2026-12-02T17:14:40.100Z [INFO]  admin.a3.raft: entering follower state: follower=x\n" +
		"2026-12-02T17:14:42.106Z [INFO]  admin.a3.raft: aborting pipeline replication: peer=a2\n" +
		"2026-12-02T17:14:42.620Z [INFO]  admin.a3.raft: entering follower state: follower=\"Node at 127.0.0.1:40887 [Follower]\"\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2026, 12, 2, 17, 14, 42, 79_000_000, time.UTC)
	at, ok := leftLeaderAt(p, cut)
	if want := time.Date(2026, 12, 2, 17, 14, 42, 620_000_000, time.UTC); !ok || !at.Equal(want) {
		t.Errorf("leftLeaderAt = %v, %v; want %v (the first step-down after the cut, not the earlier one)", at, ok, want)
	}
	if _, ok := leftLeaderAt(p, cut.Add(time.Second)); ok {
		t.Error("found a step-down after the last one")
	}
}
