package admintest

import (
	"path/filepath"
	"sync"

	"google.golang.org/grpc"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
)

// tlsState is a System's certificate authority once EnableTLS ran.
type tlsState struct {
	dir     string
	mu      sync.Mutex
	sources map[string]*certs.Source // by name
}

// EnableTLS makes a CA in the system's directory: admins started after it
// run mutual TLS with admin certificates named by their ids, workers with
// worker certificates named by theirs, and Conn dials as an operator
// ("test-operator"). Call it before StartAdmins.
func (s *System) EnableTLS() {
	s.T.Helper()
	dir := filepath.Join(s.Dir, "pki")
	if _, err := certs.NewCA(dir); err != nil {
		s.T.Fatalf("make a CA: %v", err)
	}
	s.tls = &tlsState{dir: dir, sources: map[string]*certs.Source{}}
}

// TLSDir is the CA directory of EnableTLS ("" : plaintext).
func (s *System) TLSDir() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.dir
}

// Source returns the TLS material of a certificate with role and name,
// issuing it the first time (nil without EnableTLS). A name keeps the
// role it was first issued with.
func (s *System) Source(role certs.Role, name string) *certs.Source {
	s.T.Helper()
	if s.tls == nil {
		return nil
	}
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	if src, ok := s.tls.sources[name]; ok {
		return src
	}
	if _, err := certs.Issue(s.tls.dir, role, name, nil, 0); err != nil {
		s.T.Fatalf("issue %s certificate %s: %v", role, name, err)
	}
	src, err := certs.Load(certs.IssuedFiles(s.tls.dir, name), certs.Options{})
	if err != nil {
		s.T.Fatalf("load certificate %s: %v", name, err)
	}
	s.tls.sources[name] = src
	return src
}

// ConnAs dials addr with the certificate of role and name (plaintext
// without EnableTLS); the connection is closed when the test ends.
func (s *System) ConnAs(addr string, role certs.Role, name string) *grpc.ClientConn {
	s.T.Helper()
	return s.dial(addr, rpc.ClientCredentials(s.Source(role, name), certs.RoleAdmin))
}

// dial opens a client connection closed with the system.
func (s *System) dial(addr string, creds grpc.DialOption) *grpc.ClientConn {
	s.T.Helper()
	c, err := grpc.NewClient(addr, creds)
	if err != nil {
		s.T.Fatalf("dial %s: %v", addr, err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c
}
