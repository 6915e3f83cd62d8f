package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// refusalTimeout bounds an admin start that must be refused: a refusal is
// immediate, so running this long means the admin started instead.
const refusalTimeout = 15 * time.Second

// dirSnapshot describes every entry under dir: type, size, mode, mtime and,
// for files, a content hash.
func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %d %s", info.Mode(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// TestBadInput: user mistakes give a non-zero exit and exactly one sentence on
// stderr, never a stack trace, and refused commands change nothing.
func TestBadInput(t *testing.T) {
	// A one-node cluster is enough for the ctl cases that reach a server.
	c := startCluster(t, 1)
	a1 := c.nodes[0]
	admin := a1.GRPCAddr

	// Flags that are valid but for the one under test; nothing listens on
	// port 1, and a refused start never gets to use them.
	adminArgs := []string{"admin", "--id", "a9", "--data-dir", filepath.Join(t.TempDir(), "never"), "--raft-addr", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:2"}

	t.Run("ctl", func(t *testing.T) {
		cases := []struct {
			name string
			args []string
			want string // a substring of the message
		}{
			{"unknown task type", []string{"ctl", "--admin", admin, "task", "submit", "--type", "defrag", "--volume", "3"}, "defrag"},
			{"volume zero", []string{"ctl", "--admin", admin, "task", "submit", "--type", "vacuum", "--volume", "0"}, "--volume"},
			{"volume missing", []string{"ctl", "--admin", admin, "task", "submit", "--type", "vacuum"}, "--volume"},
			{"volume not a number", []string{"ctl", "--admin", admin, "task", "submit", "--type", "vacuum", "--volume", "seven"}, "volume"},
			{"volume out of range", []string{"ctl", "--admin", admin, "task", "submit", "--type", "vacuum", "--volume", "4294967296"}, "range"},
			{"missing --admin", []string{"ctl", "status"}, "--admin"},
			{"unknown ctl command", []string{"ctl", "--admin", admin, "frobnicate"}, "frobnicate"},
			{"missing ctl command", []string{"ctl", "--admin", admin}, "command"},
			{"unknown task subcommand", []string{"ctl", "--admin", admin, "task", "delete"}, "delete"},
			{"unknown flag after command", []string{"ctl", "--admin", admin, "status", "--bogus"}, "bogus"},
			{"unknown flag before command", []string{"ctl", "--bogus", "--admin", admin, "status"}, "bogus"},
			{"unknown task state", []string{"ctl", "--admin", admin, "tasks", "--state", "sleeping"}, "sleeping"},
			{"unknown task id", []string{"ctl", "--admin", admin, "task", "show", "999999"}, "999999"},
			{"bad task id", []string{"ctl", "--admin", admin, "task", "show", "abc"}, "abc"},
			{"unexpected argument", []string{"ctl", "--admin", admin, "status", "extra"}, "extra"},
			{"peers add without address", []string{"ctl", "--admin", admin, "peers", "add", "a9"}, "peers add"},
			{"peers remove unknown member", []string{"ctl", "--admin", admin, "peers", "remove", "zz"}, "zz"},
			{"unknown top-level command", []string{"frobnicate"}, "frobnicate"},
			{"unknown admin flag", []string{"admin", "--bogus"}, "bogus"},
			{"leader lease over heartbeat timeout", append(adminArgs, "--raft-leader-lease", "2s"), "--raft-leader-lease"},
			{"zero election timeout", append(adminArgs, "--raft-election-timeout", "0s"), "--raft-election-timeout"},
			{"task retention too short", append(adminArgs, "--task-retention", "10m"), "--task-retention"},
			{"negative retention count", append(adminArgs, "--task-retention-count", "-5"), "--task-retention-count"},
			{"master given twice", append(adminArgs, "--master", "127.0.0.1:9333,127.0.0.1:9333.19333"), "given twice"},
			{"empty master entry", append(adminArgs, "--master", "127.0.0.1:9333,,127.0.0.1:9334"), "entry 2"},
			{"bad master in a list", append(adminArgs, "--master", "127.0.0.1:9333,master2"), "master2"},
		}
		for _, tc := range cases {
			res := runBin(t, tc.args...)
			requireOneSentenceError(t, tc.name, res)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%s: stderr %q does not mention %q", tc.name, strings.TrimSpace(res.Stderr), tc.want)
			}
		}
		// None of the refused submissions created anything.
		if tasks := ctlJSON[[]taskJSON](t, "tasks", admin, "tasks"); len(tasks) != 0 {
			t.Errorf("refused commands left tasks behind: %+v", tasks)
		}
	})

	t.Run("server rejects what the CLI would", func(t *testing.T) {
		cl := dialAdmins(t, []string{admin})
		for _, req := range []*pb.SubmitTaskRequest{
			{Type: fsmpb.TaskType(99), VolumeId: 3},
			{Type: fsmpb.TaskType_TASK_TYPE_UNSPECIFIED, VolumeId: 3},
			{Type: fsmpb.TaskType_TASK_TYPE_VACUUM, VolumeId: 0},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := pb.NewAdminClient(cl.conns[0]).SubmitTask(ctx, req)
			cancel()
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("SubmitTask(type %d, volume %d): got %v, want InvalidArgument", req.Type, req.VolumeId, err)
			}
		}
	})

	t.Run("unreachable admin", func(t *testing.T) {
		dead := testutil.FreeAddr(t) // nothing listens here
		for _, args := range [][]string{{"status"}, {"tasks"}, {"task", "submit", "--type", "vacuum", "--volume", "5"}} {
			res := ctl(t, dead, args...)
			requireOneSentenceError(t, "ctl "+strings.Join(args, " ")+" against "+dead, res)
			if res.Elapsed > 5*time.Second {
				t.Errorf("ctl %s against an unreachable admin took %s, want a few seconds at most", strings.Join(args, " "), res.Elapsed)
			}
			if !strings.Contains(res.Stderr, dead) {
				t.Errorf("unreachable-admin error does not name %s: %q", dead, res.Stderr)
			}
		}
	})

	t.Run("malformed peers", func(t *testing.T) {
		raft, grpcAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
		for _, peers := range []string{
			"a1=127.0.0.1",
			"a1",
			"a1=x:1,a1=y:2",
			"a1=" + raft + ",a2=" + raft,
			"a1=127.0.0.1:abc",
			"=127.0.0.1:7001",
		} {
			dataDir := filepath.Join(t.TempDir(), "data")
			res := runBinWithin(t, refusalTimeout, "admin", "--id", "a1", "--data-dir", dataDir, "--raft-addr", raft, "--grpc-addr", grpcAddr, "--peers", peers)
			requireOneSentenceError(t, "--peers "+peers, res)
			if !strings.Contains(res.Stderr, "--peers") {
				t.Errorf("--peers %q: message does not name the flag: %q", peers, res.Stderr)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("--peers %q was refused but the data dir was created anyway (%v)", peers, err)
			}
		}
	})

	t.Run("peers not matching this node", func(t *testing.T) {
		raft, grpcAddr, other := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
		for _, tc := range []struct{ name, id, peers string }{
			{"id missing from peers", "a1", "a2=" + other + ",a3=" + raft},
			{"own address differs", "a1", "a1=" + other},
		} {
			res := runBinWithin(t, refusalTimeout, "admin", "--id", tc.id, "--data-dir", filepath.Join(t.TempDir(), "data"), "--raft-addr", raft, "--grpc-addr", grpcAddr, "--peers", tc.peers)
			requireOneSentenceError(t, tc.name, res)
		}
	})

	t.Run("data dir of another node", func(t *testing.T) {
		// a1's data dir after a clean shutdown.
		a1.term(t)
		before := dirSnapshot(t, a1.DataDir)
		idBefore, err := os.ReadFile(filepath.Join(a1.DataDir, "node-id"))
		if err != nil {
			t.Fatalf("a1 has no node-id file: %v", err)
		}
		raft, grpcAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
		res := runBinWithin(t, refusalTimeout, "admin", "--id", "a2", "--data-dir", a1.DataDir, "--raft-addr", raft, "--grpc-addr", grpcAddr, "--peers", "a2="+raft)
		requireOneSentenceError(t, "a2 started on a1's data dir", res)
		if !strings.Contains(res.Stderr, "a1") || !strings.Contains(res.Stderr, "a2") {
			t.Errorf("message does not name both owners: %q", res.Stderr)
		}
		// Also without --peers (joining mode).
		res = runBinWithin(t, refusalTimeout, "admin", "--id", "a2", "--data-dir", a1.DataDir, "--raft-addr", raft, "--grpc-addr", grpcAddr)
		requireOneSentenceError(t, "a2 (no --peers) started on a1's data dir", res)

		idAfter, _ := os.ReadFile(filepath.Join(a1.DataDir, "node-id"))
		if string(idAfter) != string(idBefore) {
			t.Errorf("node-id changed from %q to %q", idBefore, idAfter)
		}
		after := dirSnapshot(t, a1.DataDir)
		for p, d := range after {
			if before[p] == "" {
				t.Errorf("refused start created %s in a1's data dir", p)
			} else if before[p] != d {
				t.Errorf("refused start changed %s in a1's data dir: %s -> %s", p, before[p], d)
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("refused start removed %s from a1's data dir", p)
			}
		}

		// a1 itself still starts from it.
		a1.restart(t)
		c.waitStable(t, a1)
	})
}
