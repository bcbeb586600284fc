package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/mcpface"
)

// envRunAsGW makes the test binary run gw's main (see TestMain), so tests
// can start `gw stdio` as a real child process.
const envRunAsGW = "GWTEST_RUN_AS_GW"

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gwCommand is `gw ARGS…`: the test binary re-executed as gw. mark is put
// in its environment, which its servers inherit, so leftover processes can
// be found.
func gwCommand(t *testing.T, mark string, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envRunAsGW+"=1", "GWTEST_STDIO_MARK="+mark)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gw stderr:\n%s", stderr)
		}
	})
	return cmd, stderr
}

// leftovers lists the processes whose environment holds mark (Linux).
func leftovers(mark string) []string {
	if runtime.GOOS != "linux" {
		return nil
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !bytes.Contains(env, []byte("GWTEST_STDIO_MARK="+mark+"\x00")) {
			continue
		}
		stat, _ := os.ReadFile(d + "/stat")
		out = append(out, strings.TrimSpace(string(stat)))
	}
	return out
}

const stdioConfig = `
gateway: {config_watch: 100ms, start_timeout: 60s}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
  memory:
    command: MEMORY
    env: {MEMORY_FILE_PATH: DIR/memory.jsonl}
`

const gammaServer = `  gamma:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: fresh}
`

// TestStdioSDKClient runs `gw stdio` as a child of the official Go SDK
// client, in both eras: the SDK negotiates the era (server/discover, or
// initialize when asked for 2025-11-25), lists the merged tools of two
// mcptest servers (one per era) and the npm memory server, calls tools of
// each, hears list_changed when a server is added by editing the
// configuration, and answers the sampling that a legacy server asks on its
// own and that a modern server asks with input_required (gw asks the client
// through the call's Input: a JSON-RPC request in the legacy era, an
// InputRequiredResult in the modern one). Closing the client's end makes gw exit 0
// and leaves no server process behind.
func TestStdioSDKClient(t *testing.T) {
	memory := mcptest.NPMServer(t, "mcp-server-memory")
	for _, tt := range []struct{ name, ask, want string }{
		{"legacy", mcpface.LegacyVersion, mcpface.LegacyVersion},
		{"modern", "", mcpface.ModernVersion},
	} {
		t.Run(tt.name, func(t *testing.T) { testStdioSDK(t, memory, tt.ask, tt.want) })
	}
}

func testStdioSDK(t *testing.T, memory, askVersion, wantVersion string) {
	dir := t.TempDir()
	body := strings.NewReplacer("MEMORY", memory, "DIR", dir).Replace(stdioConfig)
	cfg := writeConfig(t, "gw.yaml", body)
	mark := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	cmd, _ := gwCommand(t, mark, "stdio", "-c", cfg)

	changed := make(chan struct{}, 16)
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "sdk", Content: &mcp.TextContent{Text: "Paris, said the SDK client"}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: askVersion})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = cs.Close()
		}
	}()
	init := cs.InitializeResult()
	if init.ProtocolVersion != wantVersion || init.ServerInfo == nil || init.ServerInfo.Name != "gw" {
		t.Fatalf("session: version %q, server %+v; want %s with gw", init.ProtocolVersion, init.ServerInfo, wantVersion)
	}

	names := listToolNames(ctx, t, cs)
	for _, want := range []string{"alpha__echo", "beta__echo", "memory__create_entities", "memory__read_graph"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s missing from %v", want, names)
		}
	}
	for _, name := range []string{"alpha__echo", "beta__echo"} {
		if got := callText(ctx, t, cs, name, map[string]any{"text": "through gw " + name}); got != "through gw "+name {
			t.Errorf("%s: %q", name, got)
		}
	}
	callText(ctx, t, cs, "memory__create_entities", map[string]any{"entities": []map[string]any{
		{"name": "gw", "entityType": "gateway", "observations": []string{"speaks stdio"}},
	}})
	if got := callText(ctx, t, cs, "memory__read_graph", map[string]any{}); !strings.Contains(got, "speaks stdio") {
		t.Errorf("memory__read_graph: %s", got)
	}

	// Sampling reaches the SDK client through gw in both eras: a legacy
	// server's own JSON-RPC request (legacy client: a request of gw's; modern
	// client: an InputRequiredResult on the call), and a modern server's
	// input_required round trip through the call's Input.
	for _, name := range []string{"alpha__sample", "beta__sample"} {
		if got := callText(ctx, t, cs, name, map[string]any{"prompt": "capital of France?"}); !strings.Contains(got, "Paris, said the SDK client") {
			t.Errorf("%s through gw: %q", name, got)
		}
	}

	// A server added to the file: the client hears tools/list_changed and
	// lists its tools.
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(body+gammaServer, "EXE", mustExe(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	names = relistOnChange(ctx, t, cs, changed, names, 60*time.Second, "with gamma__fresh", hasTool("gamma__fresh"))
	if got := callText(ctx, t, cs, "gamma__fresh", map[string]any{"text": "new"}); got != "new" {
		t.Errorf("gamma__fresh: %q", got)
	}

	// stdin closes: gw stops its servers and exits 0.
	closed = true
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("gw exit: %v", cmd.ProcessState)
	}
	if left := leftovers(mark); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
}

