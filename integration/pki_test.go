package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// The package runs mutual TLS everywhere by default: runMain makes one CA
// (harnessPKI), every admin and worker the tests start gets a certificate
// for its id from it (node.startArgs), every ctl run an operator
// certificate (runBinWithin), every test gRPC client an operator's and
// grpcurl a reader's. A test that builds its own TLS (or --insecure)
// command line keeps it: see harnessTLSArgs.

// The names of the certificates ctl, the test gRPC clients and grpcurl
// use.
const (
	harnessOperator = "harness-operator"
	harnessReader   = "harness-reader"
)

// harnessPKI is the package-wide PKI made by runMain (nil until then: a
// test binary that starts no groundskeeper has none).
var harnessPKI *testPKI

// testPKI is a CA and the certificates issued from it on demand. Every
// issue writes into a directory of its own (the CA's files copied into
// it): an admin and a worker may share an id, and an admin whose
// addresses are not all in its certificate yet gets a new one, for every
// host it was seen with, beside the old (which a running process may
// still read).
type testPKI struct {
	dir string

	mu     sync.Mutex
	seq    int
	issued map[string]issuedCert // role/name -> the newest certificate
	creds  map[string]credentials.TransportCredentials
}

type issuedCert struct {
	files certs.Files
	hosts []string
}

// newTestPKI makes a CA in dir.
func newTestPKI(dir string) (*testPKI, error) {
	caDir := filepath.Join(dir, "ca")
	if _, err := certs.NewCA(caDir); err != nil {
		return nil, fmt.Errorf("make the integration CA: %w", err)
	}
	return &testPKI{dir: dir, issued: map[string]issuedCert{}, creds: map[string]credentials.TransportCredentials{}}, nil
}

// files returns the TLS files of a certificate of role for name, issuing
// it on first use. An admin certificate names hosts (the hosts of the
// addresses it listens at and advertises) besides the certs package's
// DefaultHosts (127.0.0.1, localhost, ::1); other roles name none.
func (p *testPKI) files(role certs.Role, name string, hosts ...string) (certs.Files, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := string(role) + "/" + name
	prev, ok := p.issued[key]
	missing := false
	for _, h := range hosts {
		if !slices.Contains(prev.hosts, h) && !slices.Contains(certs.DefaultHosts, h) {
			missing = true
		}
	}
	if ok && !missing {
		return prev.files, nil
	}
	all := append(slices.Clone(prev.hosts), hosts...)
	slices.Sort(all)
	all = slices.Compact(all)
	p.seq++
	dir := filepath.Join(p.dir, fmt.Sprintf("%s-%d", role, p.seq))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return certs.Files{}, err
	}
	for _, f := range []string{certs.CAFile, certs.CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(p.dir, "ca", f))
		if err != nil {
			return certs.Files{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			return certs.Files{}, err
		}
	}
	if _, err := certs.Issue(dir, role, name, all, 0); err != nil {
		return certs.Files{}, fmt.Errorf("issue a %s certificate for %s: %w", role, name, err)
	}
	f := certs.IssuedFiles(dir, name)
	p.issued[key] = issuedCert{files: f, hosts: all}
	return f, nil
}

