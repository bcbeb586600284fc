package router

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/tracing"
	"github.com/gwmcp/gw/transport/face"
)

// serveTraced serves req in a server span, "{method} {target}" after the
// OpenTelemetry conventions for MCP. Its parent is the trace context in
// params._meta (the MCP carrier, on every face), else the one of the face's
// transport headers (NATS, HTTP), both read with the gateway's propagator;
// when both are there and differ, the transport's is linked, as the
// conventions ask: an MCP request and the message that carried it are
// separate things. Baggage comes from _meta too, else from the headers.
func (r *Router) serveTraced(ctx context.Context, t trace.Tracer, serve method, req *face.Request) (json.RawMessage, error) {
	prop := r.g.Propagator()
	parent, bag := tracing.Extract(prop, tracing.MetaOf(req.Params))
	carried, carriedBag := tracing.Extract(prop, tracing.Headers(req.Trace.Header))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	switch {
	case parent.IsValid():
		if carried.IsValid() && !carried.Equal(parent) {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: carried}))
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	case carried.IsValid():
		ctx = trace.ContextWithRemoteSpanContext(ctx, carried)
	}
	if bag.Len() == 0 {
		bag = carriedBag
	}
	if bag.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bag)
	}
	target := tracing.Target(req.Method, req.Params)
	ctx, span := t.Start(ctx, tracing.SpanName(req.Method, target), opts...)
	if span.IsRecording() {
		span.SetAttributes(append(tracing.RequestAttrs(req.Method, target, req.Params), originAttrs(req)...)...)
	}
	res, err := serve(r, ctx, req)
	tracing.End(span, res, err)
	return res, err
}

// originAttrs are the attributes of where a request came from.
func originAttrs(req *face.Request) []attribute.KeyValue {
	tr := req.Trace
	attrs := []attribute.KeyValue{tracing.EndUser.String(req.Principal)}
	if id := tracing.IDText(tr.RequestID); id != "" {
		attrs = append(attrs, tracing.RequestID.String(id))
	}
	if tr.SessionID != "" {
		attrs = append(attrs, tracing.SessionID.String(tr.SessionID))
	}
	if tr.ProtocolVersion != "" {
		attrs = append(attrs, tracing.ProtocolVersion.String(tr.ProtocolVersion))
	}
	switch tr.Transport {
	case face.TransportNATS:
		attrs = append(attrs, tracing.MessagingSystem.String("nats"), tracing.MessagingDest.String(tr.Destination), tracing.NetTransport.String("tcp"))
	case face.TransportHTTP:
		attrs = append(attrs, tracing.NetProtocol.String("http"), tracing.NetTransport.String("tcp"))
	case face.TransportStdio:
		attrs = append(attrs, tracing.NetTransport.String("pipe"))
	}
	return attrs
}
