package seaweed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// SeaweedFS protects its gRPC ports with mutual TLS configured in
// security.toml, which every weed process reads the same way
// (weed/util/config.go, weed/security/tls.go). We read it as weed does, so
// one file serves the cluster and us:
//
//   - the file is the first security.toml in ".", "$HOME/.seaweedfs",
//     "/usr/local/etc/seaweedfs" and "/etc/seaweedfs" (viper's search
//     order), unless one is named (--seaweedfs-security), which is read
//     alone, its relative paths taken from its own directory as
//     `weed filer.sync -a.security` does;
//   - with the search, every key may be overridden by an environment
//     variable: WEED_ and the key in upper case, dots as underscores
//     (WEED_GRPC_CA, WEED_GRPC_ADMIN_CERT), even without a file; an empty
//     variable overrides nothing;
//   - a client presents its component's certificate: the admin
//     [grpc.admin], a worker [grpc.worker], as weed admin and weed worker
//     do (client_cert/client_key when given, else cert/key) and verifies
//     the server's chain against grpc.ca with no host name check; when
//     allowed_server_commonNames (or allowed_server_wildcard_domain) is
//     set, in the component's section or [grpc], the server's certificate
//     must also carry one of the names.
//
// Where weed would fail at start (cert without key, cert and key without
// grpc.ca, a file it cannot load), so do we, in one sentence. One case
// weed lets through we refuse too: grpc.ca set but no certificate for our
// component. weed would dial in plaintext, which a cluster with TLS on
// refuses on every call; it is a configuration left half done, not a
// choice. No file and no grpc.ca: plaintext, as weed.

// The security.toml sections our processes present.
const (
	ComponentAdmin  = "grpc.admin"
	ComponentWorker = "grpc.worker"
)

// securityFileName is the name weed searches for.
const securityFileName = "security.toml"

// SecurityOptions says which security.toml to read and as whom.
type SecurityOptions struct {
	// File is security.toml to read (--seaweedfs-security); "" searches
	// where weed does.
	File string
	// Component is the section whose certificate is presented
	// (ComponentAdmin, ComponentWorker).
	Component string
	// Report receives the certificate reload reports (certs.Options).
	Report func(error)

	// lookupEnv and dirs replace the environment and the search path
	// (tests); nil: os.LookupEnv and searchDirs.
	lookupEnv func(string) (string, bool)
	dirs      []string
}

// Security is how a process reaches SeaweedFS: in plaintext or with
// mutual TLS. The nil *Security is plaintext.
type Security struct {
	file      string // the security.toml used; "" none
	component string
	src       *certs.Source // nil: plaintext
	allowed   map[string]bool
	wildcard  string
}

// searchDirs is weed's search path for security.toml, in order
// (LoadConfiguration; -config_dir is empty unless given to weed).
func searchDirs(lookupEnv func(string) (string, bool)) []string {
	home, _ := lookupEnv("HOME") // viper expands "$HOME/.seaweedfs" ("/.seaweedfs" without HOME)
	return []string{".", home + "/.seaweedfs", "/usr/local/etc/seaweedfs", "/etc/seaweedfs"}
}

