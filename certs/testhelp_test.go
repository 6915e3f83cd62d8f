package certs

import (
	"os"
	"testing"
)

// newCADir makes a CA in a fresh directory.
func newCADir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := NewCA(dir); err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return dir
}

// mustIssue issues a certificate in dir and returns its files.
func mustIssue(t *testing.T, dir string, role Role, name string, hosts ...string) Files {
	t.Helper()
	if _, err := Issue(dir, role, name, hosts, 0); err != nil {
		t.Fatalf("Issue %s %s: %v", role, name, err)
	}
	return IssuedFiles(dir, name)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
