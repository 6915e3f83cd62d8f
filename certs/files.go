package certs

import "strings"

// Files names the three PEM files of a TLS configuration: the CA
// certificate(s) peers must chain to, this process's certificate (and any
// intermediates after it) and its private key. All three or none.
type Files struct {
	CA, Cert, Key string
}

// Enabled reports whether TLS is configured (all three files given). Call
// Validate first: a half-given configuration is neither on nor off.
func (f Files) Enabled() bool { return f.CA != "" && f.Cert != "" && f.Key != "" }

// Validate accepts all three files or none; otherwise it names what is
// missing in one sentence.
func (f Files) Validate() error {
	var missing []string
	if f.CA == "" {
		missing = append(missing, "the CA file")
	}
	if f.Cert == "" {
		missing = append(missing, "the certificate file")
	}
	if f.Key == "" {
		missing = append(missing, "the key file")
	}
	if len(missing) == 0 || len(missing) == 3 {
		return nil
	}
	verb := "is"
	if len(missing) > 1 {
		verb = "are"
	}
	return invalidError("incomplete TLS configuration: " + strings.Join(missing, " and ") + " " + verb +
		" missing (the CA, certificate and key files go together: give all three or none)")
}
