package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckEvery is how often, at most, a Source looks at its files
// again when it is used.
const DefaultCheckEvery = 5 * time.Second

// DefaultPeerCheckEvery is how often WatchPeer re-checks a peer's
// certificate besides at its expiry.
const DefaultPeerCheckEvery = time.Second

// Options tunes a Source. The zero value is the default.
type Options struct {
	// CheckEvery is how often, at most, a handshake makes the Source
	// re-read its files (0: DefaultCheckEvery). Between checks every
	// handshake uses the material in memory.
	CheckEvery time.Duration
	// Report, when set, is called after each check that found the files
	// changed: with nil when all of the change was loaded; otherwise with
	// what was refused (the last good CA pool or key pair kept, the rest
	// loaded) and any warning (errors.Is ErrWarning: loaded, but a
	// mistake). Load calls it too, with its warnings only. The same files
	// are reported once, not at every check. It runs inside a handshake:
	// it must not block (logging is what it is for).
	Report func(err error)
	// PeerCheckEvery is how often WatchPeer re-checks a peer certificate
	// against the CA in use, besides at its expiry (0:
	// DefaultPeerCheckEvery). A CA withdrawn from the file cuts its peers'
	// connections within CheckEvery plus this.
	PeerCheckEvery time.Duration

	// now is the clock of the checks (tests); nil is time.Now.
	now func() time.Time
}

// Source is a CA pool and a key pair loaded from Files, re-read when the
// files change: rotation is writing new files (best renamed into place),
// with no restart. The CA pool and the key pair are loaded separately. A
// CA file that parses is always applied: narrowing trust must not wait
// for anything else (that our own certificate no longer verifies against
// it is a warning). A key pair that does not load (a file missing or
// unparsable, a key that does not match its certificate, a certificate the
// CA does not verify, that has expired or cannot connect) keeps the last
// good pair. Both are reported through Options.Report and Err; neither
// stops the process.
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
	// start is when the Source was made: checks are scheduled by the
	// time since it, on the monotonic clock, so a wall clock stepped back
	// does not stop them.
	start time.Time
	// peerEvery is Options.PeerCheckEvery.
	peerEvery time.Duration

	cur atomic.Pointer[material]
	// last is when (time since start) the last check was claimed; the
	// handshake that moves it on does the check.
	last atomic.Int64

	mu      sync.Mutex // serializes checks; guards the fields below
	lastErr error
	seen    [sha256.Size]byte // the state of the files at the last check

	// peers caches CheckPeer's chain verifications (peer.go).
	peers peerCache
}

// material is the CA pool and the key pair in use, each with the hash of
// the contents it was loaded from.
type material struct {
	caSum, pairSum [sha256.Size]byte
	// gen is the CA pool's generation: 1 at Load, one more each time a
	// changed CA file is applied (CheckPeer caches per generation).
	gen  uint64
	pool *x509.CertPool
	cert *tls.Certificate
	leaf *x509.Certificate
}

// Load reads the files and returns a Source serving them. The first load
// must succeed: its error names the file at fault. Its warnings (a key
// file others may read) go to Options.Report and Err.
func Load(files Files, opts Options) (*Source, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, invalidError("no TLS files given")
	}
	s := &Source{files: files, every: opts.CheckEvery, now: opts.now, rep: opts.Report, peerEvery: opts.PeerCheckEvery}
	if s.every <= 0 {
		s.every = DefaultCheckEvery
	}
	if s.peerEvery <= 0 {
		s.peerEvery = DefaultPeerCheckEvery
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.start = s.now()
	caRaw, caSum, err := s.readCA()
	if err != nil {
		return nil, err
	}
	pool, err := s.parsePool(caRaw)
	if err != nil {
		return nil, err
	}
	pairRaw, pairSum, err := s.readPair()
	if err != nil {
		return nil, err
	}
	cert, leaf, err := s.parsePair(pairRaw, pool)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&material{caSum: caSum, pairSum: pairSum, gen: 1, pool: pool, cert: cert, leaf: leaf})
	s.seen = stateSum(caSum, pairSum)
	if warn := s.keyModeWarning(); warn != nil {
		s.lastErr = warn
		if s.rep != nil {
			s.rep(warn)
		}
	}
	return s, nil
}

// Files returns the files the Source reads.
func (s *Source) Files() Files { return s.files }

