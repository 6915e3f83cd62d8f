package main

import (
	"errors"
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
		opts.Report = func(err error) { reportTLS(logger, err) }
	}
	src, err := certs.Load(t.files, opts)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return src, nil
}

// reportTLS logs what a Source reports: nil is a change loaded in full;
// otherwise each part is either a warning (loaded, but a mistake to fix)
// or a refusal (the last good CA pool or key pair kept). A warning logged
// as an error would cry wolf, and a refusal logged as a warning would hide
// a rotation that did not happen, so the parts are logged apart.
func reportTLS(logger hclog.Logger, err error) {
	if err == nil {
		logger.Info("loaded the changed TLS files")
		return
	}
	for _, e := range splitErrors(err) {
		if errors.Is(e, certs.ErrWarning) {
			logger.Warn("TLS files loaded with a warning", "warning", e)
		} else {
			logger.Error("the TLS files changed but do not load: keeping the certificates in use", "error", e)
		}
	}
}

// splitErrors returns the errors err joins (errors.Join or alike), or err
// alone.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
