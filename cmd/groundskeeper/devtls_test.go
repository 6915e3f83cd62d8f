package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// TestDevPKIHostsForAdminsOnly: dev issues its admins certificates for
// the host it binds, and its worker and operator certificates with no
// host (certs refuses hosts outside the admin role: only admins serve).
func TestDevPKIHostsForAdminsOnly(t *testing.T) {
	p, err := newDevPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role  certs.Role
		name  string
		hosts bool
	}{
		{certs.RoleAdmin, "a1", true},
		{certs.RoleWorker, "w1", false},
		{certs.RoleOperator, "dev", false},
	} {
		src, err := p.source(tc.role, tc.name, "127.0.0.1")
		if err != nil {
			t.Fatalf("%s %s: %v", tc.role, tc.name, err)
		}
		leaf := src.Leaf()
		if got := len(leaf.IPAddresses)+len(leaf.DNSNames) > 0; got != tc.hosts {
			t.Errorf("%s %s: certificate names hosts %v %v; want hosts %v", tc.role, tc.name, leaf.DNSNames, leaf.IPAddresses, tc.hosts)
		}
	}
}

// TestTLSReportLevels: a key pair loaded with a warning (a key file others
// may read) is logged as a warning, not as an error that says the files
// do not load.
func TestTLSReportLevels(t *testing.T) {
	dir := t.TempDir()
	if _, err := certs.NewCA(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Issue(dir, certs.RoleWorker, "w1", nil, 0); err != nil {
		t.Fatal(err)
	}
	files := certs.IssuedFiles(dir, "w1")
	if err := os.Chmod(files.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
	tf := tlsFlags{files: files}
	if _, err := tf.load(logger); err != nil {
		t.Fatalf("load: %v", err)
	}
	out := buf.String()
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, "0644") || strings.Contains(out, "[ERROR]") {
		t.Errorf("log %q; want the readable key file as a warning and no error", out)
	}
}
