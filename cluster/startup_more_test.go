package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
)

// TestPartialWipeRefuses: a data dir that lost raft.db (the log, the term
// and the vote) but kept its snapshots, with or without node-id, is a
// wiped voter too: issue 10's scenario (B down, a task acknowledged by L
// and W, L down, W loses raft.db) must not let W rejoin with term 0 and no
// vote record and elect B. A data dir that lost its snapshots behind a
// compacted log is refused the same way (raft could not rebuild it).
func TestPartialWipeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove []string
		says   string
	}{
		{"raft.db lost", []string{raftDBFile}, "no term or vote"},
		{"raft.db and node-id lost", []string{raftDBFile, nodeIDFile}, "no term or vote"},
		{"snapshots lost", []string{snapshotsDir}, "no snapshot of the entries before it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, func(c *Config) { c.TrailingLogs = 1 })
			l := c.waitLeader()
			b, w := (l+1)%3, (l+2)%3
			c.stop(b)
			task := c.submit(1) // committed by L and W
			c.submit(2)
			waitFor(t, "W to apply both tasks", func() bool { return taskCount(c.nodes[w].fsm) >= 2 })
			if err := c.nodes[w].node.Snapshot(); err != nil {
				t.Fatal(err)
			}
			c.stop(l)
			c.stop(w)
			wCfg := c.nodes[w].cfg
			for _, f := range tc.remove {
				if err := os.RemoveAll(filepath.Join(wCfg.DataDir, f)); err != nil {
					t.Fatal(err)
				}
			}
			c.start(b)
			wCfg.FSM = fsm.New()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			n, err := Open(ctx, wCfg)
			if err == nil {
				n.Shutdown()
				t.Fatalf("%s started after losing %v; it must refuse", wCfg.ID, tc.remove)
			}
			oneSentence(t, err, wCfg.DataDir, tc.says, "ctl peers remove "+wCfg.ID, "ctl peers add "+wCfg.ID+" "+wCfg.RaftAddr)
			// Refused again on the next try: nothing it wrote made the dir look whole.
			if n, err := Open(ctx, wCfg); err == nil {
				n.Shutdown()
				t.Fatal("the second start was not refused")
			}
			c.start(l)
			c.waitLeader()
			for _, i := range []int{l, b} {
				waitFor(t, "the acknowledged task on "+c.nodes[i].cfg.ID, func() bool { return hasTask(c.nodes[i].fsm, task.Id) })
			}
		})
	}
}
