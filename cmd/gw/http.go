package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/httpface"
	"github.com/gwmcp/gw/transport/mcpface"
)

// httpServer is gw run's Streamable HTTP face: the face, the listener bound
// at start (so a port in use fails gw before any server starts) and the
// http.Server that serves it once the gateway has started.
//
// Without http.tokens every client is "anonymous": the face listens on
// loopback only then (config validation), and any local user or process can
// reach a loopback port, so it is not the local user that gw stdio names.
type httpServer struct {
	face *httpface.Face
	ln   net.Listener
	srv  *http.Server
	done chan error
	log  *slog.Logger
	// metrics serves /metrics (watchRun); nil: not served.
	metrics http.Handler
	// status is the live status page at / (status.go); nil: not served.
	status *statusPage
	health *health // /healthz and /readyz, in front of the face (health.go)
}

// listenHTTP binds cfg.HTTP.Addr and reads the tokens; nil when the face is
// off (http.addr ""). h serves /mcp; each configured view is at /mcp/NAME.
func listenHTTP(cfg *config.Config, g func() *gateway.Gateway, logger *slog.Logger) (*httpServer, error) {
	if cfg.HTTP.Addr == "" {
		return nil, nil
	}
	tokens, err := httpTokens(cfg.HTTP.Tokens)
	if err != nil {
		return nil, err
	}
	views := map[string]face.Handler{}
	for name := range cfg.Views {
		v, err := viewFor(cfg, name)
		if err != nil {
			return nil, err
		}
		views[name] = lazyRouter{g: g, view: v}
	}
	opts := httpface.Options{
		Info:           mcpface.Implementation{Name: "gw", Version: version},
		AllowedOrigins: cfg.HTTP.AllowedOrigins,
		MaxBodySize:    int64(cfg.Gateway.MaxMessageSize),
		MaxDepth:       cfg.Gateway.MaxDepth,
		Views: func(name string) (face.Handler, bool) {
			h, ok := views[name]
			return h, ok
		},
		Logger: logger,
	}
	if len(tokens) > 0 {
		opts.Authenticate = httpface.TokenAuthenticator(tokens)
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("http face: %w\n  another gw (or another program) probably listens there; set http.addr to another port, or \"\" to turn the HTTP face off", err)
	}
	return &httpServer{
		face: httpface.New(lazyRouter{g: g}, opts),
		ln:   ln,
		srv:  &http.Server{ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
		log:  logger,
	}, nil
}

// httpTokens reads each principal's token from its variable or file. Empty
// tokens and a token shared by two principals are errors.
func httpTokens(conf map[string]config.HTTPToken) (map[string]string, error) {
	out := make(map[string]string, len(conf))
	owner := map[string]string{}
	for _, principal := range slices.Sorted(maps.Keys(conf)) {
		t := conf[principal]
		var token string
		switch {
		case t.TokenEnv != "":
			token = strings.TrimSpace(os.Getenv(t.TokenEnv))
			if token == "" {
				return nil, fmt.Errorf("http.tokens.%s: $%s is unset or empty", principal, t.TokenEnv)
			}
		default:
			b, err := os.ReadFile(t.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("http.tokens.%s: %w", principal, err)
			}
			token = strings.TrimSpace(string(b))
			if token == "" {
				return nil, fmt.Errorf("http.tokens.%s: %s is empty", principal, t.TokenFile)
			}
		}
		if other, ok := owner[token]; ok {
			return nil, fmt.Errorf("http.tokens: %s and %s have the same token", other, principal)
		}
		owner[token] = principal
		out[principal] = token
	}
	return out, nil
}

// serve starts serving on the bound listener.
func (s *httpServer) serve() {
	var h http.Handler = s.face
	if s.metrics != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				s.metrics.ServeHTTP(w, r)
				return
			}
			s.face.ServeHTTP(w, r)
		})
	}
	s.srv.Handler = s.status.wrap(s.face, h)
	// The probes go before everything: they need no token (health.go).
	s.srv.Handler = s.health.wrap(s.srv.Handler)
	go func() { s.done <- s.srv.Serve(s.ln) }()
	s.log.Info("MCP over HTTP", "url", "http://"+s.ln.Addr().String()+httpface.Endpoint)
	if s.metrics != nil {
		s.log.Info("Prometheus metrics", "url", "http://"+s.ln.Addr().String()+"/metrics")
	}
	if s.status != nil {
		s.log.Info("status page", "url", "http://"+s.ln.Addr().String()+"/")
	}
}

// stop ends the face (streams close, requests in flight get until ctx
// ends), then the server.
func (s *httpServer) stop(ctx context.Context) {
	s.status.close() // its event streams would hold the server's Shutdown
	if err := s.face.Shutdown(ctx); err != nil {
		s.log.Warn("HTTP face stop: requests in flight were cancelled", "error", err)
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("HTTP server", "error", err)
		}
	default:
		_ = s.ln.Close() // never served
	}
}

// lazyRouter serves through the router of the gateway g returns: the face
// is built before the gateway, which needs the face's events.
type lazyRouter struct {
	g    func() *gateway.Gateway
	view *router.View
}

func (l lazyRouter) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	return router.New(l.g()).WithView(l.view).Serve(ctx, req)
}

// ParamHeaders implements face.ToolHeaders: the face checks the
// Mcp-Param-* headers of a tools/call against the tool's x-mcp-header.
func (l lazyRouter) ParamHeaders(tool string) map[string][]string {
	return router.New(l.g()).WithView(l.view).ParamHeaders(tool)
}

// teeEvents hands each gateway event to every sink, in order. Each sink
// must not block (the NATS bridge queues; MCP faces coalesce).
type teeEvents []gateway.EventSink

func (t teeEvents) HandleEvent(ev gateway.Event) {
	for _, s := range t {
		s.HandleEvent(ev)
	}
}
