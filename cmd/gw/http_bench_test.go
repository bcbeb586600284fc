package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gwHTTPPath is `gw run` (this test binary re-executed, its embedded NATS
// on a port of its own) with the Streamable HTTP face, called over one
// keep-alive connection: legacy with a session, modern stateless with its
// three headers.
func gwHTTPPath(b testing.TB, era string) *startedPath {
	natsPort, httpPort := freePort(b), freePort(b)
	cfg := gwBenchConfig(b, era, fmt.Sprintf(`nats:
  gateway: bench-http
  embedded: {port: %d, store_dir: %s}
http: {addr: "127.0.0.1:%d"}
policies: {cache_dir: %s}
`, natsPort, b.TempDir(), httpPort, filepath.Join(os.TempDir(), "gw-test-wasm-cache")))
	c := startChild(b, "gw-http", append(os.Environ(), envRunAsGW+"=1"), testExe(b), "run", "-c", cfg)
	c.waitListen(b, httpPort)
	return streamablePath(b, "gw-http", c.cmd.Process.Pid, fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort), era)
}

// sdkHTTPPath is the Go SDK proxy's Streamable HTTP handler
// (sdkproxy_test.go), called as gwHTTPPath calls gw.
func sdkHTTPPath(b testing.TB, era string) *startedPath {
	port := freePort(b)
	c := startChild(b, "sdk-http", append(os.Environ(), envSDKProxy+"=http", envSDKProxyEra+"="+era,
		envSDKProxyAddr+"=127.0.0.1:"+strconv.Itoa(port)), testExe(b))
	c.waitListen(b, port)
	return streamablePath(b, "sdk-http", c.cmd.Process.Pid, fmt.Sprintf("http://127.0.0.1:%d/mcp", port), era)
}

// streamablePath opens a session at url in era (legacy: initialize and its
// Mcp-Session-Id; modern: none, the request's _meta and headers) and makes
// tools/call of s__echo with plain POSTs on a keep-alive connection.
func streamablePath(b testing.TB, name string, pid int, url, era string) *startedPath {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	post := func(b testing.TB, body string, hdr map[string]string) ([]byte, http.Header) {
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
			b.Fatalf("%s: %v", name, err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode/100 != 2 || bytes.Contains(out, []byte(`"error"`)) {
			b.Fatalf("%s: %s: %d %s %v", name, body, resp.StatusCode, out, err)
		}
		return out, resp.Header
	}
	hdr := map[string]string{}
	meta := ""
	if era == "legacy" {
		_, h := post(b, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}`, nil)
		hdr["Mcp-Session-Id"] = h.Get("Mcp-Session-Id")
		hdr["MCP-Protocol-Version"] = "2025-11-25"
		post(b, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr)
	} else {
		hdr["MCP-Protocol-Version"] = "2026-07-28"
		hdr["Mcp-Method"] = "tools/call"
		hdr["Mcp-Name"] = "s__echo"
		meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"0"}},`
	}
	id := 0
	call := func(b testing.TB) []byte {
		id++
		out, _ := post(b, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s"name":"s__echo","arguments":{"text":"benchmark"}}}`, id, meta), hdr)
		return out
	}
	checkEcho(b, name, call(b)) // gw run serves HTTP once its servers have started
	return &startedPath{name: name, call: func(b testing.TB) { call(b) }, pid: pid}
}

// mcpHubUnavailable says why mcp-hub cannot run in era here.
func mcpHubUnavailable(era string) string {
	if era != "legacy" {
		return "mcp-hub speaks the legacy era only (its /mcp is the HTTP+SSE transport of 2024-11-05, protocol 2025-06-18)"
	}
	if _, _, err := findNPMTool("mcp-hub", ""); err != nil && os.Getenv("CI") == "" {
		return err.Error() + "; run make npm-tools"
	}
	return ""
}

// mcpHubPath is mcp-hub (testdata/npm-tools, on its Node 22) with the same
// mcptest server, called as an MCP client of its /mcp endpoint: HTTP+SSE,
// the transport of 2024-11-05 (GET /mcp is the event stream, whose first
// event names the URL to POST messages to; every answer comes on the
// stream). The exposed name is mcp-hub's too: server__tool.
func mcpHubPath(b testing.TB, era string) *startedPath {
	bin, env := npmTool(b, "mcp-hub")
	offlineMCPHub(b, env)
	cfg := filepath.Join(b.TempDir(), "mcp-hub.json")
	servers, err := json.Marshal(map[string]any{"mcpServers": map[string]any{"s": map[string]any{
		"command": testExe(b), "env": mcptestEnv(era)}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(cfg, servers, 0o644); err != nil {
		b.Fatal(err)
	}
	port := freePort(b)
	c := startChild(b, "mcp-hub", env, bin, "--port", strconv.Itoa(port), "--config", cfg)
	c.waitListen(b, port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	// mcp-hub listens before its MCP endpoint exists and its servers are
	// connected: wait for its health to say both.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(base + "/api/health")
		if err == nil {
			health, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(health, []byte(`"state":"ready"`)) && bytes.Contains(health, []byte(`"status":"connected"`)) {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("mcp-hub never got ready\n%s", c.tail())
		}
	}
	if strings.Contains(c.tail(), "Fetching marketplace registry") {
		b.Fatalf("mcp-hub reached for its marketplace on the network\n%s", c.tail())
	}
	req, err := http.NewRequest(http.MethodGet, base+"/mcp", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("mcp-hub: GET /mcp: %v %v\n%s", resp, err, c.tail())
	}
	b.Cleanup(func() { resp.Body.Close() })
	events := bufio.NewReader(resp.Body)
	kind, endpoint := nextSSE(b, events)
	if kind != "endpoint" {
		b.Fatalf("mcp-hub: first event %q %q, want endpoint", kind, endpoint)
	}
	post := func(b testing.TB, body string) {
		resp, err := client.Post(base+endpoint, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatalf("mcp-hub: %v", err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("mcp-hub: %s: %d %s", body, resp.StatusCode, out)
		}
	}
	id := 0
	// rpc posts a request and waits for its answer on the event stream.
	rpc := func(b testing.TB, method, params string) []byte {
		id++
		post(b, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params))
		want := strconv.Itoa(id)
		for {
			kind, data := nextSSE(b, events)
			var m struct {
				ID    json.RawMessage `json:"id"`
				Error json.RawMessage `json:"error"`
			}
			if kind != "message" || json.Unmarshal([]byte(data), &m) != nil || string(m.ID) != want {
				continue // a notification
			}
			if m.Error != nil {
				b.Fatalf("mcp-hub: %s: %s", method, data)
			}
			return []byte(data)
		}
	}
	rpc(b, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}`)
	post(b, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	// mcp-hub listens before its servers are connected: wait for the tool.
	for deadline := time.Now().Add(60 * time.Second); !bytes.Contains(rpc(b, "tools/list", `{}`), []byte(`"s__echo"`)); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("mcp-hub never listed s__echo\n%s", c.tail())
		}
	}
	call := func(b testing.TB) []byte {
		return rpc(b, "tools/call", `{"name":"s__echo","arguments":{"text":"benchmark"}}`)
	}
	checkEcho(b, "mcp-hub", call(b))
	return &startedPath{name: "mcp-hub", call: func(b testing.TB) { call(b) }, pid: c.cmd.Process.Pid}
}

