package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ErrPeerInvalid is matched (errors.Is) by CheckPeer's errors: a peer
// certificate verified at the handshake that has expired since, or that
// the CA pool in use no longer verifies.
var ErrPeerInvalid = errors.New("certs: peer certificate no longer valid")

// peerError is a CheckPeer refusal that matches ErrPeerInvalid.
type peerError struct{ msg string }

func (e *peerError) Error() string        { return e.msg }
func (e *peerError) Is(target error) bool { return target == ErrPeerInvalid }

// maxPeerCache bounds the cached verifications: past it the cache starts
// over (connections come and go; a verification is a few microseconds).
const maxPeerCache = 4096

// peerCache holds, per peer certificate, the result of verifying its
// chain against one generation of the CA pool.
type peerCache struct {
	mu sync.Mutex
	m  map[*x509.Certificate]peerResult
}

// peerResult is one verification: against the pool of generation gen,
// the chain is valid until until, or err.
type peerResult struct {
	gen   uint64
	until time.Time
	err   error
}

// CAGeneration returns the generation of the CA pool in use: 1 at Load,
// one more each time a changed CA file is applied. Like a handshake it
// checks the files first when a check is due, so polling it notices a
// rotation within CheckEvery.
func (s *Source) CAGeneration() uint64 { return s.current().gen }

// CheckPeer reports whether a peer certificate chain verified at a
// handshake (chain[0] the peer's certificate, then any intermediates, the
// CA last: tls.ConnectionState.VerifiedChains[0]) is still good now: none
// of its certificates has expired, and the peer's certificate still
// chains to the CA pool in use, which may have changed since the
// handshake (a CA withdrawn from the CA file). The verification is cached
// per certificate and CA generation, so a call costs a map lookup and a
// clock read unless the CA file changed. Its errors match ErrPeerInvalid.
func (s *Source) CheckPeer(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return &peerError{"the peer presented no verified certificate"}
	}
	m := s.current()
	leaf := chain[0]
	s.peers.mu.Lock()
	r, ok := s.peers.m[leaf]
	s.peers.mu.Unlock()
	if !ok || r.gen != m.gen {
		r = verifyPeer(chain, m)
		s.peers.mu.Lock()
		if s.peers.m == nil || len(s.peers.m) >= maxPeerCache {
			s.peers.m = map[*x509.Certificate]peerResult{}
		}
		s.peers.m[leaf] = r
		s.peers.mu.Unlock()
	}
	if r.err != nil {
		return r.err
	}
	if time.Now().After(r.until) {
		return &peerError{fmt.Sprintf("the certificate of %s expired at %s", peerName(leaf), r.until.UTC().Format(time.RFC3339))}
	}
	return nil
}

// verifyPeer verifies chain's leaf against m's pool now.
func verifyPeer(chain []*x509.Certificate, m *material) peerResult {
	leaf := chain[0]
	r := peerResult{gen: m.gen}
	inter := x509.NewCertPool()
	if len(chain) > 2 {
		for _, c := range chain[1 : len(chain)-1] {
			inter.AddCert(c)
		}
	}
	now := time.Now()
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		r.err = &peerError{fmt.Sprintf("the certificate of %s has expired: %v", peerName(leaf), err)}
	case err != nil:
		r.err = &peerError{fmt.Sprintf("the certificate of %s no longer verifies against the CA in use: %v", peerName(leaf), err)}
	default:
		r.until = chainExpiry(chains[0])
	}
	return r
}

// chainExpiry is when the first certificate of chain expires.
func chainExpiry(chain []*x509.Certificate) time.Time {
	until := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return until
}

// peerName names a peer certificate in a message: its role and name, or
// its Subject.
func peerName(c *x509.Certificate) string {
	if role, name, err := RoleOf(c); err == nil {
		return fmt.Sprintf("%s %q", role, name)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

// WatchPeer watches a peer certificate chain verified at a handshake for
// as long as its connection or stream lasts: it calls cut once, from a
// goroutine of its own, with CheckPeer's error as soon as the chain fails
// it: at the expiry of its first certificate to expire, and at the
// latest within PeerCheckEvery of the CA pool in use no longer verifying
// it (within CheckEvery of the CA file changing) or of the wall clock
// passing the expiry otherwise. It checks once at once. stop ends the
// watch; it does not wait for a cut under way.
func (s *Source) WatchPeer(chain []*x509.Certificate, cut func(error)) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	go func() {
		tick := time.NewTicker(s.peerEvery)
		defer tick.Stop()
		var expiry <-chan time.Time
		if len(chain) > 0 {
			// The timer runs on the monotonic clock; just past the wall
			// clock's expiry, as a certificate is valid at its NotAfter.
			t := time.NewTimer(time.Until(chainExpiry(chain)) + 10*time.Millisecond)
			defer t.Stop()
			expiry = t.C
		}
		for {
			if err := s.CheckPeer(chain); err != nil {
				cut(err)
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			case <-expiry:
				expiry = nil // the ticker covers a wall clock behind
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// PeerChain returns the verified certificate chain of a TLS connection's
// peer (its certificate first), or an error without one.
func PeerChain(cs tls.ConnectionState) ([]*x509.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("the TLS handshake has not completed")
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil, errors.New("the peer presented no verified certificate")
	}
	return cs.VerifiedChains[0], nil
}

// PeerChainFromContext is PeerChain of a gRPC call's connection.
func PeerChainFromContext(ctx context.Context) ([]*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("the call has no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, errors.New("the call did not come over TLS")
	}
	return PeerChain(info.State)
}
