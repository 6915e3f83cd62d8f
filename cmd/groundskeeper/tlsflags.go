package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// tlsFlags are --tls-ca, --tls-cert and --tls-key, shared by admin, worker
// and ctl: all three (mutual TLS) or none (plaintext).
type tlsFlags struct{ files certs.Files }

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.files.CA, "tls-ca", t.files.CA, "PEM file of the CA that signs every certificate of the cluster (with --tls-cert and --tls-key: mutual TLS)")
	fs.StringVar(&t.files.Cert, "tls-cert", t.files.Cert, "PEM file of this process's certificate (groundskeeper tls cert)")
	fs.StringVar(&t.files.Key, "tls-key", t.files.Key, "PEM file of this process's private key")
}

// Environment variables ctl reads the TLS files from when the flags are
// not given.
const (
	envTLSCA   = "GROUNDSKEEPER_TLS_CA"
	envTLSCert = "GROUNDSKEEPER_TLS_CERT"
	envTLSKey  = "GROUNDSKEEPER_TLS_KEY"
)

// fromEnv fills the files from the GROUNDSKEEPER_TLS_* variables (ctl);
// flags parsed afterwards override them.
func (t *tlsFlags) fromEnv() {
	t.files = certs.Files{CA: os.Getenv(envTLSCA), Cert: os.Getenv(envTLSCert), Key: os.Getenv(envTLSKey)}
}

// validate refuses a half-given configuration as a usage error.
func (t *tlsFlags) validate() error {
	if err := t.files.Validate(); err != nil {
		return usagef("%s", err)
	}
	return nil
}

// load returns the Source of the files, or nil when none was given. A
// reload that fails later (a rotation half done) is logged and the last
// good certificates kept.
func (t *tlsFlags) load(logger hclog.Logger) (*certs.Source, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if !t.files.Enabled() {
		return nil, nil
	}
	opts := certs.Options{}
	if logger != nil {
		opts.Report = func(err error) {
			if err != nil {
				logger.Error("the TLS files changed but do not load: keeping the certificates in use", "error", err)
			} else {
				logger.Info("loaded the changed TLS files")
			}
		}
	}
	src, err := certs.Load(t.files, opts)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return src, nil
}
