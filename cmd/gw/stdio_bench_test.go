package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/rpcclient"
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
// times tools/call of tool, one at a time on the caller's goroutine
// (rpcclient's serial mode: no reader goroutine).
func benchStdioClient(b *testing.B, era, tool string, cfg stdio.Config) {
	cfg.StopGrace = 2 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler) // gw's own logs, on its stderr
	p, err := stdio.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := rpcclient.Open(ctx, p, rpcclient.Options{Era: rpcclient.Era(era), Serial: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	params := json.RawMessage(`{"name":"` + tool + `","arguments":{"text":"benchmark"}}`)
	call := func() {
		if _, err := c.Call(ctx, "tools/call", params); err != nil {
			b.Fatal(err)
		}
	}
	call() // gw stdio starts its servers at the first request
	b.ResetTimer()
	for b.Loop() {
		call()
	}
}