// mustFiles is files failing the test on error.
func (p *testPKI) mustFiles(t testing.TB, role certs.Role, name string) certs.Files {
	t.Helper()
	f, err := p.files(role, name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dialOption is the transport of a test gRPC client holding a certificate
// of role (an operator's for the Admin service, an admin's for Internal),
// accepting only an admin as the server.
func (p *testPKI) dialOption(t testing.TB, role certs.Role, name string) grpc.DialOption {
	t.Helper()
	f := p.mustFiles(t, role, name)
	key := string(role) + "/" + name
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.creds[key]; ok {
		return grpc.WithTransportCredentials(c)
	}
	src, err := certs.Load(f, certs.Options{})
	if err != nil {
		t.Fatalf("load the %s certificate of %s: %v", role, name, err)
	}
	c := src.ClientCredentials(certs.RoleAdmin)
	p.creds[key] = c
	return grpc.WithTransportCredentials(c)
}

// operatorDial is the transport of the test gRPC clients of the Admin
// service.
func operatorDial(t testing.TB) grpc.DialOption {
	t.Helper()
	return harnessPKI.dialOption(t, certs.RoleOperator, harnessOperator)
}

// grpcurlTLS returns grpcurl's flags for mutual TLS with the harness
// reader's certificate.
func grpcurlTLS() ([]string, error) {
	if harnessPKI == nil {
		return nil, errors.New("no harness PKI (runMain makes it)")
	}
	f, err := harnessPKI.files(certs.RoleReader, harnessReader)
	if err != nil {
		return nil, err
	}
	return []string{"-cacert", f.CA, "-cert", f.Cert, "-key", f.Key}, nil
}

// tlsFlagArgs is the --tls-* flags of files.
func tlsFlagArgs(f certs.Files) []string {
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}

// ownsTransport reports whether args choose the transport themselves: any
// --tls-* flag (a TLS test's own certificates) or --insecure.
func ownsTransport(args []string) bool {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if strings.HasPrefix(name, "tls-") || name == "insecure" || name == "tls" {
			return true
		}
	}
	return false
}

// harnessRole returns the role, the certificate name and, for an admin,
// the hosts the harness gives a command line: an admin or a worker its
// --id (an admin the hosts of its --raft-addr, --raft-advertise and
// --grpc-addr), ctl the harness operator. ok is false for anything else
// (tls, dev, version, a command line without a usable id: bad input that
// never connects).
func harnessRole(args []string) (role certs.Role, name string, hosts []string, ok bool) {
	if len(args) == 0 {
		return "", "", nil, false
	}
	switch args[0] {
	case "ctl":
		return certs.RoleOperator, harnessOperator, nil, true
	case "admin":
		role = certs.RoleAdmin
	case "worker":
		role = certs.RoleWorker
	default:
		return "", "", nil, false
	}
	for i := 1; i < len(args); i++ {
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				break
			}
			value = args[i+1]
		}
		switch flagName {
		case "id":
			name = value
		case "raft-addr", "raft-advertise", "grpc-addr":
			if h, _, err := net.SplitHostPort(value); err == nil && h != "" && role == certs.RoleAdmin {
				hosts = append(hosts, h)
			}
		}
	}
	if certs.CheckName(name) != nil {
		return "", "", nil, false
	}
	return role, name, hosts, true
}

// harnessTLSArgs returns args with the harness PKI's --tls-ca, --tls-cert
// and --tls-key put right after the command (admin, worker or ctl), unless
// args choose their transport already (ownsTransport) or are not such a
// command (harnessRole).
func (p *testPKI) harnessTLSArgs(args []string) ([]string, error) {
	if p == nil || ownsTransport(args) {
		return args, nil
	}
	role, name, hosts, ok := harnessRole(args)
	if !ok {
		return args, nil
	}
	f, err := p.files(role, name, hosts...)
	if err != nil {
		return nil, err
	}
	out := append([]string{args[0]}, tlsFlagArgs(f)...)
	return append(out, args[1:]...), nil
}

