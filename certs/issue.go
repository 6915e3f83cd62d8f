package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// The files `groundskeeper tls` writes (scripts depend on these names).
const (
	CAFile    = "ca.pem"     // the CA certificate: every node's CA file
	CAKeyFile = "ca-key.pem" // the CA's key: only issuing needs it
)

// Validities of what NewCA and Issue make.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	DefaultValidity = 365 * 24 * time.Hour
	// backdate is subtracted from NotBefore so that a peer whose clock is a
	// little behind accepts a certificate issued a moment ago.
	backdate = 5 * time.Minute
)

// MaxNameLen is the longest name a certificate is issued for (the limit of
// a Common Name).
const MaxNameLen = 64

// DefaultHosts are in every admin certificate Issue makes, besides the
// hosts asked for: an admin reached on its own machine (dev, tests, a ctl
// on the admin's host) verifies without listing them. Only admins serve,
// so only their certificates name hosts: a worker's or a person's
// certificate names none and cannot pass for a server anywhere.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// IssuedFiles returns the files `tls cert --dir dir --name name` writes, with
// the CA beside them: the Files to run with that certificate.
func IssuedFiles(dir, name string) Files {
	return Files{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CheckName accepts a name a certificate can be issued for: it becomes the
// Common Name and the file names NAME.pem and NAME-key.pem, so it has
// letters, digits, '.', '_' and '-' only, starts with a letter or digit, is
// at most MaxNameLen long, and is neither "ca" nor ends in "-key" (which
// would be another certificate's key file).
func CheckName(name string) error {
	switch {
	case name == "":
		return invalidError("a certificate needs a name (an admin's raft id, a worker's id, or a person's or tool's name)")
	case len(name) > MaxNameLen:
		return invalidError(fmt.Sprintf("name %q is %d characters long; at most %d", name, len(name), MaxNameLen))
	case !nameRE.MatchString(name):
		return invalidError(fmt.Sprintf("name %q may hold only letters, digits, '.', '_' and '-', starting with a letter or digit (it names the files)", name))
	case name == "ca" || strings.HasSuffix(name, "-key"):
		return invalidError(fmt.Sprintf("name %q is taken by the CA's or a key's file names; choose another", name))
	}
	return nil
}

var dnsRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// parseHosts splits hosts into IP and DNS SANs, with DefaultHosts first
// and duplicates dropped.
func parseHosts(hosts []string) ([]net.IP, []string, error) {
	var ips []net.IP
	var dns []string
	seen := map[string]bool{}
	for _, h := range append(append([]string(nil), DefaultHosts...), hosts...) {
		h = strings.TrimSpace(h)
		if h == "" || seen[strings.ToLower(h)] {
			continue
		}
		seen[strings.ToLower(h)] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			return nil, nil, invalidError(fmt.Sprintf("host %q has a port; give the host name or IP address alone", h))
		}
		if len(h) > 253 || !dnsRE.MatchString(h) {
			return nil, nil, invalidError(fmt.Sprintf("host %q is neither an IP address nor a DNS name", h))
		}
		dns = append(dns, h)
	}
	return ips, dns, nil
}

// NewCA makes a CA in dir (created if missing): an ECDSA P-256 key in
// ca-key.pem (mode 0600) and its self-signed certificate, valid for
// CAValidity, in ca.pem. It refuses to overwrite either file.
func NewCA(dir string) (*x509.Certificate, error) {
	if dir == "" {
		return nil, invalidError("a directory for the CA's files is required")
	}
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return nil, err
	}
	// The directory holds the CA's key: private unless it existed already.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"groundskeeper"},
			// A CA's name tells two CAs apart in a verification error.
			CommonName: "groundskeeper CA " + fmt.Sprintf("%032x", serial)[:8],
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	if err := writeKeyAndCert(key, der, keyPath, certPath); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Issue makes a key and a certificate for name with role, signed by the CA
// in dir, valid for validity (0: DefaultValidity; not past the CA's own
// expiry). Only an admin serves (raft, the gRPC services), so only an
// admin's certificate can (ExtKeyUsage ServerAuth and ClientAuth) and
// names the hosts (DNS names or IP addresses, every address its clients
// dial) and DefaultHosts; every other role's certificate only connects
// (ClientAuth), names no host, and hosts given for it are refused. It
// writes DIR/NAME-key.pem (mode 0600) and DIR/NAME.pem and refuses to
// overwrite either.
func Issue(dir string, role Role, name string, hosts []string, validity time.Duration) (*x509.Certificate, error) {
	if validity < 0 {
		return nil, invalidError(fmt.Sprintf("validity %v is negative", validity))
	}
	if validity == 0 {
		validity = DefaultValidity
	}
	now := time.Now()
	return issue(dir, role, name, hosts, now.Add(-backdate), now.Add(validity))
}

// IssueBetween is Issue with the validity period given: the certificate
// is valid from notBefore to notAfter exactly (no backdating). It exists
// for tests that need a certificate a server must refuse as expired (a
// notAfter in the past) or not yet valid; `groundskeeper tls` never calls
// it. notAfter must be after notBefore.
func IssueBetween(dir string, role Role, name string, hosts []string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if !notAfter.After(notBefore) {
		return nil, invalidError(fmt.Sprintf("a certificate valid from %s until %s is never valid: the end must come after the start",
			notBefore.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339)))
	}
	return issue(dir, role, name, hosts, notBefore, notAfter)
}

