package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/internal/metrics"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/stdio"
)

// BenchmarkToolsCall compares, in one run, a tools/call through the gateway
// with the same call written straight to the server's stdin by a minimal
// client (no pending map, no catalog, one call at a time). The ratio of the
// two is gw's overhead; see docs/BENCHMARKS.md.
func BenchmarkToolsCall(b *testing.B) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		b.Run(fmt.Sprintf("era=%s/direct", era), func(b *testing.B) { benchDirect(b, era) })
		b.Run(fmt.Sprintf("era=%s/gw", era), func(b *testing.B) { benchGateway(b, era, false) })
		b.Run(fmt.Sprintf("era=%s/gw-parallel", era), func(b *testing.B) { benchGateway(b, era, true) })
		// With gw run's Prometheus recorder as the Observer: what metrics
		// add to a call.
		b.Run(fmt.Sprintf("era=%s/gw-metrics", era), func(b *testing.B) {
			benchGatewayWith(b, era, false, gateway.Options{Observer: metrics.New(metrics.Options{})})
		})
	}
}

// BenchmarkToolsCallSideBySide is BenchmarkToolsCall's ratio measured so
// that drift cannot bias it: each iteration makes one direct call, one by a
// bare client whose reader goroutine hands replies over (as gw's session
// does), and one through the gateway, each to its own copy of the server,
// in turn; the p50s and the ratios are reported. Sub-benchmarks run one
// after the other and the machine's speed drifts between them (a VM's idle
// cores wake at their own pace), so BenchmarkToolsCall's ratio moves by
// ±15 % from run to run; this one does not.
func BenchmarkToolsCallSideBySide(b *testing.B) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		b.Run(fmt.Sprintf("era=%s", era), func(b *testing.B) {
			ctx := context.Background()
			client := func(serial bool) *rpcclient.Client {
				spec := server(b, "s", mcptest.Options{Era: era})
				exe, _ := os.Executable()
				p, err := stdio.Start(stdio.Config{Name: "direct", Command: exe, Env: spec.Env, StopGrace: 500 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				c, err := rpcclient.Open(ctx, p, rpcclient.Options{Era: rpcclient.Era(era), Serial: serial})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.Close() })
				return c
			}
			// serial reads the reply on the caller's goroutine; pipelined
			// has a reader goroutine hand it over, as gw's session does.
			serial, pipelined := client(true), client(false)
			g := start(b, gateway.Options{Servers: []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: era})}})
			direct := json.RawMessage(`{"name":"echo","arguments":{"text":"benchmark"}}`)
			through := params("s__echo", map[string]any{"text": "benchmark"})
			var st, pt, gt []time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := serial.Call(ctx, "tools/call", direct); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := pipelined.Call(ctx, "tools/call", direct); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if _, err := g.CallTool(ctx, through, gateway.CallOptions{}); err != nil {
					b.Fatal(err)
				}
				st, pt, gt = append(st, t1.Sub(t0)), append(pt, t2.Sub(t1)), append(gt, time.Since(t2))
			}
			d, pl, w := median(st), median(pt), median(gt)
			b.ReportMetric(float64(d.Microseconds()), "direct-p50-µs")
			b.ReportMetric(float64(pl.Microseconds()), "pipelined-p50-µs")
			b.ReportMetric(float64(w.Microseconds()), "gw-p50-µs")
			b.ReportMetric(float64(w)/float64(d), "gw/direct")
			b.ReportMetric(float64(w)/float64(pl), "gw/pipelined")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func benchGateway(b *testing.B, era mcptest.Era, parallel bool) {
	benchGatewayWith(b, era, parallel, gateway.Options{})
}