func mustExe(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// relistOnChange lists the tools again each time the client hears
// tools/list_changed (on changed) until ok holds of the list, and returns
// it; names is the list so far. It fails the test after within.
func relistOnChange(ctx context.Context, t *testing.T, cs *mcp.ClientSession, changed <-chan struct{}, names []string, within time.Duration, what string, ok func([]string) bool) []string {
	t.Helper()
	deadline := time.After(within)
	for !ok(names) {
		select {
		case <-changed:
			names = listToolNames(ctx, t, cs)
		case <-deadline:
			t.Fatalf("no list_changed %s; tools %v", what, names)
		}
	}
	return names
}

func hasTool(name string) func([]string) bool {
	return func(names []string) bool { return slices.Contains(names, name) }
}

func listToolNames(ctx context.Context, t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func callText(ctx context.Context, t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: isError %s", name, resultText(res))
	}
	return resultText(res)
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// rawClient speaks JSON-RPC lines to a `gw stdio` child.
type rawClient struct {
	t     *testing.T
	in    io.WriteCloser
	lines chan map[string]json.RawMessage
}

func startRawGW(t *testing.T, mark string, args ...string) (*rawClient, *exec.Cmd) {
	t.Helper()
	return startRawGWEnv(t, mark, nil, args...)
}

// startRawGWEnv is startRawGW with env added to the child's environment
// (a later value of a variable wins).
func startRawGWEnv(t *testing.T, mark string, env []string, args ...string) (*rawClient, *exec.Cmd) {
	t.Helper()
	cmd, _ := gwCommand(t, mark, args...)
	cmd.Env = append(cmd.Env, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, in: in, lines: make(chan map[string]json.RawMessage, 64)}
	go func() {
		defer close(rc.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]json.RawMessage{"notjson": json.RawMessage(fmt.Sprintf("%q", sc.Text()))}
			}
			rc.lines <- m
		}
	}()
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	return rc, cmd
}

func (rc *rawClient) send(line string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.in, line+"\n"); err != nil {
		rc.t.Fatal(err)
	}
}

// await returns the next message with the given id, failing on a line that
// is not JSON.
func (rc *rawClient) await(id string) map[string]json.RawMessage {
	rc.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-rc.lines:
			if !ok {
				rc.t.Fatal("gw's stdout ended")
			}
			if _, bad := m["notjson"]; bad {
				rc.t.Fatalf("gw wrote a line that is not JSON on stdout: %s", m["notjson"])
			}
			if string(m["id"]) == id {
				return m
			}
		case <-timeout:
			rc.t.Fatalf("no answer to %s", id)
		}
	}
}

// awaitMethod returns the next message of method, skipping others.
func (rc *rawClient) awaitMethod(method string) map[string]json.RawMessage {
	rc.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-rc.lines:
			if !ok {
				rc.t.Fatal("gw's stdout ended")
			}
			if got, _ := json.Marshal(method); string(m["method"]) == string(got) {
				return m
			}
		case <-timeout:
			rc.t.Fatalf("no %s", method)
		}
	}
}

