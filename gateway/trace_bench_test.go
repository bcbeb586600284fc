package gateway_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/face"
)

// BenchmarkToolsCallTraced is a tools/call through the router (as every
// face serves it) with tracing off, on and sampled (three spans per call:
// the request, the upstream round trip and, with an authorizer, the
// authorization; batched to an exporter that drops them), and on but not
// sampled (the caller's traceparent says so). The difference is what
// tracing costs a call; see docs/BENCHMARKS.md.
func BenchmarkToolsCallTraced(b *testing.B) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		for _, mode := range []string{"off", "sampled", "unsampled"} {
			b.Run(fmt.Sprintf("era=%s/tracing=%s", era, mode), func(b *testing.B) { benchTraced(b, era, mode) })
		}
	}
}

func benchTraced(b *testing.B, era mcptest.Era, mode string) {
	opts := gateway.Options{Servers: []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: era})}, Authorizer: allowAll{}}
	req := &face.Request{Method: "tools/call", Params: params("s__echo", map[string]any{"text": "benchmark"}), Principal: "bench"}
	if mode != "off" {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		opts.TracerProvider = tp
		flags := "01"
		if mode == "unsampled" {
			flags = "00"
		}
		req.Trace.Parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-" + flags
	}
	r := router.New(start(b, opts))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Serve(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }
