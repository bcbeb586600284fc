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
	ctx, span := g.tracer.Start(ctx, "authorize "+e.Name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			tracing.ToolName.String(e.Name),
			tracing.Server.String(e.Server),
			tracing.EndUser.String(CallerFrom(ctx).ID),
		))
	err := g.authorize(ctx, e, params)
	decision := "allow"
	if err != nil {
		decision = "deny"
	}
	span.SetAttributes(tracing.Decision.String(decision))
	tracing.End(span, nil, err)
	return err
}

// routeTraced is route in an upstream (client) span: the round trip to the
// server, including the wait for a restarting one. The span's W3C trace
// context goes to the server in the request's _meta (traceparent,
// tracestate; the caller's own are replaced, since the server's span is the
// child of this one), set in the pass that edits _meta anyway.
func (g *Gateway) routeTraced(ctx context.Context, server, method string, params json.RawMessage, opts CallOptions) (json.RawMessage, error) {
	target, attrs := tracing.Target(method, params)
	attrs = append(attrs, tracing.Server.String(server), tracing.NetTransport.String("pipe"))
	ctx, span := g.tracer.Start(ctx, tracing.SpanName(method, target), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	parent, state := tracing.Header(span.SpanContext())
	meta := []member{{"traceparent", mustJSON(parent)}, {"tracestate", nil}}
	if state != "" {
		meta[1].value = mustJSON(state)
	}
	res, err := g.routeTo(ctx, server, method, params, callOptions{onProgress: opts.Progress, onLog: opts.Log, span: span, meta: meta})
	if errors.Is(err, context.DeadlineExceeded) {
		span.SetAttributes(tracing.ErrorType.String("timeout"))
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return res, err
	}
	tracing.End(span, res, err)
	return res, err
}
