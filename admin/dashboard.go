package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/web"
)

// dashboard is the node's HTTP server of package web (--http-addr).
type dashboard struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// startDashboard listens on cfg.HTTPAddr and serves the dashboard: HTTPS
// requiring a client certificate from the CA under TLS (any role: each
// request is authorized by its method's role, as a gRPC call), plaintext
// otherwise (checkListeners already kept it on loopback unless
// --insecure).
func startDashboard(cfg Config, n *Node) (*dashboard, error) {
	h, err := web.New(web.Config{API: n.server, FSM: n.fsm, Members: n.raft, TLS: cfg.TLS, Changes: n.changes, Logger: cfg.Logger.Named("web")})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on --http-addr %s: %w", cfg.HTTPAddr, err)
	}
	d := &dashboard{addr: lis.Addr(), done: make(chan struct{})}
	if cfg.TLS != nil {
		lis = tls.NewListener(lis, cfg.TLS.ServerConfig())
	}
	d.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: cfg.Logger.Named("web").StandardLogger(nil)}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("dashboard server stopped", "error", err)
		}
	}()
	cfg.Logger.Info("dashboard serving", "http_addr", d.addr.String(), "tls", cfg.TLS != nil)
	return d, nil
}

// stop closes the dashboard (event streams included: they hold no state).
func (d *dashboard) stop() {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.srv.Close()
	}
	<-d.done
}

// HTTPAddr is the address the dashboard listens on ("" without
// --http-addr), with the port chosen when --http-addr gave port 0.
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.addr.String()
}