// TestStdioLogsLegacy: a server's log messages reach a legacy client of gw
// stdio, named after the server, at or above the client's level.
func TestStdioLogsLegacy(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", "gateway: {start_timeout: 60s}\nservers:\n  alpha: {command: EXE, env: {MCPTEST_SERVER: \"1\"}}\n")
	rc, _ := startRawGW(t, fmt.Sprintf("logs-%d", time.Now().UnixNano()), "stdio", "-c", cfg)
	rc.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`)
	rc.await("0")
	rc.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}}`)
	rc.await("1")
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__notify","arguments":{"n":2}}}`)
	m := rc.awaitMethod("notifications/message")
	if !strings.Contains(string(m["params"]), `"logger":"alpha/`) || !strings.Contains(string(m["params"]), `"level":"info"`) {
		t.Fatalf("log message %s; want alpha's, at info", m["params"])
	}
}

// TestStdioRawModern drives `gw stdio` with raw JSON-RPC in the modern era,
// checking on the wire what the SDK hides: -32022 for an unknown version,
// resultType on every result, and the --principal flag reaching the
// authorize policy.
func TestStdioRawModern(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", `
gateway: {start_timeout: 60s}
servers:
  alpha: {command: EXE, env: {MCPTEST_SERVER: "1"}}
policies:
  authorize: {module: allowlist, config: {rules: [{callers: ["ada"], tools: ["alpha__echo"]}]}}
`)
	rc, _ := startRawGW(t, fmt.Sprintf("raw-%d", time.Now().UnixNano()), "stdio", "-c", cfg, "--principal", "ada")
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1900-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	if m := rc.await("1"); !strings.Contains(string(m["error"]), "-32022") || !strings.Contains(string(m["error"]), `"requested":"1900-01-01"`) {
		t.Fatalf("want -32022, got %s", m["error"])
	}
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{` + meta + `}}`)
	if m := rc.await("2"); !strings.Contains(string(m["result"]), `"resultType":"complete"`) || !strings.Contains(string(m["result"]), `"alpha__echo"`) {
		t.Fatalf("tools/list: %s %s", m["result"], m["error"])
	}
	rc.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"alpha__echo","arguments":{"text":"hi"},` + meta + `}}`)
	if m := rc.await("3"); !strings.HasPrefix(string(m["result"]), `{"resultType":"complete",`) {
		t.Fatalf("tools/call: %s %s", m["result"], m["error"])
	}
	// ada may call echo only.
	rc.send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"alpha__is_error","arguments":{},` + meta + `}}`)
	if m := rc.await("4"); !strings.Contains(string(m["error"]), fmt.Sprint(gateway.CodeDenied)) {
		t.Fatalf("want the call denied for ada, got %s %s", m["result"], m["error"])
	}
}

// TestCatalogChanges: only the lists whose names or JSON changed are
// announced.
func TestCatalogChanges(t *testing.T) {
	e := func(name, js string) gateway.Entry { return gateway.Entry{Name: name, JSON: json.RawMessage(js)} }
	a := &gateway.Catalog{Tools: []gateway.Entry{e("a__x", `{"name":"a__x"}`)}, Prompts: []gateway.Entry{e("a__p", `{}`)}}
	for _, tt := range []struct {
		name string
		b    *gateway.Catalog
		want mcpface.Kind
	}{
		{"same", &gateway.Catalog{Tools: []gateway.Entry{e("a__x", `{"name":"a__x"}`)}, Prompts: []gateway.Entry{e("a__p", `{}`)}}, 0},
		{"tool description", &gateway.Catalog{Tools: []gateway.Entry{e("a__x", `{"name":"a__x","description":"d"}`)}, Prompts: []gateway.Entry{e("a__p", `{}`)}}, mcpface.KindTools},
		{"prompt gone, template added", &gateway.Catalog{Tools: []gateway.Entry{e("a__x", `{"name":"a__x"}`)}, Templates: []gateway.Entry{e("t://{x}", `{}`)}}, mcpface.KindPrompts | mcpface.KindResources},
	} {
		if got := catalogChanges(a, tt.b); got != tt.want {
			t.Errorf("%s: %b; want %b", tt.name, got, tt.want)
		}
	}
}

