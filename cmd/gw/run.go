package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// runGateway is `gw run`: the servers, the policies, the NATS face and the
// Streamable HTTP face (http.addr), until ctx ends (SIGINT/SIGTERM).
// Shutdown order (calls in flight get gateway.shutdown_grace, cut short by
// a second signal; see shutdownSignals): the HTTP face stops taking requests, ends its streams and
// waits for (then cancels) those in flight; the NATS face stops taking
// requests and answers or fails those in flight; the gateway stops the servers; the
// policies close; buffered spans are flushed; the NATS connection drains;
// an embedded server stops.
// load is how cfg was loaded; a reload of the file uses the same layers.
func runGateway(ctx context.Context, load config.Options, cfg *config.Config, logger *slog.Logger, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	name := cfg.NATS.Gateway
	if name == "" {
		name = defaultGatewayName()
	}

	nc, embedded, err := connectNATS(ctx, cfg, name, logger)
	if err != nil {
		return fail(err)
	}
	defer func() {
		_ = nc.Drain()
		if embedded != nil {
			embedded.Shutdown()
		}
	}()

	// Tool-definition pins live in the cluster's pin bucket: they outlive
	// this process (JetStream file storage; with the embedded server, in its
	// store directory) and gateways sharing the cluster share them.
	if cfg.Pins.File != "" && cfg.Pins.File != config.PinsFileNone {
		logger.Warn("pins.file is gw stdio's pin file: gw run keeps pins in the NATS bucket "+natsface.DefaultPinBucket, "pins.file", cfg.Pins.File)
	}
	var pins *natsface.Pins
	if err := untilJetStreamReady(ctx, cfg.Gateway.StartTimeout, logger, func() (err error) {
		pins, err = natsface.OpenPins(ctx, nc, natsface.DefaultPinBucket, cfg.NATS.Replicas)
		return err
	}); err != nil {
		return fail(err)
	}

	h := &faceHandler{}
	face, err := natsface.New(nc, h, natsface.Options{
		Prefix:        cfg.NATS.Prefix,
		Gateway:       name,
		MaxConcurrent: cfg.NATS.MaxConcurrent,
		MaxDepth:      cfg.Gateway.MaxDepth,
		LLMSubject:    cfg.NATS.LLMSubject,
		Replicas:      cfg.NATS.Replicas,
		AuditMaxAge:   cfg.Audit.MaxAge,
		AuditMaxBytes: int64(cfg.Audit.MaxBytes),
		Methods:       router.Methods(), // every method the router serves gets its subject
		Version:       semver(version),
		Logger:        logger,
	})
	if err != nil {
		return fail(err)
	}
	hs, err := listenHTTP(cfg, func() *gateway.Gateway { return h.g }, logger)
	if err != nil {
		return fail(err)
	}
	met := newRunMetrics(cfg, hs)
	events := newEventBridge(face, logger)
	// abort undoes a start that failed, in order: the face (once started),
	// the gateway (once made), the events, the listener.
	abort := func(err error, g *gateway.Gateway, faceStarted bool) int {
		if faceStarted {
			_ = face.Stop(context.Background())
		}
		if g != nil {
			_ = g.Close()
		}
		events.close()
		if hs != nil {
			_ = hs.ln.Close()
		}
		return fail(err)
	}
	var sink gateway.EventSink = events
	if hs != nil {
		sink = teeEvents{events, &faceEvents{face: hs.face, prev: &gateway.Catalog{}}}
	}
	g, ps, release, err := newGateway(ctx, cfg, logger, func(o *gateway.Options) {
		o.Events = sink
		o.Pins = natsPins{pins: pins, log: logger}
		o.Audit, o.AuditArguments = auditMode(cfg.Audit.Record), cfg.Audit.Arguments
		// With the HTTP face on, servers are told gw can sample, elicit and
		// list roots: an HTTP client whose call is in flight may answer.
		o.Handler = clientHandler{nc: nc, llmSubject: cfg.NATS.LLMSubject, timeout: cfg.Gateway.CallTimeout, declare: hs != nil}
		setObserver(o, met)
	})
	if err != nil {
		return abort(err, nil, false)
	}
	defer release()
	h.g = g
	watchRun(met, hs, g, ps, face, nc)
	if hs != nil {
		hs.health = &health{rule: cfg.Health, nc: nc, policies: ps, g: g}
		hs.health.starting.Store(true)
		hs.status = newStatusPage(nc, cfg.NATS.Prefix, logger)
	}
	if err := untilJetStreamReady(ctx, cfg.Gateway.StartTimeout, logger, func() error { return face.Start(ctx) }); err != nil {
		return abort(err, g, false)
	}
	if err := g.Start(ctx); errors.Is(err, gateway.ErrPinStore) {
		// Serving without the pins would trust every tool anew.
		return abort(err, g, true)
	} else if err != nil {
		// The servers that failed are restarted per their policy; the
		// others serve.
		logger.Error("some servers did not start", "error", err)
	}
	if hs != nil {
		hs.serve() // after the start, so a first tools/list is complete
	}
	// A hot swap changes the policy versions the gateway status names.
	ps.Swapped = func(policy.Kind) { publishGatewayStatus(face, name, "ready", g, ps) }
	ps.Watch(g, cfg.Policies.Watch)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchConfig(watchCtx, load, cfg.Gateway.ConfigWatch, cfg, g, logger)
	}()
	_ = g.FlushEvents(ctx) // "ready" follows the catalog of the start:
	events.flush(ctx)      // out of the gateway, then onto NATS
	if hs != nil {
		hs.health.starting.Store(false) // the tools' subscriptions exist: /readyz may say so
	}
	publishGatewayStatus(face, name, "ready", g, ps)
	logger.Info("gw ready", "gateway", name, "prefix", cfg.NATS.Prefix, "tools", len(g.Catalog().Tools))

	<-ctx.Done()
	logger.Info("gw stopping")
	if hs != nil {
		hs.health.stopping.Store(true) // /readyz: no new traffic
	}
	stopWatch()
	<-watchDone
	// Calls in flight get the grace period, or until a second signal.
	stopCtx, cancel := context.WithTimeout(hurryOf(ctx), cfg.Gateway.ShutdownGrace)
	defer cancel()
	if hs != nil {
		hs.stop(stopCtx)
	}
	if err := face.Stop(stopCtx); err != nil {
		logger.Warn("NATS face stop", "error", err)
	}
	// Watchers first: a policy swap rebuilds the catalog and emits.
	ps.StopWatching()
	_ = g.Close()
	events.close()
	auditCtx, cancelAudit := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelAudit()
	if err := face.WaitAudit(auditCtx); err != nil {
		logger.Warn("audit records may be lost", "error", err)
	}
	publishGatewayStatus(face, name, "stopped", g, ps)
	return 0
}

