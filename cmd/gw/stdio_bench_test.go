package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/stdio"
)

// BenchmarkMCPFaces is a tools/call from an MCP client, one at a time, in
// one run, both eras: straight to the server over stdio (the floor);
// through `gw stdio` in front of the same server; and through `gw run`'s
// Streamable HTTP face (benchHTTP). See docs/BENCHMARKS.md.
func BenchmarkMCPFaces(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, era := range []string{"legacy", "modern"} {
		b.Run("era="+era+"/direct", func(b *testing.B) {
			benchStdioClient(b, era, "echo", stdio.Config{Name: "direct", Command: exe,
				Env: map[string]string{"MCPTEST_SERVER": "1", "MCPTEST_ERA": era}})
		})
		b.Run("era="+era+"/gw-stdio", func(b *testing.B) {
			cfg := filepath.Join(b.TempDir(), "gw.yaml")
			body := fmt.Sprintf("gateway: {config_watch: 0s}\nservers:\n  s: {command: %s, env: {MCPTEST_SERVER: \"1\", MCPTEST_ERA: %s}}\n", exe, era)
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
			benchStdioClient(b, era, "s__echo", stdio.Config{Name: "gw", Command: exe, Args: []string{"stdio", "-c", cfg},
				Env: map[string]string{envRunAsGW: "1"}})
		})
		b.Run("era="+era+"/gw-http", func(b *testing.B) { benchHTTP(b, exe, era) })
	}
}

// benchStdioClient opens a session in era with the server cfg starts and
// times tools/call of tool, one at a time.
func benchStdioClient(b *testing.B, era, tool string, cfg stdio.Config) {
	cfg.StopGrace = 2 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler) // gw's own logs, on its stderr
	p, err := stdio.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	roundTrip := func(line, id string) {
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
	if era == "legacy" {
		roundTrip(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}`, "0")
		if err := p.WriteMessage(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
			b.Fatal(err)
		}
	} else {
		meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"0"}},`
	}
	call := func(id int) {
		ids := fmt.Sprint(id)
		roundTrip(`{"jsonrpc":"2.0","id":`+ids+`,"method":"tools/call","params":{`+meta+`"name":"`+tool+`","arguments":{"text":"benchmark"}}}`, ids)
	}
	call(1) // gw stdio starts its servers at the first request
	id := 1
	b.ResetTimer()
	for b.Loop() {
		id++
		call(id)
	}
}
