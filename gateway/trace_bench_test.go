package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"syscall"
	"testing"
	"time"

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
		req.Trace.Header = map[string][]string{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-" + flags}}
	}
	r := router.New(start(b, opts))
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		if _, err := r.Serve(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	// gw's own CPU per call (the server is another process): steadier than
	// the wall time on a shared machine, and what tracing adds to.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "gw-cpu-ns/op")
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// TestTracingOffAllocs: with tracing off, a caller's trace context (a
// face's traceparent header, a traceparent in _meta) costs the call path
// nothing: such a call allocates no more than one without any.
func TestTracingOffAllocs(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			r := router.New(start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})}, Authorizer: allowAll{}}))
			const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			plain := &face.Request{Method: "tools/call", Params: params("s__echo", map[string]any{"text": "x"}), Principal: "p"}
			traced := &face.Request{Method: "tools/call", Principal: "p",
				Params: json.RawMessage(`{"name":"s__echo","arguments":{"text":"x"},"_meta":{"traceparent":"` + tp + `"}}`),
				Trace:  face.Trace{Header: map[string][]string{"traceparent": {tp}, "tracestate": {"a=b"}, "b3": {"1-2-1"}}, Transport: face.TransportNATS, Destination: "mcp.v1.req.p.tools.call.s__echo"}}
			ctx := context.Background()
			// The fewest allocations of any one call: an allocation the code
			// makes shows in every call, one the race detector's sync.Pool
			// (it drops a share of what is put back) or a busy machine adds
			// now and then does not. (testing.AllocsPerRun's mean moves with
			// those, by one now and then.)
			allocs := func(req *face.Request) uint64 {
				least := uint64(math.MaxUint64)
				var before, after runtime.MemStats
				for range 200 {
					runtime.ReadMemStats(&before)
					if _, err := r.Serve(ctx, req); err != nil {
						t.Fatal(err)
					}
					runtime.ReadMemStats(&after)
					least = min(least, after.Mallocs-before.Mallocs)
				}
				return least
			}
			allocs(plain) // warm up: pools, the session's first calls
			if a, b := allocs(plain), allocs(traced); b > a {
				t.Errorf("a call with trace context allocates %v times, one without %v", b, a)
			}
		})
	}
}