// issue is Issue with the validity period given.
func issue(dir string, role Role, name string, hosts []string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if dir == "" {
		return nil, invalidError("the directory holding the CA is required")
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	// A certificate that serves passes for the server of every name it
	// holds: a reader's with localhost in it would pass for the admin on
	// the admin's own machine.
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	var ips []net.IP
	var dns []string
	if role == RoleAdmin {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		var err error
		if ips, dns, err = parseHosts(hosts); err != nil {
			return nil, err
		}
	} else if len(hosts) > 0 {
		return nil, invalidError(fmt.Sprintf("only admin certificates name hosts (a %s only connects, it never serves): drop the hosts %s", role, strings.Join(hosts, ",")))
	}
	files := IssuedFiles(dir, name)
	if err := refuseExisting(files.Cert, files.Key); err != nil {
		return nil, err
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	if notAfter.After(ca.NotAfter) {
		return nil, invalidError(fmt.Sprintf("a certificate valid until %s would outlive the CA in %s, which expires %s",
			notAfter.UTC().Format(time.DateOnly), files.CA, ca.NotAfter.UTC().Format(time.DateOnly)))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"groundskeeper"},
			OrganizationalUnit: []string{string(role)},
			CommonName:         name,
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	if err := writeKeyAndCert(key, der, files.Key, files.Cert); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// loadCA reads the CA certificate in dir whose public key is the one in
// ca-key.pem (ca.pem may hold several CAs while one is being replaced).
func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s does not exist: make a CA first (groundskeeper tls ca --dir %s)", certPath, dir)
	}
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s does not exist: issuing needs the CA's key beside %s", keyPath, certPath)
	}
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	type publicKey interface{ Equal(crypto.PublicKey) bool }
	for rest := certPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", certPath, err)
		}
		if pub, ok := c.PublicKey.(publicKey); ok && c.IsCA && pub.Equal(key.Public()) {
			return c, key, nil
		}
	}
	return nil, nil, fmt.Errorf("%s holds no CA certificate for the key in %s", certPath, keyPath)
}

// parseKey reads a PEM private key (PKCS #8, or SEC 1 for EC).
func parseKey(b []byte) (crypto.Signer, error) {
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, errors.New("no PEM private key")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", k)
		}
		return s, nil
	}
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// refuseExisting fails, naming the file, if any of paths exists.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it (remove it first, or write elsewhere)", p)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeKeyAndCert writes the key (0600) and then the certificate (0644),
// each only if it does not exist yet; if either fails, neither is left.
func writeKeyAndCert(key *ecdsa.PrivateKey, der []byte, keyPath, certPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		return err
	}
	if err := writeNew(certPath, 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
		_ = os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path (failing if it exists) with one PEM block, synced.
func writeNew(path string, mode os.FileMode, block *pem.Block) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite it (remove it first, or write elsewhere)", path)
	}
	if err != nil {
		return err
	}
	err = pem.Encode(f, block)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