// Leaf returns the certificate in use.
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Identity returns the role and name of the certificate in use (an admin
// checks it is an admin named by its raft id before it serves).
func (s *Source) Identity() (Role, string, error) { return RoleOf(s.Leaf()) }

// Err returns, as of the last check, why the files on disk are not the
// material in use and any warning about what is: nil when neither.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Reload checks the files now, whatever the time since the last check,
// and returns Err afterwards (a SIGHUP handler or a test calls it).
func (s *Source) Reload() error {
	s.last.Store(s.elapsed())
	return s.check()
}

// Current returns the CA pool and the key pair to use now, re-reading the
// files first when the last check is CheckEvery old (as a handshake of
// ServerConfig or ClientConfig does). It is for a TLS configuration built
// elsewhere, to other rules than ours (a SeaweedFS client's): call it in
// each handshake, not once.
func (s *Source) Current() (*x509.CertPool, *tls.Certificate) {
	m := s.current()
	return m.pool, m.cert
}

// elapsed is the time since start (monotonic when the clock is time.Now).
func (s *Source) elapsed() int64 { return int64(s.now().Sub(s.start)) }

// current returns the material to use, checking the files first when the
// last check is CheckEvery old or more, or in the future (the clock went
// back: check now rather than wait for it to catch up). Only the handshake
// that claims the check does it; the others use the material in memory
// meanwhile.
func (s *Source) current() *material {
	now, last := s.elapsed(), s.last.Load()
	if (now-last >= int64(s.every) || now < last) && s.last.CompareAndSwap(last, now) {
		_ = s.check()
	}
	return s.cur.Load()
}

// check re-reads the files and loads what changed in them: the CA pool
// whenever it parses, the key pair when it loads and verifies.
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
	cur := s.cur.Load()
	caRaw, caSum, caErr := s.readCA()
	pairRaw, pairSum, pairErr := s.readPair()
	state := stateSum(caSum, pairSum)
	if state == s.seen {
		return s.lastErr // reported when it was first seen
	}
	s.seen = state

	next := *cur
	changed := false
	var errs []error
	if caErr == nil && caSum != cur.caSum {
		var pool *x509.CertPool
		if pool, caErr = s.parsePool(caRaw); caErr == nil {
			next.pool, next.caSum, next.gen, changed = pool, caSum, cur.gen+1, true
		}
	}
	if caErr != nil {
		errs = append(errs, fmt.Errorf("keeping the CA pool in use: %w", caErr))
	}
	if pairErr == nil && pairSum != cur.pairSum {
		var cert *tls.Certificate
		var leaf *x509.Certificate
		if cert, leaf, pairErr = s.parsePair(pairRaw, next.pool); pairErr == nil {
			next.cert, next.leaf, next.pairSum, changed = cert, leaf, pairSum, true
			if warn := s.keyModeWarning(); warn != nil {
				errs = append(errs, warn)
			}
		}
	}
	if pairErr != nil {
		errs = append(errs, fmt.Errorf("keeping the certificates in use: %w", pairErr))
	}
	if changed {
		s.cur.Store(&next)
	}
	// A CA withdrawn before our certificate was re-issued: the pool
	// applies anyway (peers of the withdrawn CA are refused), and our
	// certificate is what remains to fix.
	if err := s.verify(next.leaf, next.cert, next.pool); err != nil {
		errs = append(errs, warningError{fmt.Errorf("the certificate in use, %s, no longer verifies against the CA in %s (peers will refuse it; issue a new one from a CA in the file): %w", s.files.Cert, s.files.CA, err)})
	}
	s.lastErr = joinErrors(errs)
	if s.rep != nil && (changed || s.lastErr != nil) {
		err := s.lastErr
		report = func() { s.rep(err) }
	}
	return s.lastErr
}

// readCA returns the CA file's contents and their hash (of the error when
// it cannot be read, so that the same failure is one state).
func (s *Source) readCA() ([]byte, [sha256.Size]byte, error) {
	b, err := os.ReadFile(s.files.CA)
	if err != nil {
		return nil, sha256.Sum256([]byte("error: " + err.Error())), err // names the file
	}
	return b, sha256.Sum256(b), nil
}

// readPair returns the certificate and key files' contents and a hash of
// them together (of the error when either cannot be read).
func (s *Source) readPair() ([2][]byte, [sha256.Size]byte, error) {
	var raw [2][]byte
	h := sha256.New()
	for i, name := range []string{s.files.Cert, s.files.Key} {
		b, err := os.ReadFile(name)
		if err != nil {
			return raw, sha256.Sum256([]byte("error: " + err.Error())), err // names the file
		}
		raw[i] = b
		_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return raw, sum, nil
}

// stateSum is one hash of what a check saw in the CA file and the pair.
func stateSum(caSum, pairSum [sha256.Size]byte) [sha256.Size]byte {
	return sha256.Sum256(append(caSum[:], pairSum[:]...))
}

// parsePool makes the CA pool of the CA file's contents.
func (s *Source) parsePool(raw []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := raw; ; {
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
	return pool, nil
}

// parsePair makes the key pair of the certificate and key files' contents
// and checks the certificate: it must be usable to connect (every node is
// a client of some other) and verify against pool now.
func (s *Source) parsePair(raw [2][]byte, pool *x509.CertPool) (*tls.Certificate, *x509.Certificate, error) {
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("certificate %s: %w", s.files.Cert, err)
		}
		cert.Leaf = leaf
	}
	if eku := leaf.ExtKeyUsage; len(eku) > 0 && !slices.Contains(eku, x509.ExtKeyUsageClientAuth) && !slices.Contains(eku, x509.ExtKeyUsageAny) {
		return nil, nil, fmt.Errorf("certificate %s cannot connect to anything: its extended key usage lacks ClientAuth, which every node needs (issue one with groundskeeper tls cert)", s.files.Cert)
	}
	if err := s.verify(leaf, &cert, pool); err != nil {
		return nil, nil, fmt.Errorf("certificate %s does not verify against the CA in %s: %w", s.files.Cert, s.files.CA, err)
	}
	return &cert, leaf, nil
}

// verify checks leaf, with the intermediates after it in cert, against
// pool now.
func (s *Source) verify(leaf *x509.Certificate, cert *tls.Certificate, pool *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("intermediate: %w", err)
		}
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   time.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// keyModeWarning warns when the key file may be read by others than its
// owner: whoever reads it can be this node.
func (s *Source) keyModeWarning() error {
	fi, err := os.Stat(s.files.Key)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return warningError{fmt.Errorf("key file %s has mode %04o: others than its owner may read it and pass for this node (chmod 600 it)", s.files.Key, fi.Mode().Perm())}
}
