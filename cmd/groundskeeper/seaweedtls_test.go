package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSeaweedFSSecurityRefused: a SeaweedFS security.toml left half done
// stops admin, worker and dev at start with one sentence naming the file
// and the key; it never falls back to plaintext.
func TestSeaweedFSSecurityRefused(t *testing.T) {
	dir := t.TempDir()
	half := filepath.Join(dir, "security.toml")
	if err := os.WriteFile(half, []byte("[grpc]\nca = \"ca.pem\"\n[grpc.admin]\ncert = \"a.pem\"\n[grpc.worker]\nkey = \"w-key.pem\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := []string{"admin", "--id", "a1", "--data-dir", filepath.Join(dir, "a1"), "--peers", "a1=127.0.0.1:7001", "--bootstrap",
		"--raft-addr", "127.0.0.1:7001", "--grpc-addr", "127.0.0.1:9001"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"admin", append(append([]string{}, admin...), "--master", "127.0.0.1:9333", "--seaweedfs-security", half), 1,
			half + "): grpc.admin.cert and grpc.admin.key must both be set"},
		{"worker", []string{"worker", "--id", "w1", "--admin", "127.0.0.1:9001", "--data-dir", filepath.Join(dir, "w1"), "--seaweedfs-security", half}, 1,
			half + "): grpc.worker.cert and grpc.worker.key must both be set"},
		{"worker, missing file", []string{"worker", "--id", "w1", "--admin", "127.0.0.1:9001", "--data-dir", filepath.Join(dir, "w1"),
			"--seaweedfs-security", filepath.Join(dir, "none.toml")}, 1, "none.toml"},
		{"dev without --master", []string{"dev", "--seaweedfs-security", half}, 2, "--seaweedfs-security needs --master"},
	}
	for _, tc := range cases {
		code, _, errOut := runArgs(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", tc.name, code, errOut, tc.code, tc.want)
		}
		if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 0 {
			t.Errorf("%s: stderr has %d lines, want one sentence: %q", tc.name, n+1, errOut)
		}
	}
}