// publishGatewayStatus publishes the gateway's status, with each policy
// kind's module digest (policyDigests).
func publishGatewayStatus(face *natsface.Face, name, state string, g *gateway.Gateway, ps *policy.Set) {
	st, _ := json.Marshal(map[string]any{"gateway": name, "state": state, "servers": g.Servers(), "policies": policyDigests(ps), "time": time.Now().UTC()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = face.PublishGatewayStatus(ctx, st)
}

// connectNATS joins the configured NATS, or starts the embedded server when
// no URL is configured: the zero-setup default.
func connectNATS(ctx context.Context, cfg *config.Config, name string, logger *slog.Logger) (*nats.Conn, *natsconn.Embedded, error) {
	n := cfg.NATS
	if n.URL != "" {
		nc, err := natsconn.Connect(ctx, natsconn.ConnOptions{
			URL: n.URL, Name: "gw " + name, CredsFile: n.CredsFile, NKeyFile: n.NKeyFile,
			User: n.User, Password: n.Password, Token: n.Token,
			TLS:          natsconn.TLSOptions{CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile, InsecureSkipVerify: n.TLS.InsecureSkipVerify},
			PingInterval: n.PingInterval,
			Logger:       logger,
		})
		return nc, nil, err
	}
	dir := embeddedStoreDir(cfg)
	e, err := natsconn.StartEmbedded(ctx, natsconn.EmbeddedOptions{StoreDir: dir, Port: n.Embedded.Port, ServerName: name, Logger: logger})
	if err != nil {
		return nil, nil, embeddedAdvice(err, n.Embedded.Port)
	}
	nc, err := e.Connect("gw " + name)
	if err != nil {
		e.Shutdown()
		return nil, nil, err
	}
	if url := e.ClientURL(); url != "" {
		logger.Info("embedded NATS server", "url", url, "try", "nats --server "+url+" micro ls", "store", dir)
	}
	return nc, e, nil
}

// embeddedAdvice adds what to do to an error of the embedded NATS server
// whose store or port another gw (usually) already uses: join that one, or
// run this one apart from it.
func embeddedAdvice(err error, port int) error {
	if !errors.Is(err, natsconn.ErrStoreInUse) && !errors.Is(err, natsconn.ErrAddrInUse) {
		return err
	}
	url := "nats://127.0.0.1:PORT"
	if port > 0 {
		url = fmt.Sprintf("nats://127.0.0.1:%d", port)
	}
	return fmt.Errorf("%w\n  another gw probably runs here with its embedded NATS server. Either join it:\n"+
		"    --set nats.url=%s\n"+
		"  or run this one apart, with its own store and port:\n"+
		"    --set nats.embedded.store_dir=DIR --set nats.embedded.port=-1", err, url)
}

// embeddedStoreDir is where the embedded NATS server keeps its state.
func embeddedStoreDir(cfg *config.Config) string {
	if d := cfg.NATS.Embedded.StoreDir; d != "" {
		return d
	}
	return filepath.Join(stateDir(), "gw", "nats")
}

// stateDir is $XDG_STATE_HOME, else ~/.local/state, else the temp dir.
func stateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state")
	}
	return os.TempDir()
}

