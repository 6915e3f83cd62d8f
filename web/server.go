package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/groundskeeper-dev/groundskeeper/certs"
	"github.com/groundskeeper-dev/groundskeeper/fsm"
	"github.com/groundskeeper-dev/groundskeeper/rpc"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the dashboard serves from.
type Config struct {
	// API is the node's gRPC services, called in-process.
	API *rpc.Server
	// FSM is the node's state, read only for the overview's task counts.
	FSM *fsm.FSM
	// Members lists the raft configuration (admins have more than a
	// reader's rights only while members).
	Members rpc.MemberLister
	// TLS is the node's material; nil is plaintext, where every request is
	// allowed as on the plaintext gRPC port.
	TLS *certs.Source
	// Changes wakes the event streams.
	Changes rpc.ChangeSource
	// MaxEvents caps concurrent event streams (0: rpc.DefaultMaxWatches).
	MaxEvents int
	// Timeout bounds one request's reads and actions (0: 10 s).
	Timeout time.Duration
	Logger  hclog.Logger
}

// Handler serves the dashboard and the API.
type Handler struct {
	cfg    Config
	mux    *http.ServeMux
	tmpl   map[string]*template.Template
	events atomic.Int64
}

// New returns the handler of cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxEvents == 0 {
		cfg.MaxEvents = rpc.DefaultMaxWatches
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	h.routes()
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	h.mux.ServeHTTP(w, r)
}

// caller is who sent a request.
type caller struct {
	Role certs.Role
	Name string
	// Plaintext: no TLS; every request is allowed, as on gRPC.
	Plaintext bool
	// Operator: the caller may act (submit, cancel, retry, pause, resume).
	Operator bool
}

// authorize lets a request call method (a rpc.MethodRoles key) or answers
// why not.
func (h *Handler) authorize(r *http.Request, method string) (caller, error) {
	if h.cfg.TLS == nil {
		return caller{Plaintext: true, Operator: true}, nil
	}
	role, name, err := rpc.AuthorizeTLS(r.TLS, h.cfg.TLS, method, h.cfg.Members)
	if err != nil {
		return caller{}, err
	}
	c := caller{Role: role, Name: name}
	_, _, opErr := rpc.AuthorizeTLS(r.TLS, h.cfg.TLS, pb.Admin_CancelTask_FullMethodName, h.cfg.Members)
	c.Operator = opErr == nil
	return c, nil
}

// ctx bounds one request's work and carries its client as a gRPC call's
// peer, so the rpc methods see who calls as they would over gRPC (the
// policy history records the certificate's name and role, or "plaintext
// from HOST").
func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS}
	}
	return context.WithTimeout(peer.NewContext(r.Context(), p), h.cfg.Timeout)
}

// remoteAddr is an HTTP client's address as a net.Addr.
type remoteAddr string

func (a remoteAddr) Network() string { return "tcp" }
func (a remoteAddr) String() string  { return string(a) }

// badRequest is a query or body that is not understood, in one sentence.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// httpStatus maps an error of the rpc methods (gRPC status) to HTTP.
func httpStatus(err error) (int, string) {
	var bad badRequest
	if errors.As(err, &bad) {
		return http.StatusBadRequest, string(bad)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout, "the request took too long: " + err.Error()
	}
	st := status.Convert(err)
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		code = http.StatusConflict
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
	}
	return code, st.Message()
}

// writeJSON writes v as the answer.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr writes err as a JSON error in one sentence.
func writeErr(w http.ResponseWriter, err error) {
	code, msg := httpStatus(err)
	writeJSON(w, code, map[string]string{"error": msg})
}
