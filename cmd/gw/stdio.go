package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"sync"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/mcpface"
)

// runStdio is `gw stdio`: gw as one MCP server on stdin and stdout, for a
// desktop client or an SDK agent that starts it. No NATS, no HTTP; logs go
// to stderr only, and nothing but the face writes to stdout.
//
// Order: the face starts serving; the gateway starts its servers once the
// client's first request decided the era and (legacy) declared its
// capabilities, because a legacy server is told at its own initialize what
// its client (gw, and through gw this client) can answer; requests wait for
// that start, so the first tools/list is complete. When stdin ends (or
// SIGINT/SIGTERM): the face cancels and answers what is in flight → the
// config and policy watchers stop → the gateway stops its servers (stdin
// closed, SIGTERM, SIGKILL, reaped) → the policies close.
// stdioOptions are gw stdio's own flags.
type stdioOptions struct {
	principal string       // the caller the authorizer sees; "" means the local user
	view      *router.View // nil: the whole namespace
}

func runStdio(ctx context.Context, load config.Options, cfg *config.Config, o stdioOptions, logger *slog.Logger, stdin io.Reader, stdout, stderr io.Writer) int {
	principal := o.principal
	if principal == "" {
		principal = localUser()
	}
	h := &stdioHandler{ready: make(chan struct{})}
	f := mcpface.New(h, mcpface.Options{
		Info:           mcpface.Implementation{Name: "gw", Version: version},
		Principal:      principal,
		MaxMessageSize: cfg.Gateway.MaxMessageSize,
		MaxDepth:       cfg.Gateway.MaxDepth,
		MaxInFlight:    cfg.Gateway.MaxInFlight,
		Logger:         logger,
	})
	// Pins outlive gw stdio in its pin file: a desktop app restarts it
	// often, and each start that forgot them would trust every tool anew.
	pins, err := openPinFile(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	switch {
	case pins != nil:
		defer pins.Close() // after the gateway has closed: its watcher stops first
		logger.Info("tool-definition pins", "file", pins.Path())
	case gateway.PinMode(cfg.Gateway.Pinning) == gateway.PinOff:
		logger.Info("tool-definition pinning off (gateway.pinning: off)")
	default:
		logger.Info("tool-definition pins in memory only (pins.file: none)")
	}
	events := &faceEvents{face: f, prev: &gateway.Catalog{}}
	g, ps, release, err := newGateway(ctx, cfg, logger, func(o *gateway.Options) {
		o.Events = events
		if pins != nil {
			o.Pins = pins
		}
		// The client asks what servers need: through the request that
		// needed it (modern servers) or, a legacy server asking on its
		// own, through the one client gw stdio has.
		o.Handler = router.Clients{Fallback: faceClient{f.Client()}}
	})
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	defer release()
	h.r = router.New(g).WithView(o.view)

	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- f.Serve(serveCtx, stdin, stdout) }()

	startCtx, cancelStart := context.WithCancel(ctx)
	startDone := make(chan struct{})
	var pinErr error // set before startDone closes
	go func() {
		defer close(startDone)
		select {
		case <-f.Started():
		case <-startCtx.Done():
			return
		}
		if err := g.Start(startCtx); errors.Is(err, gateway.ErrPinStore) {
			// The pin file turned unreadable since it was opened: serving
			// without it would trust every tool anew.
			logger.Error("tool-definition pins not loaded; stopping", "error", err)
			pinErr = err
			stopServing()
			return
		} else if err != nil {
			logger.Error("some servers did not start", "error", err)
		}
		close(h.ready)
		logger.Info("gw stdio ready", "era", f.Era(), "principal", principal, "tools", len(g.Catalog().Tools))
	}()
	ps.Watch(g, cfg.Policies.Watch)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchConfig(watchCtx, load, cfg.Gateway.ConfigWatch, cfg, g, logger)
	}()

	err = <-served
	logger.Info("gw stdio stopping", "reason", stopReason(err))
	cancelStart()
	<-startDone
	stopWatch()
	<-watchDone
	ps.StopWatching()
	_ = g.Close()
	if pinErr != nil {
		fmt.Fprintln(stderr, pinErr) // gateway.ErrPinStore says "gw: pin store"
		return 1
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	return 0
}

func stopReason(err error) string {
	if err == nil {
		return "stdin closed"
	}
	return err.Error()
}

// localUser is the principal of a local stdio client: the user running gw.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "local"
}

// stdioHandler serves the face through the router once the gateway has
// started (its servers came up or failed their first attempt).
type stdioHandler struct {
	ready chan struct{}
	r     *router.Router
}

func (h *stdioHandler) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.r.Serve(ctx, req)
}

// faceClient is the stdio client as the gateway's fallback ClientHandler.
type faceClient struct{ in face.Input }

func (c faceClient) Supports(_ context.Context, method string) bool { return c.in.Supports(method) }

func (c faceClient) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	return c.in.Ask(ctx, req.Method, req.Params)
}

// listNotifier is an MCP face that tells its clients of list changes and
// resource updates: mcpface (stdio) and httpface. Neither call blocks.
type listNotifier interface {
	ListChanged(kinds mcpface.Kind)
	ResourceUpdated(uri string)
}

// logForwarder is a face that passes servers' log messages on (mcpface).
type logForwarder interface {
	Log(params json.RawMessage)
}

// faceEvents turns gateway events into an MCP face's notifications. A new
// catalog is compared with the previous one, and only the lists that
// changed are announced. The gateway calls it from one goroutine; the face
// never blocks it.
type faceEvents struct {
	face listNotifier

	mu   sync.Mutex
	prev *gateway.Catalog
}

func (e *faceEvents) HandleEvent(ev gateway.Event) {
	switch ev.Kind {
	case gateway.EventCatalogChanged:
		e.mu.Lock()
		kinds := catalogChanges(e.prev, ev.Catalog)
		e.prev = ev.Catalog
		e.mu.Unlock()
		if kinds != 0 {
			e.face.ListChanged(kinds)
		}
	case gateway.EventServerNotification:
		if lf, ok := e.face.(logForwarder); ok && ev.Method == mcpface.NotifMessage {
			lf.Log(router.NameLogger(ev.Params, ev.Server))
		}
		if ev.Method == "notifications/resources/updated" {
			var p struct {
				URI string `json:"uri"`
			}
			if json.Unmarshal(ev.Params, &p) == nil && p.URI != "" {
				e.face.ResourceUpdated(p.URI)
			}
		}
	}
}

// catalogChanges names the lists that differ between two catalogs: names or
// the JSON a client lists.
func catalogChanges(a, b *gateway.Catalog) mcpface.Kind {
	var k mcpface.Kind
	if !sameEntries(a.Tools, b.Tools) {
		k |= mcpface.KindTools
	}
	if !sameEntries(a.Prompts, b.Prompts) {
		k |= mcpface.KindPrompts
	}
	if !sameEntries(a.Resources, b.Resources) || !sameEntries(a.Templates, b.Templates) {
		k |= mcpface.KindResources
	}
	return k
}

func sameEntries(a, b []gateway.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].JSON, b[i].JSON) {
			return false
		}
	}
	return true
}