// LoadSecurity finds and reads security.toml for opts.Component and
// loads its certificates. A configuration weed would refuse, or left half
// done, is an error naming the file and the key at fault.
func LoadSecurity(opts SecurityOptions) (*Security, error) {
	if opts.Component == "" {
		return nil, errors.New("no security.toml component given")
	}
	lookupEnv := opts.lookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	file, useEnv := opts.File, true
	if file != "" {
		useEnv = false // as weed's -a.security: the file alone
	} else {
		dirs := opts.dirs
		if dirs == nil {
			dirs = searchDirs(lookupEnv)
		}
		for _, d := range dirs {
			p := filepath.Join(d, securityFileName)
			if _, err := os.Stat(p); err == nil {
				file = p
				break
			}
		}
	}
	keys := map[string]string{}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("SeaweedFS security file: %w", err)
		}
		var tree map[string]any
		if err := toml.Unmarshal(raw, &tree); err != nil {
			return nil, fmt.Errorf("SeaweedFS security file %s is not valid TOML: %w", file, err)
		}
		flatten("", tree, keys)
	}
	where := "no security.toml"
	if file != "" {
		where = file
	}
	get := func(key string) string {
		key = strings.ToLower(key) // viper's keys are case-insensitive
		if useEnv {
			if v, ok := lookupEnv("WEED_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))); ok && v != "" {
				return v
			}
		}
		return keys[key]
	}
	path := func(key string) string {
		p := get(key)
		if p != "" && !useEnv && !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		return p
	}
	c := opts.Component
	s := &Security{file: file, component: c}
	cert, key := path(c+".client_cert"), path(c+".client_key")
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("SeaweedFS security (%s): %s.client_cert and %s.client_key must both be set", where, c, c)
	}
	if cert == "" {
		cert, key = path(c+".cert"), path(c+".key")
	}
	ca := path("grpc.ca")
	switch {
	case cert == "" && key == "" && ca == "":
		return s, nil // plaintext, as weed
	case cert == "" && key == "":
		return nil, fmt.Errorf("SeaweedFS security (%s) sets grpc.ca but no %s.cert and %s.key: the cluster expects mutual TLS, so give this process its certificate there (weed would dial in plaintext and be refused)", where, c, c)
	case cert == "" || key == "":
		return nil, fmt.Errorf("SeaweedFS security (%s): %s.cert and %s.key must both be set", where, c, c)
	case ca == "":
		return nil, fmt.Errorf("SeaweedFS security (%s): %s cert and key are set but grpc.ca is not", where, c)
	}
	src, err := certs.Load(certs.Files{CA: ca, Cert: cert, Key: key}, certs.Options{Report: opts.Report})
	if err != nil {
		return nil, fmt.Errorf("SeaweedFS security (%s, %s): %w", where, c, err)
	}
	s.src = src
	names := get(c + ".allowed_server_commonNames")
	if names == "" {
		names = get("grpc.allowed_server_commonNames")
	}
	s.allowed = map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			s.allowed[n] = true
		}
	}
	if s.wildcard = get(c + ".allowed_server_wildcard_domain"); s.wildcard == "" {
		s.wildcard = get("grpc.allowed_server_wildcard_domain")
	}
	return s, nil
}

// flatten turns TOML tables into viper's dotted, lower-case keys. A value
// that is not a table is kept as weed's GetString would read it.
func flatten(prefix string, tree map[string]any, out map[string]string) {
	for k, v := range tree {
		k = strings.ToLower(k)
		if prefix != "" {
			k = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			flatten(k, v, out)
		case string:
			out[k] = v
		case []any:
			// viper's GetString of an array is empty
		default:
			out[k] = fmt.Sprint(v)
		}
	}
}

// TLS reports whether SeaweedFS is dialed with mutual TLS.
func (s *Security) TLS() bool { return s != nil && s.src != nil }

// File is the security.toml read ("" when none was found).
func (s *Security) File() string {
	if s == nil {
		return ""
	}
	return s.file
}

// Source is the certificate material in use (nil in plaintext).
func (s *Security) Source() *certs.Source {
	if s == nil {
		return nil
	}
	return s.src
}

// String says how SeaweedFS is reached, for the log.
func (s *Security) String() string {
	switch {
	case s == nil || (s.src == nil && s.file == ""):
		return "plaintext (no security.toml found)"
	case s.src == nil:
		return "plaintext (" + s.file + " configures no gRPC TLS)"
	default:
		return fmt.Sprintf("mutual TLS as %s (%s, certificate %s)", s.component, s.file, s.src.Files().Cert)
	}
}

// DialOptions are the options that make a gRPC connection to SeaweedFS
// use this security: none in plaintext (the dialers default to it).
func (s *Security) DialOptions() []grpc.DialOption {
	if !s.TLS() {
		return nil
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(&seaweedCreds{TransportCredentials: credentials.NewTLS(s.clientConfig()), s: s})}
}

// clientConfig is SeaweedFS's client side: present the certificate in
// use, verify the server's chain against the CA in use with no host name
// check (SeaweedFS certificates seldom name the address dialed), then the
// allowed server names if any. Both are read at each handshake, so a
// rotation of the files applies to the next connection.
func (s *Security) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is verified in VerifyConnection, without the host name.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			_, cert := s.src.Current()
			return cert, nil
		},
		VerifyConnection: s.verifyServer,
	}
}

