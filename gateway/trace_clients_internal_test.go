package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gwmcp/gw/internal/tracing"
)

// askedWith is a ClientHandler that keeps the params it was asked with.
type askedWith struct{ params json.RawMessage }

func (*askedWith) Supports(context.Context, string) bool { return true }

func (a *askedWith) HandleClientRequest(_ context.Context, req ClientRequest) (json.RawMessage, error) {
	a.params = req.Params
	return json.RawMessage(`{}`), nil
}

// TestTraceClientRequestContext: a server's request of its client keeps
// the server's trace context and baggage. With no call in flight (a legacy
// server asking on its own) the server's span is the parent of gw's, not a
// new root; during a call, the server's span is the parent when it is in
// the call's trace (the server's span under gw's upstream span), linked
// when it is not (the call's upstream span is then the parent). The
// server's baggage wins over the call's; without any, the call's goes on.
// The client gets gw's span and that baggage in _meta, the rest kept.
func TestTraceClientRequestContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prop := tracing.DefaultPropagator()
	g := &Gateway{tracer: tracing.Tracer(tp), prop: prop, metaw: tracing.NewMetaWriter(prop)}
	asked := &askedWith{}
	h := tracedClients{ClientHandler: asked, g: g}

	// The call: its upstream span, with the caller's baggage.
	callBag, _ := baggage.Parse("caller=1")
	callCtx, up := g.tracer.Start(baggage.ContextWithBaggage(context.Background(), callBag), "tools/call sample")
	defer up.End()
	callTrace := up.SpanContext().TraceID().String()

	const otherTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const serverSpan = "00f067aa0ba902b7"
	for _, tt := range []struct {
		name        string
		ctx         context.Context
		meta        string // the server's _meta
		parentTrace string // the trace of gw's span, "" for a root
		parentSpan  string // the span id of its parent, "" for the upstream span's
		linked      bool   // the server's span linked
		wantBag     string // the client's baggage
	}{
		{"no call", context.Background(), `"traceparent":"00-` + otherTrace + `-` + serverSpan + `-01","baggage":"server=1"`,
			otherTrace, serverSpan, false, "server=1"},
		{"no call, no context", context.Background(), `"baggage":"server=1"`, "", "", false, "server=1"},
		{"call, same trace", callCtx, `"traceparent":"00-` + callTrace + `-` + serverSpan + `-01","baggage":"server=1"`,
			callTrace, serverSpan, false, "server=1"},
		{"call, another trace", callCtx, `"traceparent":"00-` + otherTrace + `-` + serverSpan + `-01"`,
			callTrace, "", true, "caller=1"},
		{"call, none", callCtx, `"x":1`, callTrace, "", false, "caller=1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			params := json.RawMessage(`{"maxTokens":5,"_meta":{` + tt.meta + `,"x":1}}`)
			if _, err := h.HandleClientRequest(tt.ctx, ClientRequest{Server: "s", Method: "sampling/createMessage", Params: params}); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("spans %v", spans)
			}
			sp := spans[0]
			switch {
			case tt.parentTrace == "" && sp.Parent.IsValid():
				t.Errorf("parent %v, want a root", sp.Parent)
			case tt.parentTrace != "" && sp.SpanContext.TraceID().String() != tt.parentTrace:
				t.Errorf("trace %s, want %s", sp.SpanContext.TraceID(), tt.parentTrace)
			case tt.parentSpan != "" && sp.Parent.SpanID().String() != tt.parentSpan:
				t.Errorf("parent %s, want the server's span %s", sp.Parent.SpanID(), tt.parentSpan)
			case tt.parentTrace != "" && tt.parentSpan == "" && sp.Parent.SpanID() != up.SpanContext().SpanID():
				t.Errorf("parent %s, want the upstream span %s", sp.Parent.SpanID(), up.SpanContext().SpanID())
			}
			if linked := len(sp.Links) == 1 && sp.Links[0].SpanContext.TraceID().String() == otherTrace; linked != tt.linked || len(sp.Links) > 1 {
				t.Errorf("links %v, want the server's span linked: %v", sp.Links, tt.linked)
			}
			var got struct {
				MaxTokens int            `json:"maxTokens"`
				Meta      map[string]any `json:"_meta"`
			}
			if err := json.Unmarshal(asked.params, &got); err != nil {
				t.Fatal(err)
			}
			want := "00-" + sp.SpanContext.TraceID().String() + "-" + sp.SpanContext.SpanID().String() + "-01"
			if got.MaxTokens != 5 || got.Meta["traceparent"] != want || got.Meta["baggage"] != tt.wantBag || got.Meta["x"] != 1.0 {
				t.Errorf("the client was asked with %s; want traceparent %s and baggage %s", asked.params, want, tt.wantBag)
			}
		})
	}
}

// endedSpan is a span that does not record and notes that it was ended.
type endedSpan struct {
	noop.Span
	ended bool
}

func (s *endedSpan) End(...trace.SpanEndOption) { s.ended = true }

// TestTraceStartSpanEnded: a start's span is ended whether it records or
// not (an unsampled span is still a span its processor may track).
func TestTraceStartSpanEnded(t *testing.T) {
	for _, err := range []error{nil, errors.New("no such command")} {
		span := &endedSpan{}
		endStartSpan(span, nil, 0, err)
		if !span.ended {
			t.Errorf("an unsampled start span (error %v) was not ended", err)
		}
	}
}
