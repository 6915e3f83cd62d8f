package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckEvery is how often, at most, a Source looks at its files
// again when it is used.
const DefaultCheckEvery = 5 * time.Second

// Options tunes a Source. The zero value is the default.
type Options struct {
	// CheckEvery is how often, at most, a handshake makes the Source
	// re-read its files (0: DefaultCheckEvery). Between checks every
	// handshake uses the material in memory.
	CheckEvery time.Duration
	// Report, when set, is called after each check that found the files
	// changed: with nil when the new material was loaded, with the reason
	// when it was refused and the last good material kept. The same broken
	// files are reported once, not at every check. It runs inside a
	// handshake: it must not block (logging is what it is for).
	Report func(err error)

	// now is the clock of the checks (tests); nil is time.Now.
	now func() time.Time
}

// Source is a CA pool and a key pair loaded from Files, re-read when the
// files change: rotation is writing new files (best renamed into place),
// with no restart. A change that does not load (a file missing or
// unparsable, a key that does not match its certificate, a certificate the
// CA does not verify or that has expired) keeps the last good material and
// is reported through Options.Report and Err; it never stops the process.
//
// The files are compared by a hash of their contents, read at most every
// CheckEvery on use: reading three small files every few seconds costs
// nothing, and unlike a modification time it cannot miss a rewrite within
// the file system's time granularity. There is no file watcher, so no
// goroutine and no dependency.
type Source struct {
	files Files
	every time.Duration
	now   func() time.Time
	rep   func(error)

	cur atomic.Pointer[material]
	// next is the time (UnixNano) of the next check; the handshake that
	// moves it on does the check.
	next atomic.Int64

	mu      sync.Mutex // serializes checks; guards the fields below
	lastErr error
	badSum  [sha256.Size]byte // the contents last refused, reported once
}

// material is one consistent load of the three files.
type material struct {
	sum  [sha256.Size]byte
	pool *x509.CertPool
	cert *tls.Certificate
	leaf *x509.Certificate
}

// Load reads the files and returns a Source serving them. The first load
// must succeed: its error names the file at fault.
func Load(files Files, opts Options) (*Source, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, invalidError("no TLS files given")
	}
	s := &Source{files: files, every: opts.CheckEvery, now: opts.now, rep: opts.Report}
	if s.every <= 0 {
		s.every = DefaultCheckEvery
	}
	if s.now == nil {
		s.now = time.Now
	}
	raw, sum, err := s.read()
	if err != nil {
		return nil, err
	}
	m, err := s.parse(raw, sum)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.next.Store(s.now().Add(s.every).UnixNano())
	return s, nil
}

// Files returns the files the Source reads.
func (s *Source) Files() Files { return s.files }

// Leaf returns the certificate in use.
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Identity returns the role and name of the certificate in use (an admin
// checks it is an admin named by its raft id before it serves).
func (s *Source) Identity() (Role, string, error) { return RoleOf(s.Leaf()) }

// Err returns why the files on disk are not the material in use, as of the
// last check: nil when they are (or were unchanged).
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Reload checks the files now, whatever the time since the last check,
// and returns Err afterwards (a SIGHUP handler or a test calls it).
func (s *Source) Reload() error {
	s.next.Store(s.now().Add(s.every).UnixNano())
	return s.check()
}

// current returns the material to use, checking the files first when the
// last check is older than CheckEvery. Only the handshake that claims the
// check does it; the others use the material in memory meanwhile.
func (s *Source) current() *material {
	now := s.now().UnixNano()
	if next := s.next.Load(); now >= next && s.next.CompareAndSwap(next, now+int64(s.every)) {
		_ = s.check()
	}
	return s.cur.Load()
}

// check re-reads the files and loads them if their contents changed.
func (s *Source) check() error {
	// Report runs after the lock is released, so it may call the Source.
	var report func()
	defer func() {
		if report != nil {
			report()
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, sum, err := s.read()
	if err == nil && sum == s.cur.Load().sum {
		s.lastErr = nil
		return nil
	}
	if err != nil {
		// A read error has no contents: its message stands for them.
		sum = sha256.Sum256([]byte(err.Error()))
	} else if sum == s.badSum && s.lastErr != nil {
		return s.lastErr
	} else {
		var m *material
		if m, err = s.parse(raw, sum); err == nil {
			s.cur.Store(m)
			s.lastErr, s.badSum = nil, [sha256.Size]byte{}
			if s.rep != nil {
				report = func() { s.rep(nil) }
			}
			return nil
		}
	}
	err = fmt.Errorf("keeping the certificates in use: %w", err)
	if sum != s.badSum || s.lastErr == nil {
		s.badSum = sum
		if s.rep != nil {
			report = func() { s.rep(err) }
		}
	}
	s.lastErr = err
	return err
}

// read returns the three files' contents and a hash of them together.
func (s *Source) read() ([3][]byte, [sha256.Size]byte, error) {
	var raw [3][]byte
	h := sha256.New()
	for i, name := range []string{s.files.CA, s.files.Cert, s.files.Key} {
		b, err := os.ReadFile(name)
		if err != nil {
			return raw, [sha256.Size]byte{}, err // names the file
		}
		raw[i] = b
		_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return raw, sum, nil
}

// parse makes material of the files' contents: the CA pool, the key pair,
// and the certificate verified against the pool now.
func (s *Source) parse(raw [3][]byte, sum [sha256.Size]byte) (*material, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := raw[0]; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %w", s.files.CA, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", s.files.CA)
	}
	cert, err := tls.X509KeyPair(raw[1], raw[2])
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", s.files.Cert, err)
		}
		cert.Leaf = leaf
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: intermediate: %w", s.files.Cert, err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("certificate %s does not verify against the CA in %s: %w", s.files.Cert, s.files.CA, err)
	}
	return &material{sum: sum, pool: pool, cert: &cert, leaf: leaf}, nil
}