func (s *Security) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	pool, _ := s.src.Current()
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the server's certificate %q does not verify against grpc.ca %s: %w", leaf.Subject.CommonName, s.src.Files().CA, err)
	}
	if len(s.allowed) == 0 && s.wildcard == "" {
		return nil
	}
	for _, n := range append([]string{leaf.Subject.CommonName}, leaf.DNSNames...) {
		if s.allowed[n] || matchesWildcardDomain(n, s.wildcard) {
			return nil
		}
	}
	for _, u := range leaf.URIs {
		if s.allowed[u.String()] {
			return nil
		}
	}
	return fmt.Errorf("the server's certificate %q is not among allowed_server_commonNames or allowed_server_wildcard_domain", leaf.Subject.CommonName)
}

// matchesWildcardDomain is weed's: name must be a real subdomain of the
// wildcard domain (security/tls.go).
func matchesWildcardDomain(name, domain string) bool {
	name = strings.TrimSuffix(name, ".")
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" || len(name) <= len(domain) || !strings.HasSuffix(name, domain) {
		return false
	}
	if domain[0] != '.' && name[len(name)-len(domain)-1] != '.' {
		return false
	}
	return isDomainName(strings.TrimPrefix(name, "*."))
}

func isDomainName(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	nonNumeric := false
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c != '-' && c != '_' && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') {
				return false
			}
			nonNumeric = nonNumeric || c < '0' || c > '9'
		}
	}
	return nonNumeric
}

// seaweedCreds says, when a handshake fails, that it is SeaweedFS's TLS
// and which certificate was presented: grpc's own wording names neither.
type seaweedCreds struct {
	credentials.TransportCredentials
	s *Security
}

func (c *seaweedCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		return nil, nil, fmt.Errorf("SeaweedFS mutual TLS with %s as %s (certificate %s) failed: %w", authority, c.s.component, c.s.src.Files().Cert, err)
	}
	return &refusalConn{Conn: nc, c: c, authority: authority}, info, nil
}

// refusalConn names a refusal of our certificate. In TLS 1.3 the server
// judges the client's certificate after the client's side of the
// handshake is done, so its refusal (another CA, a name not in its
// allowed_commonNames) arrives as an alert on the first read, which grpc
// would report as a bare "remote error: tls: bad certificate".
type refusalConn struct {
	net.Conn
	c         *seaweedCreds
	authority string
	read      atomic.Bool // a read succeeded: the server accepted us
}

func (r *refusalConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if err == nil || n > 0 {
		r.read.Store(true)
		return n, err
	}
	if !r.read.Load() && strings.Contains(err.Error(), "remote error: tls:") {
		return n, fmt.Errorf("SeaweedFS at %s refused our certificate %s (%s): it must be signed by the cluster's grpc.ca and, where the server sets allowed_commonNames, be named there: %w",
			r.authority, r.c.s.src.Files().Cert, r.c.s.component, err)
	}
	return n, err
}

// Write names a refusal too: the server may close the connection on its
// alert before our first write (grpc's preface), which then fails bare.
func (r *refusalConn) Write(p []byte) (int, error) {
	n, err := r.Conn.Write(p)
	if err != nil && !r.read.Load() {
		return n, fmt.Errorf("SeaweedFS at %s closed the connection right after the TLS handshake, as it does when it refuses our certificate %s (%s): %w",
			r.authority, r.c.s.src.Files().Cert, r.c.s.component, err)
	}
	return n, err
}

func (c *seaweedCreds) Clone() credentials.TransportCredentials {
	return &seaweedCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}

// prefaceRefusal is how a plaintext gRPC client sees a server that speaks
// only TLS: the server reads our HTTP/2 preface as a bad TLS handshake and
// closes the connection before sending its own.
const (
	prefaceRefusal  = "error reading server preface"
	plaintextAdvice = "dials in plaintext"
)

// explainRefusal says what err means when it is a TLS-only SeaweedFS
// refusing a client that dialled in plaintext (no security.toml, or one
// without grpc.ca): grpc's own words ("error reading server preface: EOF")
// name neither TLS nor the fix. Other errors are returned as they are. A
// TLS client never sees this error bare: seaweedCreds names a refusal
// after the handshake (refusalConn).
func explainRefusal(err error) error {
	if err == nil || !strings.Contains(err.Error(), prefaceRefusal) || strings.Contains(err.Error(), plaintextAdvice) {
		return err
	}
	return fmt.Errorf("it closed the connection before answering, as SeaweedFS with gRPC TLS on does to a client without a certificate, and this process %s: give it the cluster's security.toml (grpc.ca and this component's cert and key) with --seaweedfs-security or in ., ~/.seaweedfs, /usr/local/etc/seaweedfs or /etc/seaweedfs (%w)", plaintextAdvice, err)
}
