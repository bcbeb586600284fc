package gateway_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/jsonrpc"
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
	}
}

func benchGateway(b *testing.B, era mcptest.Era, parallel bool) {
	g := start(b, gateway.Options{Servers: []gateway.ServerSpec{server(b, "s", mcptest.Options{Era: era})}})
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

// benchDirect speaks to the server with hand-written lines: the floor any
// stdio client pays (process pipes, the server's own work).
func benchDirect(b *testing.B, era mcptest.Era) {
	spec := server(b, "s", mcptest.Options{Era: era})
	exe, _ := os.Executable()
	p, err := stdio.Start(stdio.Config{Name: "direct", Command: exe, Env: spec.Env, StopGrace: 500 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	roundTrip := func(line string, id string) {
		if err := p.WriteMessage(ctx, []byte(line)); err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := p.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if m, err := jsonrpc.Decode(msg); err == nil && m.Kind() == jsonrpc.KindResponse && m.ID.String() == id {
				if m.Error != nil {
					b.Fatal(m.Error)
				}
				return
			}
		}
	}
	meta := ""
	if era == mcptest.EraLegacy {
		roundTrip(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}`, "0")
		if err := p.WriteMessage(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
			b.Fatal(err)
		}
	} else {
		meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"0"}},`
	}
	b.ReportAllocs()
	b.ResetTimer()
	id := 0
	for b.Loop() {
		id++
		ids := fmt.Sprint(id)
		roundTrip(`{"jsonrpc":"2.0","id":`+ids+`,"method":"tools/call","params":{`+meta+`"name":"echo","arguments":{"text":"benchmark"}}}`, ids)
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
