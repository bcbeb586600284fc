package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/mcptest"
)

// benchHTTP times tools/call through `gw run`'s Streamable HTTP face (in
// process, one keep-alive connection; legacy with a session, modern
// stateless with its three headers), for BenchmarkMCPFaces.
func benchHTTP(b *testing.B, exe, era string) {
	natsPort, httpPort := freePort(b), freePort(b)
	cfg := filepath.Join(b.TempDir(), "gw.yaml")
	body := fmt.Sprintf(`gateway: {config_watch: 0s}
log: {level: error}
nats:
  gateway: bench-http
  embedded: {port: %d, store_dir: %s}
http: {addr: "127.0.0.1:%d"}
policies:
  cache_dir: %s
servers:
  s: {command: %s, env: {MCPTEST_SERVER: "1", MCPTEST_ERA: %s}}
`, natsPort, b.TempDir(), httpPort, filepath.Join(os.TempDir(), "gw-test-wasm-cache"), exe, era)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr mcptest.SyncBuffer
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr) }()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the HTTP face never listened\n%s", stderr.String())
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(body string, hdr map[string]string) http.Header {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 || bytes.Contains(out, []byte(`"error"`)) {
			b.Fatalf("%s: %d %s", body, resp.StatusCode, out)
		}
		return resp.Header
	}
	hdr := map[string]string{}
	meta := ""
	if era == "legacy" {
		h := post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}`, nil)
		hdr["Mcp-Session-Id"] = h.Get("Mcp-Session-Id")
		hdr["MCP-Protocol-Version"] = "2025-11-25"
		post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr)
	} else {
		hdr["MCP-Protocol-Version"] = "2026-07-28"
		hdr["Mcp-Method"] = "tools/call"
		hdr["Mcp-Name"] = "s__echo"
		meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"0"}},`
	}
	call := func(id int) {
		post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s"name":"s__echo","arguments":{"text":"benchmark"}}}`, id, meta), hdr)
	}
	call(1) // gw run serves HTTP once its servers have started
	id := 1
	b.ResetTimer()
	for b.Loop() {
		id++
		call(id)
	}
}