// TestStdioView: gw stdio --view serves only the view's items; a view that
// is not configured is refused before anything starts.
func TestStdioView(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", `
gateway: {start_timeout: 60s}
servers:
  alpha: {command: EXE, env: {MCPTEST_SERVER: "1"}}
  beta: {command: EXE, env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}}
views:
  short: {servers: [beta], include: ["alpha__echo"], exclude: ["beta__crash"]}
`)
	rc, _ := startRawGW(t, fmt.Sprintf("view-%d", time.Now().UnixNano()), "stdio", "-c", cfg, "--view", "short")
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`)
	list := string(rc.await("1")["result"])
	for _, want := range []string{`"alpha__echo"`, `"beta__echo"`, `"beta__stats"`} {
		if !strings.Contains(list, want) {
			t.Errorf("the view lacks %s: %s", want, list)
		}
	}
	for _, not := range []string{`"alpha__stats"`, `"beta__crash"`} {
		if strings.Contains(list, not) {
			t.Errorf("the view lists %s: %s", not, list)
		}
	}
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__stats","arguments":{},` + meta + `}}`)
	if m := rc.await("2"); !strings.Contains(string(m["error"]), "unknown tool") {
		t.Fatalf("a call outside the view: %s %s", m["result"], m["error"])
	}
	if code, _, stderr := runGW(t, "stdio", "-c", cfg, "--view", "nope"); code != 2 || !strings.Contains(stderr, `no view "nope"`) {
		t.Errorf("an unknown view: exit %d, stderr %q", code, stderr)
	}
}

// TestStdioMaxInFlight: gateway.max_in_flight bounds what one client of gw
// stdio may have in flight; one more is answered "gw: busy" at once.
func TestStdioMaxInFlight(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", `
gateway: {start_timeout: 60s, max_in_flight: 1}
servers:
  alpha: {command: EXE, env: {MCPTEST_SERVER: "1"}}
`)
	rc, _ := startRawGW(t, fmt.Sprintf("inflight-%d", time.Now().UnixNano()), "stdio", "-c", cfg)
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`)
	rc.await("1") // the gateway is up
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__slow","arguments":{"ms":3000},` + meta + `}}`)
	rc.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"alpha__echo","arguments":{"text":"hi"},` + meta + `}}`)
	if m := rc.await("3"); !strings.Contains(string(m["error"]), "gw: busy") {
		t.Fatalf("a second request with max_in_flight 1: %s %s", m["result"], m["error"])
	}
	if m := rc.await("2"); m["error"] != nil {
		t.Fatalf("the first request: %s", m["error"])
	}
}

// TestStdioSIGTERMWithStdinOpen: a gw stdio told to stop by SIGTERM while
// its client keeps stdin open exits at once, its server stopped: the
// reader blocked on stdin is interrupted (stdin is a pipe in Go's poller),
// rather than waited for over the face's grace period (5 s).
func TestStdioSIGTERMWithStdinOpen(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", `
gateway: {start_timeout: 60s}
servers:
  alpha: {command: EXE, env: {MCPTEST_SERVER: "1"}}
`)
	mark := fmt.Sprintf("sigterm-%d", time.Now().UnixNano())
	rc, cmd := startRawGW(t, mark, "stdio", "-c", cfg)
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`)
	if m := rc.await("1"); !strings.Contains(string(m["result"]), `"alpha__echo"`) {
		t.Fatalf("tools/list: %s %s", m["result"], m["error"])
	}
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gw stdio after SIGTERM: %v", err)
	}
	if took := time.Since(begin); took > 4*time.Second {
		t.Errorf("gw stdio took %v to exit after SIGTERM with stdin open (the face's grace is 5 s)", took)
	}
	if left := leftovers(mark); len(left) > 0 {
		t.Errorf("left running: %v", left)
	}
}
