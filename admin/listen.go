package admin

import (
	"fmt"
	"net"
	"strings"
)

// checkListeners enforces the plaintext policy: without TLS an admin binds
// its gRPC and raft ports only to loopback addresses (127.0.0.0/8, ::1,
// localhost), where only this machine reaches them, unless it was started
// with --insecure.
func checkListeners(cfg Config) error {
	if cfg.TLS != nil || cfg.Insecure {
		return nil
	}
	for _, a := range []struct{ flag, addr string }{{"--grpc-addr", cfg.GRPCAddr}, {"--raft-addr", cfg.RaftAddr}, {"--http-addr", cfg.HTTPAddr}} {
		if a.flag == "--http-addr" && a.addr == "" {
			continue
		}
		if !IsLoopback(a.addr) {
			return fmt.Errorf("%s %s is not a loopback address and no TLS is configured: give --tls-ca, --tls-cert and --tls-key (see groundskeeper tls), "+
				"or --insecure to run in plaintext where anyone who reaches the port controls the cluster", a.flag, a.addr)
		}
	}
	return nil
}

// IsLoopback reports whether host:port binds only loopback: an IP in
// 127.0.0.0/8 or ::1, or the name localhost. An empty host (every
// interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
