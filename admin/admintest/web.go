package admintest

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/certs"
)

// URL is the base URL of admin i's dashboard (https under EnableTLS).
func (s *System) URL(i int) string {
	scheme := "http://"
	if s.tls != nil {
		scheme = "https://"
	}
	return scheme + s.Cfgs[i].HTTPAddr
}

// HTTPClient is a dashboard client presenting the certificate of role and
// name (plaintext without EnableTLS); it accepts only an admin's
// certificate, as ctl does.
func (s *System) HTTPClient(role certs.Role, name string) *http.Client {
	s.T.Helper()
	tr := &http.Transport{}
	if src := s.Source(role, name); src != nil {
		tr.TLSClientConfig = src.ClientConfig("127.0.0.1")
	}
	s.T.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// HTTPClientNoCert is a dashboard client that trusts the cluster's CA but
// presents no certificate.
func (s *System) HTTPClientNoCert() *http.Client {
	s.T.Helper()
	pool, _ := s.Source(certs.RoleReader, "test-nocert-pool").Current()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}}
	s.T.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}
