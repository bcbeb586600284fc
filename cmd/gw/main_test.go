package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/gwmcp/gw/internal/mcptest"
)

func TestMain(m *testing.M) {
	callLogServerIfChild()
	mcptest.MainIfChild()
	sdkProxyIfChild()
	// Every gw this binary runs, in process or re-executed, shares one
	// compiled-policy cache: compiling a Go policy module under the race
	// detector takes seconds, once.
	if os.Getenv("GW_POLICIES__CACHE_DIR") == "" {
		_ = os.Setenv("GW_POLICIES__CACHE_DIR", filepath.Join(os.TempDir(), "gw-test-wasm-cache"))
	}
	// gw stdio keeps pins in a per-user file; tests keep theirs in memory
	// (or in a file of their own, with --set pins.file), so they neither
	// share pins nor touch the user's.
	if _, ok := os.LookupEnv("GW_PINS__FILE"); !ok {
		_ = os.Setenv("GW_PINS__FILE", "none")
	}
	if os.Getenv(envRunAsGW) == "1" {
		exitProfiled("gw", mainCode) // the test binary re-executed as gw (see gwCommand)
	}
	selfEnv = map[string]string{envRunAsGW: "1"} // gw bench's gw stdio
	os.Exit(m.Run())
}

// envCPUProfile is a path prefix: each child this test binary runs as gw
// or as the SDK proxy writes its CPU profile to PREFIX.NAME.PID (set it
// for a benchmark to see where a face's time goes; children inherit it).
const envCPUProfile = "GWTEST_CPUPROFILE"

// exitProfiled exits with f's status, with a CPU profile of f when
// envCPUProfile asks for one.
func exitProfiled(name string, f func() int) {
	if prefix := os.Getenv(envCPUProfile); prefix != "" {
		if out, err := os.Create(fmt.Sprintf("%s.%s.%d", prefix, name, os.Getpid())); err == nil {
			_ = pprof.StartCPUProfile(out)
		}
	}
	code := f()
	pprof.StopCPUProfile()
	os.Exit(code)
}

// writeConfig writes a config file whose servers run this test binary as
// mcptest servers.
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	body = strings.ReplaceAll(body, "EXE", exe)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runGW(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const twoServers = `
gateway:
  start_timeout: 30s
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: search}
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern, MCPTEST_TOOLS: search}
`

func TestToolsJSON(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", twoServers)
	code, stdout, stderr := runGW(t, "tools", "-c", cfg, "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var rows []toolRow
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("--json output is not a JSON array: %v\n%s", err, stdout)
	}
	byName := map[string]toolRow{}
	var names []string
	for _, r := range rows {
		byName[r.Name] = r
		names = append(names, r.Name)
	}
	if r := byName["beta__search"]; r.Server != "beta" || r.Tool != "search" || r.Description == "" {
		t.Errorf("beta__search row %+v", r)
	}
	if _, ok := byName["alpha__search"]; !ok {
		t.Errorf("alpha__search missing from %v", names)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("catalog not sorted: %v", names)
		}
	}
}

func TestToolsTable(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", twoServers)
	code, stdout, stderr := runGW(t, "tools", "-c", cfg)
	if code != 0 || !strings.HasPrefix(stdout, "NAME") || !strings.Contains(stdout, "alpha__echo") || !strings.Contains(stderr, " tools") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestCall(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", twoServers)
	code, stdout, stderr := runGW(t, "call", "-c", cfg, "beta__echo", `{"text":"hello"}`)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var res struct {
		Content []struct{ Text string } `json:"content"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Content) == 0 || res.Content[0].Text != "hello" {
		t.Fatalf("stdout is not the CallToolResult: %v\n%s", err, stdout)
	}
	// A tool error result is printed and exits 1, for scripts.
	if code, stdout, _ := runGW(t, "call", "-c", cfg, "alpha__is_error"); code != 1 || !strings.Contains(stdout, `"isError":true`) {
		t.Errorf("is_error: exit %d, stdout %s", code, stdout)
	}
}

func TestCommandErrors(t *testing.T) {
	good := writeConfig(t, "gw.yaml", twoServers)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown tool", []string{"call", "-c", good, "nope"}, 1, `unknown tool "nope"`},
		{"bad arguments", []string{"call", "-c", good, "alpha__echo", `[1]`}, 2, "arguments must be a JSON object"},
		{"no config", []string{"tools"}, 2, "-c FILE is required"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"missing file", []string{"tools", "-c", "/nonexistent/gw.yaml"}, 1, "no such file"},
		{"unknown key", []string{"tools", "-c", writeConfig(t, "bad.yaml", "servers:\n  a:\n    comand: x\n")}, 1, "servers.a.comand"},
		{"bad yaml", []string{"tools", "-c", writeConfig(t, "bad2.yaml", "servers: [\n")}, 1, "bad2.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runGW(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestClaudeDesktopConfigAsIs(t *testing.T) {
	cfg := writeConfig(t, "claude_desktop_config.json", `{
  "mcpServers": {
    "notes": {"command": "EXE", "args": [], "env": {"MCPTEST_SERVER": "1", "MCPTEST_TOOLS": "add_note"}},
    "broken": {"command": "/nonexistent/server-binary", "args": ["--stdio"]}
  },
  "globalShortcut": "Ctrl+Space"
}`)
	code, stdout, stderr := runGW(t, "tools", "-c", cfg, "--json")
	if !strings.Contains(stdout, `"notes__add_note"`) {
		t.Fatalf("notes tools missing; stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	// The broken server is named on one line; the working one still serves.
	if code != 1 || !strings.Contains(stderr, `server "broken"`) || !strings.Contains(stderr, "no such file") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestServersStatus(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", twoServers)
	code, stdout, stderr := runGW(t, "servers", "-c", cfg)
	if code != 0 || !strings.Contains(stdout, "legacy") || !strings.Contains(stdout, "modern") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestSetOverridesConfig(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", twoServers)
	// --set beats the file: beta disabled leaves only alpha's tools.
	code, stdout, stderr := runGW(t, "tools", "-c", cfg, "--json", "--set", "servers.beta.disabled=true")
	if code != 0 || strings.Contains(stdout, "beta__") || !strings.Contains(stdout, "alpha__echo") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runGW(t, "tools", "-c", cfg, "--set", "gateway.call_timeout=soon"); code != 1 || !strings.Contains(stderr, "gateway.call_timeout") {
		t.Errorf("bad override: exit %d, %s", code, stderr)
	}
	if code, _, _ := runGW(t, "tools", "-c", cfg, "--set", "novalue"); code != 2 {
		t.Errorf("malformed --set: exit %d", code)
	}
}

// A policy written beside mcpServers in a Claude Desktop file is applied.
func TestClaudeDesktopConfigPolicyApplied(t *testing.T) {
	cfg := writeConfig(t, "claude_desktop_config.json", `{
  "mcpServers": {"notes": {"command": "EXE", "env": {"MCPTEST_SERVER": "1"}}},
  "policies": {"authorize": {"module": "allowlist", "config": {"rules": [{"callers": ["nobody"], "tools": ["*"]}]}}}
}`)
	code, stdout, stderr := runGW(t, "call", "-c", cfg, "notes__echo", `{"text":"hi"}`)
	if code != 1 || strings.Contains(stdout, "hi") || !strings.Contains(stderr, "denied") {
		t.Fatalf("want the call denied by the allowlist; exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