func defaultGatewayName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "gw"
	}
	out := []rune{}
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			out = append(out, r)
		} else {
			out = append(out, '-')
		}
	}
	return string(out)
}

// semver turns the build version into what micro accepts.
func semver(v string) string {
	if v == "" || v == "dev" {
		return "0.0.0-dev"
	}
	return v
}

// untilJetStreamReady runs step (which makes JetStream streams or buckets)
// and runs it again while JetStream cannot yet do what it asks: a cluster
// still electing its leaders, or gathering the peers that nats.replicas
// needs (every gw of a fleet starting at once meets this). It gives up after
// wait, or at once on any other error.
func untilJetStreamReady(ctx context.Context, wait time.Duration, logger *slog.Logger, step func() error) error {
	deadline := time.Now().Add(wait)
	delay := 250 * time.Millisecond
	for {
		err := step()
		if err == nil || !jetStreamNotReady(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		logger.Warn("JetStream is not ready yet; trying again", "error", err, "in", delay)
		if !sleepCtx(ctx, delay) {
			return ctx.Err()
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// JetStream's API error codes for a cluster not ready yet (nats-server's
// server/errors.json).
const (
	jsClusterNoPeers   = 10005 // JSClusterNoPeersErrF: no suitable peers for placement
	jsClusterNotAvail  = 10008 // JSClusterNotAvailErr: temporarily unavailable
	jsClusterNotLeader = 10009 // JSClusterNotLeaderErr: cannot handle the request (no leader yet)
	jsStreamOffline    = 10118 // JSStreamOfflineErr
	jsStreamOfflineWhy = 10194 // JSStreamOfflineReasonErrF
)

// jetStreamNotReady reports whether err is JetStream saying "not yet" (a
// cluster without quorum, leader or enough peers; a request that timed out
// meanwhile) rather than "no" (not enabled, not permitted, bad config).
func jetStreamNotReady(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return false
		case jsClusterNoPeers, jsClusterNotAvail, jsClusterNotLeader, jsStreamOffline, jsStreamOfflineWhy:
			return true
		}
		return api.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}