// offlineMCPHub keeps mcp-hub off the network: at start it fetches its
// marketplace catalog from the internet unless its cache (under HOME,
// which env sets to a directory of the test's own) holds a fresh one, so
// the test writes one, with a placeholder server (an empty list counts as
// stale).
func offlineMCPHub(b testing.TB, env []string) {
	home := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok {
			home = v
		}
	}
	dir := filepath.Join(home, ".mcp-hub", "cache") // preferred to the XDG directories when it exists
	cache := fmt.Sprintf(`{"registry":{"version":"gw-test","generatedAt":0,"totalServers":1,"servers":[{"id":"none","name":"none"}]},"lastFetchedAt":%d,"serverDocumentation":{}}`,
		time.Now().UnixMilli())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(cache), 0o644); err != nil {
		b.Fatal(err)
	}
}

// nextSSE reads one event of a text/event-stream: its type ("message"
// when unnamed) and its data lines, joined.
func nextSSE(b testing.TB, r *bufio.Reader) (kind, data string) {
	kind = "message"
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("event stream: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if len(lines) > 0 {
				return kind, strings.Join(lines, "\n")
			}
		case strings.HasPrefix(line, "event:"):
			kind = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			lines = append(lines, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
}

// benchChild is a benchmark's child process: its own process group (so
// that mcp-hub's server goes with it), killed if the test binary dies, its
// output in a file shown when it fails.
type benchChild struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startChild(b testing.TB, name string, env []string, bin string, args ...string) *benchChild {
	c := &benchChild{log: filepath.Join(b.TempDir(), name+".log"), exited: make(chan struct{})}
	out, err := os.Create(c.log)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	go func() { // owned by the cleanup below, which waits for it
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	b.Cleanup(func() {
		pgid := c.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.exited
		}
	})
	return c
}

// waitListen waits until the child accepts connections on port.
func (c *benchChild) waitListen(b testing.TB, port int) {
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			conn.Close()
			return
		}
		select {
		case <-c.exited:
			b.Fatalf("%s exited before it listened\n%s", c.cmd.Path, c.tail())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never listened on %d\n%s", c.cmd.Path, port, c.tail())
		}
	}
}

// tail is the end of the child's output.
func (c *benchChild) tail() string {
	out, _ := os.ReadFile(c.log)
	if len(out) > 4096 {
		out = out[len(out)-4096:]
	}
	return string(out)
}
