package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// devPKI is dev's own CA in DIR/pki: a certificate for each admin, each
// worker and one operator ("dev") for ctl. A kept --data-dir reuses what
// an earlier run made.
type devPKI struct{ dir string }

func newDevPKI(dataDir string) (*devPKI, error) {
	p := &devPKI{dir: filepath.Join(dataDir, "pki")}
	if _, err := os.Stat(filepath.Join(p.dir, "ca.pem")); errors.Is(err, fs.ErrNotExist) {
		if _, err := certs.NewCA(p.dir); err != nil {
			return nil, fmt.Errorf("dev CA: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	return p, nil
}

// source issues (once) and loads the certificate of role named name. An
// admin's is valid for host; other roles only connect, and Issue refuses
// hosts for them (only admin certificates serve).
func (p *devPKI) source(role certs.Role, name, host string) (*certs.Source, error) {
	files := certs.IssuedFiles(p.dir, name)
	if _, err := os.Stat(files.Cert); errors.Is(err, fs.ErrNotExist) {
		var hosts []string
		if role == certs.RoleAdmin {
			hosts = []string{host}
		}
		if _, err := certs.Issue(p.dir, role, name, hosts, 0); err != nil {
			return nil, fmt.Errorf("dev certificate %s: %w", name, err)
		}
	}
	src, err := certs.Load(files, certs.Options{})
	if err != nil {
		return nil, fmt.Errorf("dev certificate %s: %w", name, err)
	}
	return src, nil
}

// ctlFlags are the ctl flags of the operator certificate.
func (p *devPKI) ctlFlags() string {
	f := certs.IssuedFiles(p.dir, "dev")
	return fmt.Sprintf("--tls-ca %s --tls-cert %s --tls-key %s", f.CA, f.Cert, f.Key)
}
