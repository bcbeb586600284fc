package gateway

import (
	"context"
	"encoding/json"
	"errors"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/tracing"
)

// Tracer returns the tracer of Options.TracerProvider, nil when tracing is
// off: the router starts each routed request's span with it.
func (g *Gateway) Tracer() trace.Tracer { return g.tracer }

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
// server, including the wait for a restarting one. The span's W3C trace
// context goes to the server in the request's _meta (traceparent,
// tracestate; the caller's own are replaced, since the server's span is the
// child of this one), set in the pass that edits _meta anyway.
func (g *Gateway) routeTraced(ctx context.Context, server, method string, params json.RawMessage, opts CallOptions) (json.RawMessage, error) {
	target := tracing.Target(method, params)
	ctx, span := g.tracer.Start(ctx, tracing.SpanName(method, target), trace.WithSpanKind(trace.SpanKindClient))
	copts := callOptions{onProgress: opts.Progress, onLog: opts.Log, meta: traceMeta(span.SpanContext())}
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

// traceMeta returns the _meta entries of sc's W3C trace context: its
// traceparent, and its tracestate or none (a caller's tracestate is the
// span's own, inherited, when there was one).
func traceMeta(sc trace.SpanContext) []member {
	if !sc.IsValid() { // a provider that makes no span contexts
		return nil
	}
	parent, state := tracing.Header(sc)
	// A traceparent is hex digits and dashes: quoting it is all its JSON
	// needs.
	meta := []member{{"traceparent", []byte(`"` + parent + `"`)}, {"tracestate", nil}}
	if state != "" {
		meta[1].value = mustJSON(state)
	}
	return meta
}