// withHarnessTLS is harnessTLSArgs failing the test on error.
func withHarnessTLS(t testing.TB, args []string) []string {
	t.Helper()
	out, err := harnessPKI.harnessTLSArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHarnessTLSArgs: admins and workers get a certificate for their id
// (issued once), ctl the operator's, right after the command; a command
// line with its own --tls-* or --insecure, another command, or no usable
// id is left alone.
func TestHarnessTLSArgs(t *testing.T) {
	p, err := newTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	check := func(args []string, role certs.Role, name string, hosts ...string) {
		t.Helper()
		got, err := p.harnessTLSArgs(args)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if role == "" {
			if strings.Join(got, " ") != strings.Join(args, " ") {
				t.Fatalf("%q became %q, want it unchanged", args, got)
			}
			return
		}
		if len(got) != len(args)+6 || got[0] != args[0] || strings.Join(got[7:], " ") != strings.Join(args[1:], " ") {
			t.Fatalf("%q became %q, want the TLS flags right after %q", args, got, args[0])
		}
		f := certs.Files{CA: got[2], Cert: got[4], Key: got[6]}
		if got[1] != "--tls-ca" || got[3] != "--tls-cert" || got[5] != "--tls-key" {
			t.Fatalf("%q became %q, want --tls-ca, --tls-cert, --tls-key", args, got)
		}
		src, err := certs.Load(f, certs.Options{})
		if err != nil {
			t.Fatalf("%q: the injected files do not load: %v", args, err)
		}
		r, n, err := src.Identity()
		if err != nil || r != role || n != name {
			t.Fatalf("%q: certificate of %s %s (%v), want %s %s", args, r, n, err, role, name)
		}
		if role == certs.RoleAdmin {
			for _, h := range append([]string{"127.0.0.1", "localhost"}, hosts...) {
				if err := src.Leaf().VerifyHostname(h); err != nil {
					t.Fatalf("%q: the admin certificate does not serve %s: %v", args, h, err)
				}
			}
		} else if len(src.Leaf().IPAddresses)+len(src.Leaf().DNSNames) != 0 {
			t.Fatalf("%q: a %s certificate names hosts", args, role)
		}
	}
	check([]string{"admin", "--id", "a1", "--data-dir", "d"}, certs.RoleAdmin, "a1")
	check([]string{"admin", "--data-dir", "d", "--id=x7"}, certs.RoleAdmin, "x7")
	// An admin on other loopback addresses (the fault harness) is
	// served for them, and a restart on another keeps the first.
	check([]string{"admin", "--id", "f1", "--raft-addr", "127.0.0.11:1", "--grpc-addr=127.0.0.11:2", "--raft-advertise", "127.0.0.1:3"}, certs.RoleAdmin, "f1", "127.0.0.11")
	check([]string{"admin", "--id", "f1", "--grpc-addr", "127.0.0.12:2"}, certs.RoleAdmin, "f1", "127.0.0.11", "127.0.0.12")
	check([]string{"worker", "--id", "a1", "--admin", "127.0.0.1:1"}, certs.RoleWorker, "a1") // same id, other role
	check([]string{"ctl", "--admin", "127.0.0.1:1", "status"}, certs.RoleOperator, harnessOperator)
	check([]string{"ctl", "--admin", "x", "--tls-ca", "ca.pem", "status"}, "", "")
	check([]string{"admin", "--id", "a1", "--tls-cert=c.pem"}, "", "")
	check([]string{"admin", "--id", "a1", "--insecure"}, "", "")
	check([]string{"ctl", "-insecure=true", "status"}, "", "")
	check([]string{"admin", "--data-dir", "d"}, "", "") // no id: bad input
	check([]string{"admin", "--id", "bad/id"}, "", "")  // no certificate name
	check([]string{"tls", "ca", "--dir", "d"}, "", "")  // not a process that connects
	check([]string{"dev", "--id", "a1"}, "", "")
	check(nil, "", "")

	// A second start of the same id reuses its certificate.
	a, _ := p.harnessTLSArgs([]string{"admin", "--id", "a1"})
	b, _ := p.harnessTLSArgs([]string{"admin", "--id", "a1"})
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatalf("two starts of a1 got %q and %q", a, b)
	}
	// Without a PKI (a test binary that starts no groundskeeper) nothing is added.
	var nilPKI *testPKI
	if got, err := nilPKI.harnessTLSArgs([]string{"ctl", "status"}); err != nil || len(got) != 2 {
		t.Fatalf("without a PKI: %q, %v; want the arguments unchanged", got, err)
	}
}
