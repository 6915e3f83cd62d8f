package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// TestTLSFlagsRefused: a half-given TLS configuration, --insecure with
// TLS, and a non-loopback bind in plaintext without --insecure are usage
// errors (exit 2) of one sentence naming what to give.
func TestTLSFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	admin := []string{"admin", "--id", "a1", "--data-dir", filepath.Join(dir, "a1"), "--peers", "a1=127.0.0.1:7001", "--bootstrap"}
	loop := append(append([]string{}, admin...), "--raft-addr", "127.0.0.1:7001", "--grpc-addr", "127.0.0.1:9001")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"admin half TLS", append(append([]string{}, loop...), "--tls-ca", "ca.pem", "--tls-cert", "a1.pem"), "the key file is missing"},
		{"worker half TLS", []string{"worker", "--id", "w1", "--admin", "127.0.0.1:9001", "--data-dir", dir, "--tls-key", "k.pem"},
			"the CA file and the certificate file are missing"},
		{"ctl half TLS", []string{"ctl", "status", "--admin", "127.0.0.1:9001", "--tls-ca", "ca.pem"}, "incomplete TLS configuration"},
		{"insecure with TLS", append(append([]string{}, loop...), "--tls-ca", "c", "--tls-cert", "c", "--tls-key", "k", "--insecure"), "--insecure contradicts"},
		{"wildcard gRPC in plaintext", append(append([]string{}, admin...), "--raft-addr", "127.0.0.1:7001", "--grpc-addr", "0.0.0.0:9001"),
			"--grpc-addr 0.0.0.0:9001 is not a loopback address"},
		{"LAN raft in plaintext", append(append([]string{}, admin...), "--raft-addr", "10.1.2.3:7001", "--grpc-addr", "127.0.0.1:9001"),
			"--raft-addr 10.1.2.3:7001 is not a loopback address"},
	}
	for _, tc := range cases {
		code, _, errOut := runArgs(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 saying %q", tc.name, code, errOut, tc.want)
		}
		if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 0 {
			t.Errorf("%s: stderr has %d lines, want one sentence: %q", tc.name, n+1, errOut)
		}
	}
}

// TestTLSEnvForCtl: ctl reads the TLS files from GROUNDSKEEPER_TLS_* (a
// half-given environment is refused like half-given flags).
func TestTLSEnvForCtl(t *testing.T) {
	t.Setenv(envTLSCA, "ca.pem")
	t.Setenv(envTLSCert, "")
	t.Setenv(envTLSKey, "k.pem")
	code, _, errOut := runArgs("ctl", "status", "--admin", "127.0.0.1:9001")
	if code != 2 || !strings.Contains(errOut, "the certificate file is missing") {
		t.Fatalf("exit %d, stderr %q; want a usage error naming the certificate file", code, errOut)
	}
}

// TestStatusShowsTransport: ctl status says whether the answering node
// runs mutual TLS, plaintext on loopback, or --insecure (loudly), in text
// and in --json.
func TestStatusShowsTransport(t *testing.T) {
	for _, tc := range []struct {
		st       *pb.StatusResponse
		text     string
		jsonPart string
	}{
		{&pb.StatusResponse{NodeId: "a1", Tls: true}, "transport: mutual TLS", `"tls":true`},
		{&pb.StatusResponse{NodeId: "a1"}, "transport: plaintext on loopback only", `"tls":false`},
		{&pb.StatusResponse{NodeId: "a1", Insecure: true}, "transport: INSECURE: plaintext on a non-loopback address (--insecure)", `"insecure":true`},
	} {
		var text, js bytes.Buffer
		if err := printStatus(&ctlOpts{out: &text}, tc.st); err != nil {
			t.Fatal(err)
		}
		if err := printStatus(&ctlOpts{out: &js, json: true}, tc.st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text.String(), tc.text) {
			t.Errorf("status text %q does not say %q", text.String(), tc.text)
		}
		if compact := strings.ReplaceAll(strings.ReplaceAll(js.String(), " ", ""), "\n", ""); !strings.Contains(compact, tc.jsonPart) {
			t.Errorf("status --json %s lacks %s", js.String(), tc.jsonPart)
		}
	}
}