func benchGatewayWith(b *testing.B, era mcptest.Era, parallel bool, opts gateway.Options) {
	opts.Servers = []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: era})}
	g := start(b, opts)
	p := params("s__echo", map[string]any{"text": "benchmark"})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := g.CallTool(ctx, p, gateway.CallOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		return
	}
	for b.Loop() {
		if _, err := g.CallTool(ctx, p, gateway.CallOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDirect calls the server with a bare client on its stdio, one call at
// a time on the caller's goroutine (rpcclient's serial mode: no reader
// goroutine, no pending map): the floor any stdio client pays (process
// pipes, the server's own work).
func benchDirect(b *testing.B, era mcptest.Era) {
	benchDirectWith(b, era, json.RawMessage(`{"name":"echo","arguments":{"text":"benchmark"}}`))
}

// benchDirectWith is benchDirect with the given tools/call params.
func benchDirectWith(b *testing.B, era mcptest.Era, req json.RawMessage) {
	spec := server(b, "s", mcptest.Options{Era: era})
	exe, _ := os.Executable()
	p, err := stdio.Start(stdio.Config{Name: "direct", Command: exe, Env: spec.Env, StopGrace: 500 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := rpcclient.Open(ctx, p, rpcclient.Options{Era: rpcclient.Era(era), Serial: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Call(ctx, "tools/call", req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouteManyServers shows the call path does not slow down with the
// number of servers: 100 servers' catalogs, one call routed among them.
func BenchmarkRouteManyServers(b *testing.B) {
	if testing.Short() {
		b.Skip("starts 100 processes")
	}
	var specs []gateway.ServerSpec
	for i := range 100 {
		specs = append(specs, server(b, fmt.Sprintf("srv%03d", i), mcptest.Options{Tools: []string{"search", "fetch"}}))
	}
	g := start(b, gateway.Options{Servers: specs, StartTimeout: 2 * time.Minute})
	if n := len(g.Catalog().Tools); n < 100*20 {
		b.Fatalf("catalog has %d tools", n)
	}
	p := params("srv057__echo", map[string]any{"text": "x"})
	b.ResetTimer()
	for b.Loop() {
		res, err := g.CallTool(context.Background(), p, gateway.CallOptions{})
		if err != nil || !strings.Contains(string(res), `"x"`) {
			b.Fatal(err, string(res))
		}
	}
}

// allowAll is an in-Go authorizer that decides without reading the
// arguments: what gw itself pays to hand them over.
type allowAll struct{}

func (allowAll) Authorize(context.Context, gateway.AuthzRequest) (gateway.Decision, error) {
	return gateway.Decision{Allow: true}, nil
}

// BenchmarkLargeArgs is a tools/call with a 1 MiB argument (echoed back: a
// result of 2 MiB, as text and structuredContent), directly and through gw,
// beside one validating scan of the 1 MiB params (issue 12: gw may add at
// most two such scans). gw-full is the modern era with an authorizer and a
// progress token: every edit the call path makes to params.
func BenchmarkLargeArgs(b *testing.B) {
	text := strings.Repeat("abcdefgh", 1<<17) // 1 MiB
	p := params("s__echo", map[string]any{"text": text})
	b.Run("scan-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			if !json.Valid(p) {
				b.Fatal("invalid")
			}
		}
	})
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		b.Run(fmt.Sprintf("era=%s/direct", era), func(b *testing.B) {
			benchDirectWith(b, era, json.RawMessage(strings.Replace(string(p), `"s__echo"`, `"echo"`, 1)))
		})
		b.Run(fmt.Sprintf("era=%s/gw", era), func(b *testing.B) {
			g := start(b, gateway.Options{Servers: []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: era})}})
			benchCalls(b, g, p, gateway.CallOptions{})
		})
	}
	b.Run("era=modern/gw-full", func(b *testing.B) {
		g := start(b, gateway.Options{Authorizer: allowAll{},
			Servers: []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: mcptest.EraModern})}})
		withToken := json.RawMessage(strings.Replace(string(p), `{`, `{"_meta":{"progressToken":"caller-1"},`, 1))
		benchCalls(b, g, withToken, gateway.CallOptions{Progress: func(json.RawMessage) {}})
	})
}

func benchCalls(b *testing.B, g *gateway.Gateway, p json.RawMessage, opts gateway.CallOptions) {
	ctx := context.Background()
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.CallTool(ctx, p, opts); err != nil {
			b.Fatal(err)
		}
	}
}
