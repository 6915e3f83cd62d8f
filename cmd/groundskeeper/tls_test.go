package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// runArgs runs the binary's entry point and returns its exit code, stdout
// and stderr.
func runArgs(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := runIO(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestTLSCommands: tls ca then tls cert write loadable files with the
// names scripts rely on, and print the flags that use them.
func TestTLSCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errOut := runArgs("tls", "ca", "--dir", dir)
	if code != 0 || errOut != "" {
		t.Fatalf("tls ca: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"wrote " + filepath.Join(dir, "ca.pem"), "wrote " + filepath.Join(dir, "ca-key.pem"), "mode 0600"} {
		if !strings.Contains(out, want) {
			t.Errorf("tls ca printed %q, want it to say %q", out, want)
		}
	}
	code, out, errOut = runArgs("tls", "cert", "--dir", dir, "--role", "admin", "--name", "a1", "--host", "10.0.0.1,admin1.example.com", "--days", "30")
	if code != 0 || errOut != "" {
		t.Fatalf("tls cert: exit %d, stderr %q", code, errOut)
	}
	f := certs.IssuedFiles(dir, "a1")
	if want := "--tls-ca " + f.CA + " --tls-cert " + f.Cert + " --tls-key " + f.Key; !strings.Contains(out, want) {
		t.Errorf("tls cert printed %q, want the flags %q", out, want)
	}
	if !strings.Contains(out, "role admin, name a1") || !strings.Contains(out, "admin1.example.com") || !strings.Contains(out, "10.0.0.1") {
		t.Errorf("tls cert printed %q, want the role, name and hosts", out)
	}
	src, err := certs.Load(f, certs.Options{})
	if err != nil {
		t.Fatalf("load what tls cert wrote: %v", err)
	}
	if role, name, err := src.Identity(); err != nil || role != certs.RoleAdmin || name != "a1" {
		t.Errorf("identity %q %q %v", role, name, err)
	}
	if code, out, errOut := runArgs("tls", "cert", "--dir", dir, "--role", "reader", "--name", "r1"); code != 0 || !strings.Contains(out, "connects only") {
		t.Errorf("tls cert reader: exit %d, %q, stderr %q; want it to say it connects only", code, out, errOut)
	}
	if fi, err := os.Stat(f.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	if code, out, _ := runArgs("tls", "--help"); code != 0 || !strings.Contains(out, "cert --dir DIR --role ROLE --name NAME") {
		t.Errorf("tls --help: exit %d, %q", code, out)
	}
}

// TestTLSCommandErrors: mistakes are one sentence on stderr, exit 2 for
// usage mistakes and 1 for refusals that no flag would fix on the spot
// (existing files, no CA yet); nothing is written to stdout.
func TestTLSCommandErrors(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runArgs("tls", "ca", "--dir", dir); code != 0 {
		t.Fatalf("tls ca: %s", errOut)
	}
	if code, _, errOut := runArgs("tls", "cert", "--dir", dir, "--role", "worker", "--name", "w1"); code != 0 {
		t.Fatalf("tls cert: %s", errOut)
	}
	noCA := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tls"}, 2, "tls needs a command: ca or cert"},
		{[]string{"tls", "csr"}, 2, `unknown tls command "csr" (want ca or cert)`},
		{[]string{"tls", "ca"}, 2, "--dir is required"},
		{[]string{"tls", "ca", "--dir", dir, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"tls", "ca", "--dir", dir}, 1, "ca.pem already exists; refusing to overwrite it"},
		{[]string{"tls", "ca", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"tls", "cert", "--role", "worker", "--name", "w2"}, 2, "--dir is required"},
		{[]string{"tls", "cert", "--dir", dir, "--name", "w2"}, 2, "--role is required"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "worker"}, 2, "--name is required"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "king", "--name", "w2"}, 2, `unknown role "king" (want admin, worker, operator or reader)`},
		{[]string{"tls", "cert", "--dir", dir, "--role", "worker", "--name", "../w2"}, 2, `name "../w2" may hold only`},
		{[]string{"tls", "cert", "--dir", dir, "--role", "admin", "--name", "a1", "--host", "10.0.0.1:9001"}, 2, "has a port"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "worker", "--name", "w2", "--days", "0"}, 2, "--days must be a positive number"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "reader", "--name", "r2", "--host", "localhost"}, 2, "only admin certificates name hosts"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "worker", "--name", "w2", "--days", "4000"}, 2, "would outlive the CA"},
		{[]string{"tls", "cert", "--dir", dir, "--role", "worker", "--name", "w1"}, 1, "w1.pem already exists; refusing to overwrite it"},
		{[]string{"tls", "cert", "--dir", noCA, "--role", "worker", "--name", "w2"}, 1, "ca.pem does not exist: make a CA first (groundskeeper tls ca --dir " + noCA + ")"},
	} {
		code, out, errOut := runArgs(tc.args...)
		msg := strings.TrimSuffix(errOut, "\n")
		if code != tc.code || !strings.HasPrefix(msg, "groundskeeper tls: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line saying %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q on stdout", tc.args, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "w2.pem")); err == nil {
		t.Error("a refused tls cert wrote w2.pem")
	}
}
