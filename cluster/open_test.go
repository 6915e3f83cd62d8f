package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/internal/testutil"
)

// oneSentence checks an operator-facing error is a single line, a single
// sentence, and mentions what it is about.
func oneSentence(t *testing.T, err error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", mentions)
	}
	msg := err.Error()
	if msg == "" || strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, ". ") {
		t.Errorf("error %q is not one sentence on one line", msg)
	}
	for _, m := range mentions {
		if !strings.Contains(msg, m) {
			t.Errorf("error %q does not mention %q", msg, m)
		}
	}
}

func TestParsePeers(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		got, err := ParsePeers(" a3=127.0.0.1:7003, a1=127.0.0.1:7001 ,a2=host-2.example:7002 ")
		if err != nil {
			t.Fatal(err)
		}
		want := []Peer{{"a1", "127.0.0.1:7001"}, {"a2", "host-2.example:7002"}, {"a3", "127.0.0.1:7003"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v (sorted by id)", got, want)
		}
	})
	t.Run("ipv6 and single", func(t *testing.T) {
		got, err := ParsePeers("x_1.b-2=[::1]:9000")
		if err != nil {
			t.Fatal(err)
		}
		if want := []Peer{{"x_1.b-2", "[::1]:9000"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
	t.Run("empty means none", func(t *testing.T) {
		for _, s := range []string{"", "   "} {
			got, err := ParsePeers(s)
			if err != nil || got != nil {
				t.Fatalf("ParsePeers(%q) = %v, %v; want nil, nil", s, got, err)
			}
		}
	})
	bad := []struct {
		name, in string
		mentions []string
	}{
		{"missing equals", "a1=127.0.0.1:7001,a2", []string{"--peers", `"a2"`, "id=host:port"}},
		{"empty entry", "a1=127.0.0.1:7001,", []string{"--peers", "id=host:port"}},
		{"no port", "a1=127.0.0.1", []string{"--peers", "127.0.0.1", "host:port"}},
		{"empty port", "a1=127.0.0.1:", []string{"--peers", "host:port"}},
		{"no host", "a1=:7001", []string{"--peers", "host:port"}},
		{"non-numeric port", "a1=127.0.0.1:http", []string{"--peers", "127.0.0.1:http", "port"}},
		{"port out of range", "a1=127.0.0.1:70001", []string{"--peers", "127.0.0.1:70001", "port"}},
		{"port zero", "a1=127.0.0.1:0", []string{"--peers", "127.0.0.1:0", "port"}},
		{"empty id", "=127.0.0.1:7001", []string{"--peers", "node id"}},
		{"bad id chars", "a 1=127.0.0.1:7001", []string{"--peers", `"a 1"`}},
		{"id too long", strings.Repeat("a", 65) + "=127.0.0.1:7001", []string{"--peers", "1-64"}},
		{"duplicate id", "a1=127.0.0.1:7001,a1=127.0.0.1:7002", []string{"--peers", "a1", "twice"}},
		{"duplicate address", "a1=127.0.0.1:7001,a2=127.0.0.1:7001", []string{"--peers", "127.0.0.1:7001", "two nodes"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePeers(tc.in)
			if err == nil {
				t.Fatalf("ParsePeers(%q) = %+v, want an error", tc.in, got)
			}
			oneSentence(t, err, tc.mentions...)
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	addr, other := testutil.FreeAddr(t), testutil.FreeAddr(t)
	base := func(dir string) Config {
		cfg := fastConfig("a1", addr, dir, []Peer{{"a1", addr}})
		cfg.FSM = fsm.New()
		return cfg
	}
	// notCreated checks a refused Open left no trace on disk.
	notCreated := func(t *testing.T, dir string) {
		t.Helper()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("refused Open created %s (stat: %v)", dir, err)
		}
	}

	t.Run("peers without own id", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		cfg := base(dir)
		cfg.Peers = []Peer{{"a2", other}, {"a3", testutil.FreeAddr(t)}}
		n, err := Open(context.Background(), cfg)
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		oneSentence(t, err, "--peers", "a1")
		notCreated(t, dir)
	})
	t.Run("empty data dir without peers", func(t *testing.T) {
		cfg := base(t.TempDir())
		cfg.Peers, cfg.Bootstrap = nil, false
		n, err := Open(context.Background(), cfg)
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		oneSentence(t, err, "empty", "--peers")
		cfg.Bootstrap = true
		if n, err = Open(context.Background(), cfg); err == nil {
			n.Shutdown()
			t.Fatal("Open with --bootstrap and no peers succeeded")
		}
		oneSentence(t, err, "--bootstrap", "--peers")
	})
	t.Run("only itself in peers without --bootstrap", func(t *testing.T) {
		cfg := base(t.TempDir())
		cfg.Bootstrap = false
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		n, err := Open(ctx, cfg)
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Open waited for peers that --peers does not name: %v", err)
		}
		oneSentence(t, err, "--peers lists only this node a1", "--bootstrap")
	})
	t.Run("own id with another address", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		cfg := base(dir)
		cfg.Peers = []Peer{{"a1", other}, {"a2", testutil.FreeAddr(t)}}
		n, err := Open(context.Background(), cfg)
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		oneSentence(t, err, "--peers", "a1", other, addr)
		notCreated(t, dir)
	})
	t.Run("invalid config", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		for name, mod := range map[string]func(*Config){
			"bad id":        func(c *Config) { c.ID = "no spaces" },
			"empty id":      func(c *Config) { c.ID = "" },
			"bad raft addr": func(c *Config) { c.RaftAddr = "localhost" },
			"no data dir":   func(c *Config) { c.DataDir = "" },
			"no fsm":        func(c *Config) { c.FSM = nil },
			"lease > heartbeat": func(c *Config) {
				c.HeartbeatTimeout, c.LeaderLease = 500*time.Millisecond, time.Second
			},
		} {
			cfg := base(dir)
			mod(&cfg)
			n, err := Open(context.Background(), cfg)
			if err == nil {
				n.Shutdown()
				t.Fatalf("%s: Open succeeded", name)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("%s: error %q spans lines", name, err)
			}
		}
		// Everything is checked before the data dir is touched.
		notCreated(t, dir)
	})
	t.Run("data dir of another node", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("b7\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := Open(context.Background(), base(dir))
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		oneSentence(t, err, "belongs to node b7", "a1")
		if _, err := os.Stat(filepath.Join(dir, raftDBFile)); !os.IsNotExist(err) {
			t.Errorf("a refused claim created %s", raftDBFile)
		}
		if _, err := os.Stat(filepath.Join(dir, snapshotsDir)); !os.IsNotExist(err) {
			t.Errorf("a refused claim created %s", snapshotsDir)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, nodeIDFile)); string(b) != "b7\n" {
			t.Errorf("node-id file rewritten to %q", b)
		}
	})
	t.Run("data dir used by a real node under another id", func(t *testing.T) {
		dir := t.TempDir()
		cfg := base(dir)
		n, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		cfg = base(dir)
		cfg.ID, cfg.Peers = "a2", []Peer{{"a2", addr}}
		if n, err := Open(context.Background(), cfg); err == nil {
			n.Shutdown()
			t.Fatal("Open under another id succeeded")
		} else {
			oneSentence(t, err, "belongs to node a1", "a2")
		}
		// The rightful owner still opens it.
		n, err = Open(context.Background(), base(dir))
		if err != nil {
			t.Fatalf("reopen by its owner: %v", err)
		}
		n.Shutdown()
	})
	t.Run("raft data without owner file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, raftDBFile), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := Open(context.Background(), base(dir))
		if err == nil {
			n.Shutdown()
			t.Fatal("Open succeeded")
		}
		oneSentence(t, err, dir, nodeIDFile)
		if _, err := os.Stat(filepath.Join(dir, nodeIDFile)); !os.IsNotExist(err) {
			t.Errorf("a refused claim wrote %s", nodeIDFile)
		}
	})
	t.Run("data dir in use", func(t *testing.T) {
		dir := t.TempDir()
		n, err := Open(context.Background(), base(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown()
		cfg := base(dir)
		cfg.RaftAddr, cfg.Peers = other, []Peer{{"a1", other}}
		n2, err := Open(context.Background(), cfg)
		if err == nil {
			n2.Shutdown()
			t.Fatal("a second Open of a data dir in use succeeded")
		}
		oneSentence(t, err, "locked")
	})
	t.Run("raft address in use", func(t *testing.T) {
		n, err := Open(context.Background(), base(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown()
		dir := t.TempDir()
		cfg := base(dir)
		cfg.ID, cfg.Peers = "a2", []Peer{{"a2", addr}}
		n2, err := Open(context.Background(), cfg)
		if err == nil {
			n2.Shutdown()
			t.Fatal("Open on a raft address in use succeeded")
		}
		oneSentence(t, err, addr)
		// The store was closed on the way out: the dir can be opened now.
		cfg = base(dir)
		cfg.ID, cfg.RaftAddr, cfg.Peers = "a2", other, []Peer{{"a2", other}}
		n3, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("reopen after a failed listen: %v", err)
		}
		n3.Shutdown()
	})
}
