package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/tracing"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Tracer returns the tracer of Options.TracerProvider, nil when tracing is
// off: the router starts each routed request's span with it.
func (g *Gateway) Tracer() trace.Tracer { return g.tracer }

// Propagator returns the propagator of Options.TracerProvider's traces
// (Options.Propagator, or W3C trace context and baggage), nil when tracing
// is off: the router reads a request's carriers with it.
func (g *Gateway) Propagator() propagation.TextMapPropagator { return g.prop }

// authorizeTraced is authorize in a span of its own (when tracing is on and
// an authorizer is configured), a child of the request's.
func (g *Gateway) authorizeTraced(ctx context.Context, e *Entry, params json.RawMessage) error {
	if g.tracer == nil || g.opts.Authorizer == nil {
		return g.authorize(ctx, e, params)
	}
	ctx, span := g.tracer.Start(ctx, "authorize "+e.Name, trace.WithSpanKind(trace.SpanKindInternal))
	err := g.authorize(ctx, e, params)
	if span.IsRecording() {
		decision := "allow"
		if err != nil {
			decision = "deny"
		}
		span.SetAttributes(
			tracing.ToolName.String(e.Name),
			tracing.Server.String(e.Server),
			tracing.EndUser.String(CallerFrom(ctx).ID),
			tracing.Decision.String(decision),
		)
	}
	tracing.End(span, nil, err)
	return err
}

// routeTraced is route in an upstream (client) span: the round trip to the
// server, including the wait for a restarting one. The span's trace
// context goes to the server in the request's _meta, as the propagator
// writes it (the caller's own entries of its keys are replaced, since the
// server's span is the child of this one), set in the pass that edits
// _meta anyway.
func (g *Gateway) routeTraced(ctx context.Context, server, method string, params json.RawMessage, opts CallOptions) (json.RawMessage, error) {
	target := tracing.Target(method, params)
	ctx, span := g.tracer.Start(ctx, tracing.SpanName(method, target), trace.WithSpanKind(trace.SpanKindClient))
	copts := callOptions{onProgress: opts.Progress, onLog: opts.Log, meta: g.traceMeta(ctx)}
	if span.IsRecording() {
		span.SetAttributes(append(tracing.RequestAttrs(method, target, params), tracing.Server.String(server), tracing.NetTransport.String("pipe"))...)
		copts.span = span
	}
	res, err := g.routeTo(ctx, server, method, params, copts)
	if errors.Is(err, context.DeadlineExceeded) {
		span.SetAttributes(tracing.ErrorType.String("timeout"))
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return res, err
	}
	tracing.End(span, res, err)
	return res, err
}

// traceMeta returns the _meta entries of ctx's trace context (its span,
// its baggage) as the propagator writes them: each key the propagator owns
// for a span context set or removed, baggage set only when ctx has some
// (a caller's is never removed). nil when ctx has no valid span context
// (a provider that makes none: the caller's _meta goes on untouched) or
// the propagator writes nothing ("none").
func (g *Gateway) traceMeta(ctx context.Context) []member {
	entries := g.metaw.Entries(ctx)
	if entries == nil {
		return nil
	}
	meta := make([]member, len(entries))
	for i, e := range entries {
		meta[i].key = e.Key // a valid _meta name: no escaping needed
		if e.Value != "" {
			meta[i].value = jsonrpc.AppendString(nil, e.Value)
		}
	}
	return meta
}

// noteEvent records a notification that belongs to a call (its progress, a
// log message routed to it) as an event on the call's upstream span, when
// it records: an event per notification, not a span, since it has no
// duration and nothing answers it, and it is where the call's timeline is.
func noteEvent(ctx context.Context, method string, params json.RawMessage) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(method, trace.WithAttributes(tracing.NoteAttrs(method, params)...))
	}
}

// tracedClients is the ClientHandler when tracing is on: a span for each
// request a server makes of its client (sampling, elicitation, roots),
// "{method}". Its parent is the server's own span when the request carries
// one in _meta and it belongs to the call the request is asked in (same
// trace), or there is no call (a legacy server asking on its own); else
// the call's upstream span (a modern server's input requests always belong
// to a call; a legacy server's is asked in the context of the call
// askerFor picks), the server's context then linked; else, with neither,
// the root of a trace of its own. Baggage, likewise, is the server's when
// its request has any, else the call's (the router's rule: the request's
// own carrier first). The span's context and that baggage go to the client
// in the request's _meta, as to servers.
type tracedClients struct {
	ClientHandler
	g *Gateway
}

// HandleClientRequest serves req in its span.
func (h tracedClients) HandleClientRequest(ctx context.Context, req ClientRequest) (json.RawMessage, error) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	ctx = h.serverContext(ctx, req, &opts)
	ctx, span := h.g.tracer.Start(ctx, req.Method, opts...)
	if span.IsRecording() {
		span.SetAttributes(tracing.MethodName.String(req.Method), tracing.Server.String(req.Server), tracing.NetTransport.String("pipe"))
	}
	if meta := h.g.traceMeta(ctx); meta != nil {
		// The server's params are an object or none; anything else
		// goes on as it came.
		if params, err := withMeta(req.Params, meta...); err == nil {
			req.Params = params
		}
	}
	res, err := h.ClientHandler.HandleClientRequest(ctx, req)
	tracing.End(span, res, err)
	return res, err
}

// serverContext returns ctx with the trace context and baggage of the
// server's request (its _meta) where they win over the call's (see
// tracedClients), or adds the link to the server's span to opts.
func (h tracedClients) serverContext(ctx context.Context, req ClientRequest, opts *[]trace.SpanStartOption) context.Context {
	sc, bag := tracing.Extract(h.g.prop, tracing.MetaOf(req.Params))
	if sc.IsValid() {
		call := trace.SpanContextFromContext(ctx)
		switch {
		case !call.IsValid() || call.TraceID() == sc.TraceID():
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		default:
			*opts = append(*opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	if bag.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bag)
	}
	return ctx
}

// startSpan is the span of one start of a server (attempt 0, then each
// restart): the spawn, the handshake and the first lists, a trace of its
// own. With tracing off it is a span that records nothing.
func (g *Gateway) startSpan(ctx context.Context, server string, attempt int) trace.Span {
	if g.tracer == nil {
		return trace.SpanFromContext(context.Background())
	}
	_, span := g.tracer.Start(ctx, "start "+server, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(tracing.Server.String(server), attribute.Int("gw.server.attempt", attempt)))
	return span
}

// endStartSpan ends a start's span: with the session's era and version and
// the tools listed, or the error it failed with.
func endStartSpan(span trace.Span, s *session, tools int, err error) {
	switch {
	case !span.IsRecording(): // unsampled, or tracing off: nothing to record
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(tracing.ProtocolVersion.String(s.version), attribute.String("gw.server.era", s.era.String()),
			attribute.Int("gw.server.tools", tools))
	}
	span.End()
}

// relistSpan is the span of a re-listing of some of a server's lists (after
// its list_changed, or for a request that found them stale: then the
// request's child). With tracing off it records nothing.
func (g *Gateway) relistSpan(ctx context.Context, server string, kinds []Kind) trace.Span {
	if g.tracer == nil {
		return trace.SpanFromContext(context.Background())
	}
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	_, span := g.tracer.Start(ctx, "relist "+server, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(tracing.Server.String(server), attribute.StringSlice("gw.lists", names)))
	return span
}

// endRelistSpan ends a re-listing's span, with the lists that failed.
func endRelistSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
